import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isV4Mapped, parseIp } from "../../src/option-codec/address.js";
import { fromHex, toHex } from "../../src/option-codec/bytes.js";
import {
  decodeSpp,
  encodeSpp,
  isSpp,
  SPP_LENGTH,
  SPP_MAGIC,
  type SppRepr,
} from "../../src/option-codec/spp.js";
import { expectError } from "./helpers/errors.js";
import { check, flip, fuzzDecoder, mutated, truncate } from "./helpers/fuzz.js";

// Client 203.0.113.7:51234 reached the proxy at 198.51.100.1:443.
const V4_HEX = `56ec
  00000000000000000000ffff cb007107
  00000000000000000000ffff c6336401
  c822 01bb`;
const V4: SppRepr = {
  client: { addr: parseIp("203.0.113.7"), port: 51234 },
  proxy: { addr: parseIp("198.51.100.1"), port: 443 },
};

// Client [2001:db8::1234]:4500 reached the proxy at [2001:db8:ffff::1]:53.
const V6_HEX = `56ec
  20010db8000000000000000000001234
  20010db8ffff00000000000000000001
  1194 0035`;
const V6: SppRepr = {
  client: { addr: parseIp("2001:db8::1234"), port: 4500 },
  proxy: { addr: parseIp("2001:db8:ffff::1"), port: 53 },
};

function encode(repr: SppRepr): Uint8Array {
  const out = new Uint8Array(SPP_LENGTH);
  expect(encodeSpp(repr, out, 0)).toBe(SPP_LENGTH);
  return out;
}

describe("SPP vectors", () => {
  it("has the documented magic and size", () => {
    expect([SPP_MAGIC, SPP_LENGTH]).toEqual([0x56ec, 38]);
  });

  for (const [name, hex, repr] of [
    ["v4 (mapped on the wire)", V4_HEX, V4],
    ["v6", V6_HEX, V6],
  ] as const) {
    it(`encodes ${name}`, () => {
      expect(toHex(encode(repr))).toBe(toHex(fromHex(hex)));
    });

    it(`decodes ${name}`, () => {
      const b = fromHex(hex);
      expect(decodeSpp(b, 0, b.length)).toEqual(repr);
    });
  }

  it("decodes at an offset, followed by the datagram payload", () => {
    const b = new Uint8Array([1, 2, ...fromHex(V4_HEX), 0x68, 0x69]);
    expect(decodeSpp(b, 2, b.length)).toEqual(V4);
  });

  it("hands a v4-mapped address to the encoder back as 4 bytes", () => {
    const mapped = parseIp("::ffff:203.0.113.7");
    const b = encode({ ...V4, client: { addr: mapped, port: 51234 } });
    expect(toHex(b)).toBe(toHex(fromHex(V4_HEX)));
    expect(decodeSpp(b, 0, b.length).client.addr).toEqual(parseIp("203.0.113.7"));
  });

  it("recognises the magic only", () => {
    const b = fromHex(V4_HEX);
    expect(isSpp(b, 0, 2)).toBe(true);
    expect(isSpp(b, 0, 1)).toBe(false);
    expect(isSpp(b, 1, b.length)).toBe(false);
  });
});

describe("SPP errors", () => {
  it("rejects a wrong magic at the differing byte", () => {
    const b = fromHex(V4_HEX);
    b[1] = 0xed;
    expectError(() => decodeSpp(b, 0, b.length), "BAD_SIGNATURE", 1);
    expectError(() => decodeSpp(fromHex("ec56"), 0, 2), "BAD_SIGNATURE", 0);
    expectError(() => decodeSpp(fromHex("00"), 0, 1), "BAD_SIGNATURE", 0);
  });

  it("reports short input as TRUNCATED", () => {
    const b = fromHex(V4_HEX);
    expectError(() => decodeSpp(b, 0, 37), "TRUNCATED", 0);
    expectError(() => decodeSpp(b, 0, 1), "TRUNCATED", 0);
    expectError(() => decodeSpp(b, 0, 0), "TRUNCATED", 0);
    const shifted = new Uint8Array([9, ...b]);
    expectError(() => decodeSpp(shifted, 1, 20), "TRUNCATED", 1);
  });

  it("rejects bad reprs and small buffers without writing", () => {
    const buf = new Uint8Array(SPP_LENGTH + 4).fill(0x5a);
    expectError(
      () => encodeSpp({ ...V4, proxy: { addr: new Uint8Array(5), port: 1 } }, buf, 0),
      "BAD_VALUE",
      0,
    );
    expectError(
      () => encodeSpp({ ...V4, proxy: { addr: V4.proxy.addr, port: -1 } }, buf, 0),
      "BAD_VALUE",
      0,
    );
    expectError(() => encodeSpp(V4, buf, 5), "NO_ROOM", 5);
    expect(buf.every((x) => x === 0x5a)).toBe(true);
  });
});

// --- round trips and fuzzing ----------------------------------------------

const port = fc.integer({ min: 0, max: 0xffff });
// 16-byte v4-mapped addresses are left out: they decode as 4 bytes by design.
const addr = fc.oneof(
  fc.uint8Array({ minLength: 4, maxLength: 4 }),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).filter((a) => !isV4Mapped(a)),
);
const reprArb: fc.Arbitrary<SppRepr> = fc.record({
  client: fc.record({ addr, port }),
  proxy: fc.record({ addr, port }),
});

describe("SPP round trip", () => {
  it("decode(encode(x)) equals x", () => {
    fc.assert(
      fc.property(reprArb, (repr) => {
        const b = encode(repr);
        expect(decodeSpp(b, 0, b.length)).toEqual(repr);
      }),
      { numRuns: 2_000 },
    );
  });

  it("encodes at an offset without touching the surrounding bytes", () => {
    fc.assert(
      fc.property(reprArb, fc.nat(16), fc.nat(16), (repr, before, after) => {
        const plain = encode(repr);
        const buf = new Uint8Array(before + SPP_LENGTH + after).fill(0xa5);
        expect(encodeSpp(repr, buf, before)).toBe(SPP_LENGTH);
        expect(buf.subarray(before, before + SPP_LENGTH)).toEqual(plain);
        expect(buf.subarray(0, before).every((x) => x === 0xa5)).toBe(true);
        expect(buf.subarray(before + SPP_LENGTH).every((x) => x === 0xa5)).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe("SPP decoder on hostile input", () => {
  it("returns or throws a CodecError, never reads past end, and re-encodes exactly", () => {
    fuzzDecoder({
      input: fc.oneof(
        fc.uint8Array({ maxLength: 48 }),
        fc.uint8Array({ maxLength: 46 }).map((rest) => new Uint8Array([0x56, 0xec, ...rest])),
        mutated(reprArb, encode, fc.oneof(truncate, flip)),
      ),
      // The encoding is canonical, so a successful decode is summed up by re-encoding it.
      decode: (buf, offset, end) => ({
        summary: toHex(encode(decodeSpp(buf, offset, end))),
        length: SPP_LENGTH,
      }),
      accept: (input, summary) =>
        check(summary === toHex(input.subarray(0, SPP_LENGTH)), "re-encoding differs"),
    });
  });
});
