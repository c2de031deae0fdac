import { describe, expect, it } from "vitest";
import { parseIp } from "../../src/option-codec/address.js";
import { fromHex, toHex } from "../../src/option-codec/bytes.js";
import { CodecError } from "../../src/option-codec/errors.js";
import {
  decodeToa,
  encodeToa,
  type ToaFormat,
  type ToaRepr,
  toaLength,
} from "../../src/option-codec/toa.js";
import { roundTrip } from "./helpers/round-trip.js";

function codec(format: ToaFormat) {
  return {
    length: (r: ToaRepr) => toaLength(format, r.addr.length === 4 ? 4 : 6),
    encode: (r: ToaRepr, b: Uint8Array, o: number) => encodeToa(format, r, b, o),
    decode: (b: Uint8Array, o: number, e: number) => decodeToa(format, b, o, e),
  };
}

const v4 = { addr: parseIp("198.51.100.7"), port: 40000 };
const v6 = { addr: parseIp("2001:db8:c::7"), port: 40000 };

// Expected bytes written out by hand from DIALECTS.md.
const vectors: [string, ToaFormat, ToaRepr, string][] = [
  ["dpvs v4", { kind: 254, layout: "port-addr" }, v4, "fe08 9c40 c6336407"],
  ["dpvs v6", { kind: 254, layout: "port-addr" }, v6, "fe14 9c40 20010db8000c00000000000000000007"],
  ["lvs v6", { kind: 253, layout: "port-addr" }, v6, "fd14 9c40 20010db8000c00000000000000000007"],
  ["tencent v4", { kind: 200, layout: "port-addr" }, v4, "c808 9c40 c6336407"],
  [
    "bytedance 16",
    { kind: 254, layout: "port-addr-vaddr" },
    { ...v4, vport: 80, vaddr: parseIp("203.0.113.10") },
    "fe10 9c40 c6336407 0000 0050 cb00710a",
  ],
  [
    "ttm v4 host order",
    { kind: 254, layout: "ttm", afOrder: "host" },
    v4,
    "fe16 0200 9c40 c6336407000000000000000000000000",
  ],
  [
    "ttm v6 network order",
    { kind: 254, layout: "ttm", afOrder: "network" },
    v6,
    "fe16 000a 9c40 20010db8000c00000000000000000007",
  ],
  ["aliyun-cdn v4", { kind: 28, layout: "version-addr" }, { addr: v4.addr }, "1c07 01 c6336407"],
  [
    "aliyun-cdn v6",
    { kind: 28, layout: "version-addr" },
    { addr: v6.addr },
    "1c13 02 20010db8000c00000000000000000007",
  ],
];

describe("TOA carriers", () => {
  for (const [name, format, repr, hex] of vectors) {
    it(`${name}: matches the byte vector and round-trips`, () => {
      const bytes = roundTrip(codec(format), repr);
      expect(toHex(bytes)).toBe(hex.replace(/\s/g, ""));
    });
  }

  it("takes the family from the length byte", () => {
    const f: ToaFormat = { kind: 254, layout: "port-addr" };
    expect(decodeToa(f, fromHex("fe089c40c6336407"), 0, 8).addr.length).toBe(4);
    expect(
      decodeToa(f, fromHex("fe149c4020010db8000c00000000000000000007"), 0, 20).addr.length,
    ).toBe(16);
  });

  it("never takes TCP Fast Open's experimental option for a TOA", () => {
    const f: ToaFormat = { kind: 254, layout: "port-addr" };
    const tfo = fromHex("fe08f98901020304");
    expect(() => decodeToa(f, tfo, 0, 8)).toThrow(expect.objectContaining({ code: "BAD_CARRIER" }));
  });

  it.each([
    ["fe00", "BAD_OPTION_LENGTH"],
    ["fe01", "BAD_OPTION_LENGTH"],
    ["fe02", "BAD_CARRIER"],
    ["fe09", "TRUNCATED"],
    ["fe", "TRUNCATED"],
    ["fd089c40c6336407", "BAD_CARRIER"],
    [`feff${"00".repeat(253)}`, "BAD_CARRIER"],
  ])("rejects %s with %s", (hex, code) => {
    const b = fromHex(hex);
    try {
      decodeToa({ kind: 254, layout: "port-addr" }, b, 0, b.length);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(CodecError);
      expect((e as CodecError).code).toBe(code);
    }
  });
});
