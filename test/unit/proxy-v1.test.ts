import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseIp, v4Mapped } from "../../src/option-codec/address.js";
import {
  decodeProxyV1,
  encodeProxyV1,
  isProxyV1,
  PROXY_V1_MAX_LENGTH,
  type ProxyV1Repr,
  proxyV1Length,
} from "../../src/option-codec/proxy-v1.js";
import { codecError, expectError as expectCodecError } from "./helpers/errors.js";
import {
  check,
  deleteByte,
  flip,
  fuzzDecoder,
  mutated,
  setOrInsert,
  truncate,
} from "./helpers/fuzz.js";

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const text = (b: Uint8Array) => String.fromCharCode(...b);

const FFFF6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

// The lines of the HAProxy spec, section 2.1.
const SPEC_EXAMPLE = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
const MAX_TCP4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
const MAX_TCP6 = `PROXY TCP6 ${FFFF6} ${FFFF6} 65535 65535\r\n`;
const UNKNOWN_SHORT = "PROXY UNKNOWN\r\n";
const UNKNOWN_WORST = `PROXY UNKNOWN ${FFFF6} ${FFFF6} 65535 65535\r\n`;

function tcp(protocol: "TCP4" | "TCP6", src: string, dst: string, sp: number, dp: number) {
  return {
    protocol,
    source: { addr: parseIp(src), port: sp },
    destination: { addr: parseIp(dst), port: dp },
  } satisfies ProxyV1Repr;
}

function encode(repr: ProxyV1Repr): Uint8Array {
  const out = new Uint8Array(proxyV1Length(repr));
  expect(encodeProxyV1(repr, out, 0)).toBe(out.length);
  return out;
}

function decodeText(s: string) {
  const b = ascii(s);
  return decodeProxyV1(b, 0, b.length);
}

function expectError(line: string, code: string, offset: number): void {
  expectCodecError(() => decodeText(line), code, offset);
}

describe("PROXY v1 spec lines", () => {
  const cases = [
    [SPEC_EXAMPLE, tcp("TCP4", "192.168.0.1", "192.168.0.11", 56324, 443)],
    [MAX_TCP4, tcp("TCP4", "255.255.255.255", "255.255.255.255", 65535, 65535)],
    [MAX_TCP6, tcp("TCP6", FFFF6, FFFF6, 65535, 65535)],
    [UNKNOWN_SHORT, { protocol: "UNKNOWN" }],
  ] as const;

  it("have the lengths the spec counts", () => {
    expect([MAX_TCP4, MAX_TCP6, UNKNOWN_SHORT, UNKNOWN_WORST].map((l) => l.length)).toEqual([
      56, 104, 15, 107,
    ]);
  });

  for (const [line, repr] of cases) {
    it(`decodes and encodes ${JSON.stringify(line)}`, () => {
      expect(decodeText(line)).toEqual({ repr, length: line.length });
      expect(text(encode(repr))).toBe(line);
    });
  }

  it("stops at the CRLF, leaving the request that follows", () => {
    const stream = `${SPEC_EXAMPLE}GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n`;
    const b = ascii(`xx${stream}`);
    const r = decodeProxyV1(b, 2, b.length);
    expect(r.length).toBe(SPEC_EXAMPLE.length);
    expect(text(b.subarray(2 + r.length, 2 + r.length + 3))).toBe("GET");
  });

  it("accepts UNKNOWN followed by anything, up to the 107-byte worst case", () => {
    expect(decodeText(UNKNOWN_WORST)).toEqual({ repr: { protocol: "UNKNOWN" }, length: 107 });
    expect(decodeText("PROXY UNKNOWN  \x01 whatever\r\n").repr).toEqual({ protocol: "UNKNOWN" });
  });

  it("accepts other IPv6 spellings: upper case, embedded IPv4", () => {
    expect(decodeText("PROXY TCP6 2001:DB8::1 ::ffff:10.0.0.1 1 0\r\n").repr).toEqual({
      protocol: "TCP6",
      source: { addr: parseIp("2001:db8::1"), port: 1 },
      destination: { addr: v4Mapped(parseIp("10.0.0.1")), port: 0 },
    });
  });

  it("recognises the prefix only", () => {
    expect(isProxyV1(ascii("PROXY "), 0, 6)).toBe(true);
    expect(isProxyV1(ascii("PROXY "), 0, 5)).toBe(false);
    expect(isProxyV1(ascii("PROXY\r\n"), 0, 7)).toBe(false);
  });
});

describe("PROXY v1 decode errors", () => {
  it("rejects anything not starting with 'PROXY '", () => {
    expectError("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "BAD_SIGNATURE", 0);
    expectError("PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "BAD_SIGNATURE", 4);
    expectError("PROXY\r\n", "BAD_SIGNATURE", 5);
    expectError("GET / HTTP/1.1\r\n", "BAD_SIGNATURE", 0);
  });

  it("reports an incomplete line as TRUNCATED", () => {
    expectError("PROX", "TRUNCATED", 0);
    expectError("PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222", "TRUNCATED", 0);
    expectError("PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r", "TRUNCATED", 0);
    // A lone LF does not end the line.
    expectError("PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\n", "TRUNCATED", 0);
  });

  it("rejects a line without CRLF in its first 107 bytes", () => {
    const long = `PROXY UNKNOWN ${FFFF6} ${FFFF6} 65535 655350\r\n`;
    expect(long.length).toBe(PROXY_V1_MAX_LENGTH + 1);
    expectError(long, "BAD_TOTAL_LENGTH", 106);
    expectError(`PROXY ${"x".repeat(200)}`, "BAD_TOTAL_LENGTH", 106);
  });

  it("does not look past end for the CRLF", () => {
    const b = ascii(SPEC_EXAMPLE);
    expect(codecError(() => decodeProxyV1(b, 0, b.length - 1)).code).toBe("TRUNCATED");
  });

  it("wants exactly one space between fields", () => {
    expectError("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "BAD_VALUE", 6);
    expectError("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "BAD_VALUE", 19);
    expectError("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "BAD_VALUE", 31);
    expectError("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", "BAD_VALUE", 6);
  });

  it("rejects unknown protocols and missing or extra fields", () => {
    expectError("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "BAD_VALUE", 6);
    expectError("PROXY UNKNOWNX\r\n", "BAD_VALUE", 6);
    expectError("PROXY \r\n", "BAD_VALUE", 6);
    expectError("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "BAD_VALUE", 28);
    expectError("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "BAD_VALUE", 31);
  });

  it("rejects addresses that do not parse or do not match the family", () => {
    expectError("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "BAD_ADDRESS", 11);
    expectError("PROXY TCP4 1.2.3.4 5.6.7.08 1 2\r\n", "BAD_ADDRESS", 19);
    expectError("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "BAD_ADDRESS", 11);
    expectError("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "BAD_ADDRESS", 11);
    expectError("PROXY TCP6 ::1 1::2::3 1 2\r\n", "BAD_ADDRESS", 15);
  });

  it("rejects ports out of range or with leading zeros", () => {
    expectError("PROXY TCP4 1.2.3.4 5.6.7.8 01111 2\r\n", "BAD_VALUE", 27);
    expectError("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "BAD_VALUE", 29);
    expectError("PROXY TCP4 1.2.3.4 5.6.7.8 1 -1\r\n", "BAD_VALUE", 29);
    expectError("PROXY TCP4 1.2.3.4 5.6.7.8 1 +1\r\n", "BAD_VALUE", 29);
    expectError("PROXY TCP4 1.2.3.4 5.6.7.8 00 1\r\n", "BAD_VALUE", 27);
  });
});

describe("PROXY v1 encode errors", () => {
  it("rejects reprs whose addresses do not match the protocol", () => {
    const v4 = tcp("TCP4", "1.2.3.4", "5.6.7.8", 1, 2);
    const bad: ProxyV1Repr[] = [
      { ...v4, destination: { addr: parseIp("::1"), port: 2 } },
      { ...v4, protocol: "TCP6" },
      { ...v4, source: { addr: v4.source.addr, port: 65536 } },
      { ...v4, source: { addr: v4.source.addr, port: 1.5 } },
    ];
    for (const repr of bad) {
      expect(codecError(() => proxyV1Length(repr)).code).toBe("BAD_VALUE");
      expect(codecError(() => encodeProxyV1(repr, new Uint8Array(200), 0)).code).toBe("BAD_VALUE");
    }
  });

  it("throws NO_ROOM without writing when the buffer is too small", () => {
    const buf = new Uint8Array(SPEC_EXAMPLE.length + 2).fill(0x5a);
    const e = codecError(() => encodeProxyV1(decodeText(SPEC_EXAMPLE).repr, buf, 3));
    expect({ code: e.code, offset: e.offset }).toEqual({ code: "NO_ROOM", offset: 3 });
    expect(buf.every((x) => x === 0x5a)).toBe(true);
  });
});

// --- round trips and fuzzing ----------------------------------------------

const port = fc.integer({ min: 0, max: 0xffff });
const endpointOf = (bytes: number) =>
  fc.record({ addr: fc.uint8Array({ minLength: bytes, maxLength: bytes }), port });
const reprArb: fc.Arbitrary<ProxyV1Repr> = fc.oneof(
  fc.record({
    protocol: fc.constant("TCP4" as const),
    source: endpointOf(4),
    destination: endpointOf(4),
  }),
  fc.record({
    protocol: fc.constant("TCP6" as const),
    source: endpointOf(16),
    destination: endpointOf(16),
  }),
  fc.constant({ protocol: "UNKNOWN" as const }),
);

describe("PROXY v1 round trip", () => {
  it("decode(encode(x)) equals x and the length agrees", () => {
    fc.assert(
      fc.property(reprArb, (repr) => {
        const b = encode(repr);
        expect(b.length).toBe(proxyV1Length(repr));
        expect(b.length).toBeLessThanOrEqual(PROXY_V1_MAX_LENGTH);
        expect(decodeProxyV1(b, 0, b.length)).toEqual({ repr, length: b.length });
      }),
      { numRuns: 2_000 },
    );
  });

  it("encodes at an offset without touching the surrounding bytes", () => {
    fc.assert(
      fc.property(reprArb, fc.nat(16), fc.nat(16), (repr, before, after) => {
        const plain = encode(repr);
        const buf = new Uint8Array(before + plain.length + after).fill(0xa5);
        expect(encodeProxyV1(repr, buf, before)).toBe(plain.length);
        expect(buf.subarray(before, before + plain.length)).toEqual(plain);
        expect(buf.subarray(0, before).every((x) => x === 0xa5)).toBe(true);
        expect(buf.subarray(before + plain.length).every((x) => x === 0xa5)).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });
});

// Bytes that matter to the grammar, so mutations hit separators and digits.
const INTERESTING = ascii(" \r\n0123456789abcdefABCDEF.:-+TCPUNKOWX46\x00\xff");

// Long enough junk to cross the 107-byte limit now and then.
const unknownWithJunk = fc
  .uint8Array({ maxLength: 110, size: "max" })
  .map((junk) => new Uint8Array([...ascii("PROXY UNKNOWN "), ...junk, ...ascii("\r\n")]));

/** A v1 line has many spellings, so reprs are compared through their canonical encoding. */
function canonical(repr: ProxyV1Repr): string {
  return text(encode(repr));
}

describe("PROXY v1 decoder on hostile input", () => {
  it("returns or throws a CodecError, never reads past end, and decodes its own encoding", () => {
    const mutation = fc.oneof(truncate, flip, setOrInsert(INTERESTING), deleteByte);
    fuzzDecoder({
      input: fc.oneof(
        { arbitrary: fc.uint8Array({ maxLength: 120 }), weight: 1 },
        {
          arbitrary: fc
            .uint8Array({ maxLength: 110 })
            .map((rest) => new Uint8Array([...ascii("PROXY "), ...rest])),
          weight: 1,
        },
        { arbitrary: unknownWithJunk, weight: 1 },
        { arbitrary: mutated(reprArb, encode, mutation), weight: 5 },
      ),
      decode: (buf, offset, end) => {
        const r = decodeProxyV1(buf, offset, end);
        if (r.repr.protocol !== "UNKNOWN") {
          const bytes = r.repr.protocol === "TCP4" ? 4 : 16;
          const lengths = [r.repr.source.addr.length, r.repr.destination.addr.length];
          check(lengths[0] === bytes && lengths[1] === bytes, "address does not match protocol");
        }
        return { summary: canonical(r.repr), length: r.length };
      },
      // A CRLF right after `end` is the likeliest way to be fooled into reading on.
      after: (_, i) => (i === 0 ? 0x0d : 0x0a),
      accept: (_, summary, length) => {
        check(length <= PROXY_V1_MAX_LENGTH, "length too long");
        const line = ascii(summary);
        const again = decodeProxyV1(line, 0, line.length);
        check(canonical(again.repr) === summary, "re-decoding differs");
      },
    });
  });
});
