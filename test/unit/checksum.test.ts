import { describe, expect, it } from "vitest";
import { fromHex } from "../../src/option-codec/bytes.js";
import { adjust, finish, fold, sumBytes } from "../../src/option-codec/checksum.js";

// A naive RFC 1071 reference, written differently on purpose (fold every step).
function reference(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) {
    s += (b[i]! << 8) | (b[i + 1] ?? 0);
    s = (s & 0xffff) + (s >>> 16);
  }
  return ~s & 0xffff;
}

describe("internet checksum", () => {
  it("matches the RFC 1071 example sum", () => {
    // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (folded).
    expect(fold(sumBytes(fromHex("0001f203f4f5f6f7"), 0, 8))).toBe(0xddf2);
  });

  it("gives the known checksum of a real IPv4 header", () => {
    // A classic example header (checksum field zero): 45 00 00 73 00 00 40 00 40 11 .. c0 a8 00 01 c0 a8 00 c7
    const h = fromHex("450000730000400040110000c0a80001c0a800c7");
    expect(finish(sumBytes(h, 0, h.length))).toBe(0xb861);
  });

  it("pads an odd byte with zero", () => {
    expect(finish(sumBytes(Uint8Array.of(0xab), 0, 1))).toBe(~0xab00 & 0xffff);
  });

  it("incremental update (RFC 1624) equals recomputation for random edits", () => {
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let n = 0; n < 2000; n++) {
      const b = new Uint8Array(2 + 2 * (rnd() % 40));
      for (let i = 0; i < b.length; i++) b[i] = rnd() & 0xff;
      const c = reference(b);
      const at = 2 * (rnd() % (b.length / 2));
      const old = (b[at]! << 8) | b[at + 1]!;
      const neu = rnd() & 0xffff;
      b[at] = neu >> 8;
      b[at + 1] = neu & 0xff;
      const inc = adjust(c, old, neu);
      const full = reference(b);
      // 0x0000 and 0xffff are the same value in one's complement.
      expect(inc === full || (inc ^ full) === 0xffff).toBe(true);
    }
  });
});
