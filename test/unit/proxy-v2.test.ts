import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseIp } from "../../src/option-codec/address.js";
import { fromHex, toHex } from "../../src/option-codec/bytes.js";
import {
  decodeProxyV2,
  encodeProxyV2,
  isProxyV2,
  PROXY_V2_SIGNATURE,
  type ProxyV2Repr,
  ProxyV2Tlv,
  proxyV2Length,
} from "../../src/option-codec/proxy-v2.js";
import { expectError } from "./helpers/errors.js";
import { append, check, flip, fuzzDecoder, mutated, truncate, u16 } from "./helpers/fuzz.js";

const SIG = "0d0a0d0a000d0a515549540a";

// PROXY TCP4 192.168.0.1:56324 -> 192.168.0.11:443, ALPN "h2".
const V4_HEX = `${SIG} 21 11 0011 c0a80001 c0a8000b dc04 01bb 01 0002 6832`;
const V4: ProxyV2Repr = {
  command: "proxy",
  transport: "stream",
  source: { addr: parseIp("192.168.0.1"), port: 56324 },
  destination: { addr: parseIp("192.168.0.11"), port: 443 },
  tlvs: [{ type: ProxyV2Tlv.alpn, value: new TextEncoder().encode("h2") }],
};

// PROXY UDP6 [2001:db8::1]:12345 -> [2001:db8::2]:53, AUTHORITY "example.com".
const V6_HEX = `${SIG} 21 22 0032
  20010db8000000000000000000000001 20010db8000000000000000000000002 3039 0035
  02 000b 6578616d706c652e636f6d`;
const V6: ProxyV2Repr = {
  command: "proxy",
  transport: "dgram",
  source: { addr: parseIp("2001:db8::1"), port: 12345 },
  destination: { addr: parseIp("2001:db8::2"), port: 53 },
  tlvs: [{ type: ProxyV2Tlv.authority, value: new TextEncoder().encode("example.com") }],
};

// A health check: LOCAL, AF_UNSPEC, no addresses, no TLVs.
const LOCAL_HEX = `${SIG} 20 00 0000`;
const LOCAL: ProxyV2Repr = { command: "local", transport: "unspec", tlvs: [] };

// LOCAL may still carry an address block; it is kept so re-encoding is exact.
const LOCAL_V4_HEX = `${SIG} 20 11 000c 7f000001 7f000001 1f90 0050`;
const LOCAL_V4: ProxyV2Repr = {
  command: "local",
  transport: "stream",
  source: { addr: parseIp("127.0.0.1"), port: 8080 },
  destination: { addr: parseIp("127.0.0.1"), port: 80 },
  tlvs: [],
};

const VECTORS = [
  ["v4 with ALPN", V4_HEX, V4],
  ["v6 with AUTHORITY", V6_HEX, V6],
  ["LOCAL", LOCAL_HEX, LOCAL],
  ["LOCAL with addresses", LOCAL_V4_HEX, LOCAL_V4],
] as const;

function encode(repr: ProxyV2Repr): Uint8Array {
  const out = new Uint8Array(proxyV2Length(repr));
  expect(encodeProxyV2(repr, out, 0)).toBe(out.length);
  return out;
}

function withByte(hex: string, at: number, value: number): Uint8Array {
  const b = fromHex(hex);
  b[at] = value;
  return b;
}

describe("PROXY v2 vectors", () => {
  it("has the spec's signature", () => {
    expect(toHex(PROXY_V2_SIGNATURE)).toBe(SIG);
  });

  for (const [name, hex, repr] of VECTORS) {
    it(`encodes ${name}`, () => {
      expect(toHex(encode(repr))).toBe(toHex(fromHex(hex)));
    });

    it(`decodes ${name}`, () => {
      const b = fromHex(hex);
      expect(decodeProxyV2(b, 0, b.length)).toEqual({ repr, length: b.length });
    });
  }

  it("decodes at an offset and leaves the payload that follows", () => {
    const header = fromHex(V4_HEX);
    const b = new Uint8Array([0xee, 0xee, 0xee, ...header, 0x47, 0x45, 0x54]);
    expect(decodeProxyV2(b, 3, b.length)).toEqual({ repr: V4, length: header.length });
  });

  it("recognises the signature only", () => {
    const b = fromHex(V4_HEX);
    expect(isProxyV2(b, 0, b.length)).toBe(true);
    expect(isProxyV2(b, 0, 11)).toBe(false);
    expect(isProxyV2(b, 1, b.length)).toBe(false);
    expect(isProxyV2(withByte(V4_HEX, 12, 0x99), 0, 13)).toBe(true);
  });
});

describe("PROXY v2 decode errors", () => {
  const v4 = () => fromHex(V4_HEX);

  it("rejects a wrong signature at the first differing byte", () => {
    const b = withByte(V4_HEX, 5, 0x00);
    expectError(() => decodeProxyV2(b, 0, b.length), "BAD_SIGNATURE", 5);
    expectError(() => decodeProxyV2(fromHex("0d0a0d0b"), 0, 4), "BAD_SIGNATURE", 3);
  });

  it("reports a cut-off signature or header as TRUNCATED", () => {
    expectError(() => decodeProxyV2(v4(), 0, 7), "TRUNCATED", 0);
    expectError(() => decodeProxyV2(v4(), 0, 15), "TRUNCATED", 0);
    expectError(() => decodeProxyV2(new Uint8Array(0), 0, 0), "TRUNCATED", 0);
  });

  it("rejects versions other than 2 and commands other than LOCAL/PROXY", () => {
    for (const verCmd of [0x11, 0x31, 0x01, 0x22, 0x2f]) {
      const b = withByte(V4_HEX, 12, verCmd);
      expectError(() => decodeProxyV2(b, 0, b.length), "BAD_VERSION", 12);
    }
  });

  it("refuses AF_UNIX as unsupported", () => {
    for (const fam of [0x31, 0x32, 0x30]) {
      const b = withByte(V4_HEX, 13, fam);
      expectError(() => decodeProxyV2(b, 0, b.length), "UNSUPPORTED", 13);
    }
  });

  it("rejects family/transport bytes the spec does not list", () => {
    for (const fam of [0x01, 0x02, 0x10, 0x20, 0x13, 0x41, 0xf1]) {
      const b = withByte(V4_HEX, 13, fam);
      expectError(() => decodeProxyV2(b, 0, b.length), "BAD_VALUE", 13);
    }
  });

  it("rejects a declared length shorter than the address block", () => {
    const b = withByte(V4_HEX, 15, 11);
    expectError(() => decodeProxyV2(b, 0, b.length), "BAD_TOTAL_LENGTH", 14);
    const v6 = withByte(V6_HEX, 15, 35);
    expectError(() => decodeProxyV2(v6, 0, v6.length), "BAD_TOTAL_LENGTH", 14);
  });

  it("reports a body cut short as TRUNCATED at the body", () => {
    const b = v4();
    expectError(() => decodeProxyV2(b, 0, b.length - 1), "TRUNCATED", 16);
    // The bytes are in the buffer but beyond `end`: they must not be read.
    const shifted = new Uint8Array([0, 0, ...b]);
    expectError(() => decodeProxyV2(shifted, 2, shifted.length - 1), "TRUNCATED", 18);
  });

  it("rejects a TLV running past the declared length", () => {
    // TLV at byte 28 claims 3 value bytes, the header ends after 2.
    const b = withByte(V4_HEX, 30, 3);
    expectError(() => decodeProxyV2(b, 0, b.length), "OPTION_OVERRUN", 28);
    // Declared length leaves 2 bytes after the addresses: not even a TLV header.
    const c = fromHex(`${SIG} 21 11 000e c0a80001 c0a8000b dc04 01bb 0400`);
    expectError(() => decodeProxyV2(c, 0, c.length), "OPTION_OVERRUN", 28);
  });

  it("decodes several TLVs, including empty ones", () => {
    const b = fromHex(`${SIG} 20 00 000c 04 0000 05 0002 abcd 30 0001 41`);
    expect(decodeProxyV2(b, 0, b.length).repr.tlvs).toEqual([
      { type: ProxyV2Tlv.noop, value: new Uint8Array(0) },
      { type: ProxyV2Tlv.uniqueId, value: fromHex("abcd") },
      { type: ProxyV2Tlv.netns, value: fromHex("41") },
    ]);
  });
});

describe("PROXY v2 encode errors", () => {
  const v4Ep = { addr: parseIp("10.0.0.1"), port: 1 };
  const v6Ep = { addr: parseIp("::1"), port: 2 };

  it("rejects inconsistent reprs with BAD_VALUE", () => {
    const bad: ProxyV2Repr[] = [
      { ...V4, destination: v6Ep },
      { command: "proxy", transport: "stream", source: v4Ep, tlvs: [] },
      { command: "proxy", transport: "unspec", source: v4Ep, destination: v4Ep, tlvs: [] },
      { command: "proxy", transport: "dgram", tlvs: [] },
      { ...V4, source: { addr: new Uint8Array(5), port: 1 } },
      { ...V4, source: { addr: v4Ep.addr, port: 65536 } },
      { ...V4, tlvs: [{ type: 256, value: new Uint8Array(0) }] },
      { ...V4, tlvs: [{ type: 1, value: new Uint8Array(65536) }] },
      {
        ...V4,
        tlvs: [
          { type: 1, value: new Uint8Array(65000) },
          { type: 2, value: new Uint8Array(600) },
        ],
      },
    ];
    for (const repr of bad) {
      expectError(() => proxyV2Length(repr), "BAD_VALUE", 0);
      expectError(() => encodeProxyV2(repr, new Uint8Array(70000), 3), "BAD_VALUE", 3);
    }
  });

  it("accepts a TLV of exactly 65535 bytes when it still fits the length field", () => {
    const repr: ProxyV2Repr = { ...LOCAL, tlvs: [{ type: 4, value: new Uint8Array(65532) }] };
    expect(proxyV2Length(repr)).toBe(16 + 65535);
  });

  it("throws NO_ROOM without writing when the buffer is too small", () => {
    const buf = new Uint8Array(40).fill(0x5a);
    expectError(() => encodeProxyV2(V4, buf, 10), "NO_ROOM", 10);
    expect(buf.every((x) => x === 0x5a)).toBe(true);
  });
});

// --- round trips and fuzzing ----------------------------------------------

const port = fc.integer({ min: 0, max: 0xffff });
const endpointOf = (bytes: number) =>
  fc.record({ addr: fc.uint8Array({ minLength: bytes, maxLength: bytes }), port });
const command = fc.constantFrom("local" as const, "proxy" as const);
const tlvs = fc.array(
  fc.record({ type: fc.integer({ min: 0, max: 0xff }), value: fc.uint8Array({ maxLength: 24 }) }),
  { maxLength: 4 },
);
const withAddresses = (bytes: number): fc.Arbitrary<ProxyV2Repr> =>
  fc.record({
    command,
    transport: fc.constantFrom("stream" as const, "dgram" as const),
    source: endpointOf(bytes),
    destination: endpointOf(bytes),
    tlvs,
  });
const reprArb: fc.Arbitrary<ProxyV2Repr> = fc.oneof(
  fc.record({ command, transport: fc.constant("unspec" as const), tlvs }),
  withAddresses(4),
  withAddresses(16),
);

describe("PROXY v2 round trip", () => {
  it("decode(encode(x)) equals x and the length agrees", () => {
    fc.assert(
      fc.property(reprArb, (repr) => {
        const b = encode(repr);
        expect(b.length).toBe(proxyV2Length(repr));
        expect(decodeProxyV2(b, 0, b.length)).toEqual({ repr, length: b.length });
      }),
      { numRuns: 2_000 },
    );
  });

  it("encodes at an offset without touching the surrounding bytes", () => {
    fc.assert(
      fc.property(reprArb, fc.nat(16), fc.nat(16), (repr, before, after) => {
        const plain = encode(repr);
        const buf = new Uint8Array(before + plain.length + after).fill(0xa5);
        expect(encodeProxyV2(repr, buf, before)).toBe(plain.length);
        expect(buf.subarray(before, before + plain.length)).toEqual(plain);
        expect(buf.subarray(0, before).every((x) => x === 0xa5)).toBe(true);
        expect(buf.subarray(before + plain.length).every((x) => x === 0xa5)).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });
});

const byte = fc.integer({ min: 0, max: 0xff });
// A valid signature followed by mostly plausible header fields, to get past the early checks.
const plausibleHeader = fc
  .tuple(
    fc.oneof(fc.constantFrom(0x20, 0x21), byte),
    fc.oneof(fc.constantFrom(0x00, 0x11, 0x12, 0x21, 0x22, 0x31), byte),
    fc.oneof(fc.nat(64), fc.nat(0xffff)),
    fc.uint8Array({ maxLength: 64 }),
  )
  .map(([verCmd, fam, len, rest]) => {
    const out = new Uint8Array(16 + rest.length);
    out.set(PROXY_V2_SIGNATURE);
    out.set([verCmd, fam, len >> 8, len & 0xff], 12);
    out.set(rest, 16);
    return out;
  });

describe("PROXY v2 decoder on hostile input", () => {
  it("returns or throws a CodecError, never reads past end, and re-encodes exactly", () => {
    // Length-field lies: the header length (byte 14) or any TLV's length.
    const mutation = fc.oneof(truncate, flip, u16(fc.oneof(fc.constant(14), fc.nat())), append);
    fuzzDecoder({
      input: fc.oneof(
        { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 },
        { arbitrary: plausibleHeader, weight: 2 },
        { arbitrary: mutated(reprArb, encode, mutation), weight: 3 },
      ),
      // The encoding determines the repr, so equal bytes mean equal reprs.
      decode: (buf, offset, end) => {
        const r = decodeProxyV2(buf, offset, end);
        return { summary: toHex(encode(r.repr)), length: r.length };
      },
      accept: (input, summary, length) =>
        check(summary === toHex(input.subarray(0, length)), "re-encoding differs"),
    });
  });
});
