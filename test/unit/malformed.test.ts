import { describe, expect, it } from "vitest";
import { fromHex } from "../../src/option-codec/bytes.js";
import type { CodecErrorCode } from "../../src/option-codec/errors.js";
import { parseIpOptions } from "../../src/option-codec/ip-options.js";
import { parseIpv4Header } from "../../src/option-codec/ipv4.js";
import { Ipv6Chain, MAX_EXTENSION_HEADERS, parseIpv6Header } from "../../src/option-codec/ipv6.js";
import { PacketInfo, parsePacket } from "../../src/option-codec/packet.js";
import { decodeProxyV1 } from "../../src/option-codec/proxy-v1.js";
import { decodeProxyV2 } from "../../src/option-codec/proxy-v2.js";
import { decodeSpp } from "../../src/option-codec/spp.js";
import { parseTcp } from "../../src/option-codec/tcp.js";
import { parseTcpOptions } from "../../src/option-codec/tcp-options.js";
import { decodeToa, type ToaFormat } from "../../src/option-codec/toa.js";
import { parseUdp } from "../../src/option-codec/udp.js";
import { decodeOpp, decodeUoaOption } from "../../src/option-codec/uoa.js";
import { removeUoaOpp } from "../../src/option-codec/uoa-surgery.js";
import { codecError, expectError } from "./helpers/errors.js";

// Every vector here is untrusted input with one thing wrong. The codes and
// offsets are part of the codec's contract (errors.ts), so they are exact.

const hex = fromHex;

/** A copy of `b` with `edits` (offset -> byte) applied. */
function edit(b: Uint8Array, edits: Record<number, number>): Uint8Array {
  const out = b.slice();
  for (const [at, v] of Object.entries(edits)) out[Number(at)] = v;
  return out;
}

/** `b` between `pre` and `post` bytes of 0xee, so that absolute offsets can be checked. */
function at(pre: number, b: Uint8Array, post = 0): Uint8Array {
  const out = new Uint8Array(pre + b.length + post).fill(0xee);
  out.set(b, pre);
  return out;
}

// The two whole-packet entry points (the gateway's and the tools'): both must
// report the same thing.
const packetDecoders: ((b: Uint8Array, len: number) => unknown)[] = [
  (b, len) => new PacketInfo().parse(b, len),
  (b, len) => parsePacket(b, len),
];

// 192.0.2.100:40000 -> 192.0.2.10:80, ACK, no options, no payload. Checksums are
// left zero: no decoder checks them.
const IP4_TCP = "45000028 00014000 40060000 c0000264 c000020a";
const TCP = "9c400050 00000001 00000000 5010ffff 00000000";
const V4_TCP = hex(IP4_TCP + TCP);
// The same over UDP with a 4-byte payload.
const V4_UDP = hex("45000020 00014000 40110000 c0000264 c000020a 9c400035 000c0000 01020304");
// 2001:db8:c::7 -> 2001:db8:5::10, TCP as above.
const SRC6 = "20010db8000c00000000000000000007";
const DST6 = "20010db8000500000000000000000010";
const V6_TCP = hex(`60000000 0014 06 40 ${SRC6} ${DST6} ${TCP}`);

// opp version 1 (v4), protocol 17, length 12, then UOA 1f08 port addr; and its v6 form.
const OPP = "10 11 000c 1f08 9c40 c6336407";
const OPP6 = "20 11 0018 1f14 9c40 20010db8000c00000000000000000007";

/** An IPv6 packet: fixed header naming `nh`, then `payload`; `pl` overrides the length field. */
function v6(nh: number, payload: Uint8Array, pl = payload.length): Uint8Array {
  const out = new Uint8Array(40 + payload.length);
  out.set(hex(`60000000 0000 00 40 ${SRC6} ${DST6}`));
  out[4] = pl >> 8;
  out[5] = pl & 0xff;
  out[6] = nh;
  out.set(payload, 40);
  return out;
}

/** An 8-byte hop-by-hop / dest-opts / routing header: next header, length 0, padding. */
function ext8(nh: number): string {
  return `${nh.toString(16).padStart(2, "0")}00 00000000 0000`;
}

describe("IPv4 header", () => {
  it("accepts the base vectors (so every failure below is the one edit)", () => {
    expect(new PacketInfo().parse(V4_TCP, 40).payloadOffset).toBe(40);
    expect(new PacketInfo().parse(V4_UDP, 32).payloadOffset).toBe(28);
    expect(parsePacket(V4_TCP).ip.family).toBe(4);
    expect(parsePacket(V4_UDP).l4.protocol).toBe(17);
  });

  it("an empty packet is TRUNCATED at 0", () => {
    expectError(() => new PacketInfo().parse(new Uint8Array(0), 0), "TRUNCATED", 0);
    expectError(() => new PacketInfo().parse(V4_TCP, 0), "TRUNCATED", 0);
    expectError(() => parseIpv4Header(new Uint8Array(0)), "TRUNCATED", 0);
    expectError(() => parseIpv6Header(new Uint8Array(0)), "TRUNCATED", 0);
  });

  it("parsePacket: an empty packet is TRUNCATED at 0, as PacketInfo.parse reports it", () => {
    // There is no version nibble to be bad: the packet is cut before it.
    expectError(() => parsePacket(new Uint8Array(0)), "TRUNCATED", 0);
    expectError(() => parsePacket(V4_TCP, 0), "TRUNCATED", 0);
  });

  it("IHL 0..4 is BAD_HEADER_LENGTH at 0", () => {
    for (const ihl of [0, 1, 4]) {
      const b = edit(V4_TCP, { 0: 0x40 | ihl });
      expectError(() => parseIpv4Header(b), "BAD_HEADER_LENGTH", 0);
      for (const f of packetDecoders) expectError(() => f(b, b.length), "BAD_HEADER_LENGTH", 0);
    }
  });

  it("IHL larger than the bytes given is TRUNCATED at 0", () => {
    // IHL 15 = 60 bytes, only 40 present.
    const b = edit(V4_TCP, { 0: 0x4f });
    expectError(() => parseIpv4Header(b), "TRUNCATED", 0);
    for (const f of packetDecoders) expectError(() => f(b, b.length), "TRUNCATED", 0);
  });

  it("total length < IHL*4 is BAD_TOTAL_LENGTH at 2", () => {
    const cases = [
      edit(V4_TCP, { 2: 0, 3: 19 }),
      edit(V4_TCP, { 2: 0, 3: 0 }),
      // IHL 6 (24 bytes, one NOP word) but total length 20.
      hex("46000014 00014000 40060000 c0000264 c000020a 01010101 00000000"),
    ];
    for (const b of cases) {
      expectError(() => parseIpv4Header(b), "BAD_TOTAL_LENGTH", 2);
      for (const f of packetDecoders) expectError(() => f(b, b.length), "BAD_TOTAL_LENGTH", 2);
    }
  });

  it("total length > bytes given is BAD_TOTAL_LENGTH at 2", () => {
    for (const total of [41, 0x100, 0xffff]) {
      const b = edit(V4_TCP, { 2: total >> 8, 3: total & 0xff });
      expectError(() => parseIpv4Header(b), "BAD_TOTAL_LENGTH", 2);
      for (const f of packetDecoders) expectError(() => f(b, b.length), "BAD_TOTAL_LENGTH", 2);
    }
    // The bytes exist in the buffer but lie beyond `len`: len is the packet.
    for (const f of packetDecoders) expectError(() => f(V4_TCP, 39), "BAD_TOTAL_LENGTH", 2);
  });

  it("a header cut anywhere in its first 20 bytes is TRUNCATED at 0", () => {
    for (let n = 1; n < 20; n++) {
      expectError(() => parseIpv4Header(V4_TCP.slice(0, n)), "TRUNCATED", 0);
      expectError(() => parseIpv4Header(V4_TCP, 0, n), "TRUNCATED", 0);
      for (const f of packetDecoders) {
        expectError(() => f(V4_TCP.slice(0, n), n), "TRUNCATED", 0);
        expectError(() => f(V4_TCP, n), "TRUNCATED", 0);
      }
    }
  });

  it("versions other than 4 and 6 are BAD_VERSION at 0", () => {
    for (const version of [0, 5, 7, 15]) {
      const b = edit(V4_TCP, { 0: (version << 4) | 5 });
      expectError(() => parseIpv4Header(b), "BAD_VERSION", 0);
      for (const f of packetDecoders) expectError(() => f(b, b.length), "BAD_VERSION", 0);
    }
    // An IPv6 packet handed to the IPv4 header decoder.
    expectError(() => parseIpv4Header(V6_TCP), "BAD_VERSION", 0);
    expectError(() => parseIpv6Header(V4_TCP), "BAD_VERSION", 0);
  });

  it("reports offsets from the start of the buffer, not of the header", () => {
    expectError(() => parseIpv4Header(at(7, edit(V4_TCP, { 0: 0x44 })), 7), "BAD_HEADER_LENGTH", 7);
    expectError(() => parseIpv4Header(at(7, edit(V4_TCP, { 3: 19 })), 7), "BAD_TOTAL_LENGTH", 9);
    expectError(() => parseIpv4Header(at(7, V4_TCP), 7, 7 + 19), "TRUNCATED", 7);
  });
});

describe("IPv4 options", () => {
  // IHL 6 or 7: one or two words of options after the 20-byte header.
  const withOptions = (opts: string) => {
    const words = hex(opts).length / 4;
    const total = 20 + words * 4 + 20;
    const ip = `4${(5 + words).toString(16)}00 00${total.toString(16)} 00014000 40060000 c0000264 c000020a`;
    return hex(ip + opts + TCP);
  };
  const cases: [string, string, CodecErrorCode, number][] = [
    ["length 0", "07000000", "BAD_OPTION_LENGTH", 20],
    ["length 1", "07010000", "BAD_OPTION_LENGTH", 20],
    ["length 0 after a NOP", "01070000", "BAD_OPTION_LENGTH", 21],
    ["length 255", "07ff0000", "OPTION_OVERRUN", 20],
    ["length 8 in a 4-byte area", "07080000", "OPTION_OVERRUN", 20],
    ["overrunning by one byte", "01010107 06000000", "OPTION_OVERRUN", 23],
    ["a type with no length byte at the end", "01010144", "OPTION_OVERRUN", 23],
    ["a UOA option cut short", "1f080000", "OPTION_OVERRUN", 20],
  ];

  for (const [name, opts, code, offset] of cases) {
    it(`${name}: ${code} at ${offset}`, () => {
      // An odd-length case is padded to a word so only the option is wrong.
      const padded = opts.replace(/\s/g, "").length % 8 === 0 ? opts : `${opts}000000`;
      const b = withOptions(padded);
      expectError(() => parseIpv4Header(b), code, offset);
      expectError(() => parsePacket(b), code, offset);
      const area = hex(padded);
      expectError(() => parseIpOptions(at(20, area), 20, 20 + area.length), code, offset);
    });
  }

  it("EOL ends the list: what follows it is padding, not options", () => {
    expect(parseIpv4Header(withOptions("00070000")).options).toEqual([]);
  });

  it("honours `end`: an option complete only past it is OPTION_OVERRUN", () => {
    // NOP NOP, then an 8-byte option whose last 6 bytes lie past `end`.
    const buf = hex("0101 1f08 9c40 c0000264 00000000");
    expectError(() => parseIpOptions(buf, 0, 4), "OPTION_OVERRUN", 2);
    expectError(() => parseIpOptions(buf.subarray(0, 4), 0, 4), "OPTION_OVERRUN", 2);
    // A type byte as the last byte before `end`, its length byte just after.
    expectError(() => parseIpOptions(buf, 0, 3), "OPTION_OVERRUN", 2);
    expect(parseIpOptions(buf, 0, 10)).toHaveLength(3);
  });
});

describe("TCP header", () => {
  // Data offset and TCP options, in the bare segment and inside a packet (at 20 / 40).
  const seg = hex(TCP);

  it("data offset 0..4 is BAD_DATA_OFFSET at byte 12 of the segment", () => {
    for (let doff = 0; doff < 5; doff++) {
      const s = edit(seg, { 12: doff << 4 });
      expectError(() => parseTcp(s, 0, s.length), "BAD_DATA_OFFSET", 12);
      const p4 = edit(V4_TCP, { 32: doff << 4 });
      for (const f of packetDecoders) expectError(() => f(p4, 40), "BAD_DATA_OFFSET", 32);
      const p6 = edit(V6_TCP, { 52: doff << 4 });
      for (const f of packetDecoders) expectError(() => f(p6, 60), "BAD_DATA_OFFSET", 52);
    }
  });

  it("data offset past the segment is BAD_DATA_OFFSET at byte 12", () => {
    for (const doff of [6, 15]) {
      const s = edit(seg, { 12: doff << 4 });
      expectError(() => parseTcp(s, 0, s.length), "BAD_DATA_OFFSET", 12);
      const p4 = edit(V4_TCP, { 32: doff << 4 });
      for (const f of packetDecoders) expectError(() => f(p4, 40), "BAD_DATA_OFFSET", 32);
    }
    // Options that exist in the buffer but past the segment's end do not count.
    const s = hex(`${TCP.replace("5010", "6010")} 01010101`);
    expect(parseTcp(s, 0, 24).options).toHaveLength(4);
    expectError(() => parseTcp(s, 0, 23), "BAD_DATA_OFFSET", 12);
  });

  it("a segment shorter than 20 bytes is TRUNCATED at its start", () => {
    for (let n = 0; n < 20; n++) {
      expectError(() => parseTcp(seg, 0, n), "TRUNCATED", 0);
      expectError(() => parseTcp(at(5, seg), 5, 5 + n), "TRUNCATED", 5);
    }
    // The IP total length ends the segment at 19 bytes; the 20th is in the buffer.
    const p = edit(V4_TCP, { 3: 39 });
    for (const f of packetDecoders) expectError(() => f(p, 40), "TRUNCATED", 20);
  });
});

describe("TCP options", () => {
  /** A segment with data offset 5 + words, option bytes `opts`. */
  const segWith = (opts: string) => {
    const o = hex(opts);
    const s = hex(TCP + opts);
    s[12] = (5 + o.length / 4) << 4;
    return s;
  };
  const cases: [string, string, CodecErrorCode, number][] = [
    ["MSS length 0", "02000000", "BAD_OPTION_LENGTH", 20],
    ["MSS length 1", "02010000", "BAD_OPTION_LENGTH", 20],
    ["TOA kind length 0 after NOPs", "0101fe00", "BAD_OPTION_LENGTH", 22],
    ["length 255", "02ff0000", "OPTION_OVERRUN", 20],
    ["kind with no length byte at the end", "01010102", "OPTION_OVERRUN", 23],
    ["timestamps running past the header", "0101080a 00000001", "OPTION_OVERRUN", 22],
    ["MSS overrunning by one byte", "01010101 010204 05", "OPTION_OVERRUN", 25],
  ];

  for (const [name, opts, code, offset] of cases) {
    it(`${name}: ${code} at ${offset}`, () => {
      const s = segWith(opts);
      expectError(() => parseTcp(s, 0, s.length), code, offset);
      expectError(() => parseTcp(at(3, s), 3, 3 + s.length), code, offset + 3);
      const area = hex(opts);
      expectError(() => parseTcpOptions(at(20, area), 20, 20 + area.length), code, offset);
      // Inside an IPv4 packet, through the decoder that looks at options.
      const p = new Uint8Array(20 + s.length);
      p.set(hex(IP4_TCP));
      p[3] = p.length;
      p.set(s, 20);
      expectError(() => parsePacket(p), code, offset + 20);
    });
  }

  it("honours `end`: a length byte or option body just past it does not count", () => {
    // NOP NOP MSS(4) 05b4: the MSS ends at 6.
    const area = hex("0101 0204 05b4 0000");
    expect(parseTcpOptions(area, 0, 6)).toHaveLength(3);
    expectError(() => parseTcpOptions(area, 0, 5), "OPTION_OVERRUN", 2);
    expectError(() => parseTcpOptions(area, 0, 3), "OPTION_OVERRUN", 2);
    expectError(() => parseTcpOptions(area.subarray(0, 5), 0, 5), "OPTION_OVERRUN", 2);
    expectError(() => parseTcpOptions(area.subarray(1, 5), 0, 4), "OPTION_OVERRUN", 1);
  });
});

describe("UDP header", () => {
  const dgram = V4_UDP.slice(20);

  it("length < 8 is BAD_TOTAL_LENGTH at byte 4", () => {
    for (let len = 0; len < 8; len++) {
      const d = edit(dgram, { 4: 0, 5: len });
      expectError(() => parseUdp(d, 0, d.length), "BAD_TOTAL_LENGTH", 4);
      const p = edit(V4_UDP, { 24: 0, 25: len });
      for (const f of packetDecoders) expectError(() => f(p, 32), "BAD_TOTAL_LENGTH", 24);
    }
  });

  it("length > bytes available is BAD_TOTAL_LENGTH at byte 4", () => {
    for (const len of [13, 0x100, 0xffff]) {
      const d = edit(dgram, { 4: len >> 8, 5: len & 0xff });
      expectError(() => parseUdp(d, 0, d.length), "BAD_TOTAL_LENGTH", 4);
      const p = edit(V4_UDP, { 24: len >> 8, 25: len & 0xff });
      for (const f of packetDecoders) expectError(() => f(p, 32), "BAD_TOTAL_LENGTH", 24);
    }
    // Bytes past `end` are not available, even when the buffer has them.
    expectError(() => parseUdp(dgram, 0, 11), "BAD_TOTAL_LENGTH", 4);
  });

  it("a datagram shorter than 8 bytes is TRUNCATED at its start", () => {
    for (let n = 0; n < 8; n++) expectError(() => parseUdp(dgram, 0, n), "TRUNCATED", 0);
    expectError(() => parseUdp(at(9, dgram), 9, 16), "TRUNCATED", 9);
  });

  it("PacketInfo refuses a UDP length that disagrees with the IP payload", () => {
    const p = edit(V4_UDP, { 25: 11 });
    expectError(() => new PacketInfo().parse(p, 32), "BAD_TOTAL_LENGTH", 24);
  });
});

describe("IPv6 header and extension headers", () => {
  it("accepts the base vector", () => {
    const info = new PacketInfo().parse(V6_TCP, 60);
    expect([info.family, info.l4Offset, info.payloadOffset]).toEqual([6, 40, 60]);
  });

  it("a fixed header cut anywhere in its 40 bytes is TRUNCATED at 0", () => {
    for (let n = 1; n < 40; n++) {
      expectError(() => parseIpv6Header(V6_TCP.slice(0, n)), "TRUNCATED", 0);
      expectError(() => parseIpv6Header(V6_TCP, 0, n), "TRUNCATED", 0);
      for (const f of packetDecoders) expectError(() => f(V6_TCP, n), "TRUNCATED", 0);
    }
  });

  it("a payload length beyond the bytes given is BAD_TOTAL_LENGTH at 4", () => {
    for (const pl of [21, 0x100, 0xffff]) {
      const b = edit(V6_TCP, { 4: pl >> 8, 5: pl & 0xff });
      expectError(() => parseIpv6Header(b), "BAD_TOTAL_LENGTH", 4);
      for (const f of packetDecoders) expectError(() => f(b, b.length), "BAD_TOTAL_LENGTH", 4);
    }
    for (const f of packetDecoders) expectError(() => f(V6_TCP, 59), "BAD_TOTAL_LENGTH", 4);
  });

  it("a payload length that ends inside the TCP header is TRUNCATED at the TCP header", () => {
    const b = edit(V6_TCP, { 5: 10 });
    for (const f of packetDecoders) expectError(() => f(b, b.length), "TRUNCATED", 40);
  });

  it("an extension header overrunning the payload is EXT_HEADER_OVERRUN at its start", () => {
    // Hop-by-hop claiming 16 bytes with 8 present.
    const long = v6(0, hex("0601 00000000 0000"));
    // Fewer than the 8 bytes every extension header has.
    const short = v6(60, hex("0600 0000"));
    // The second header (dest opts at 48) overruns; the first is fine.
    const second = v6(0, hex(`${ext8(60)} 0602 00000000 0000`));
    // AH: (len + 2) * 4 bytes = 16 with 8 present.
    const ah = v6(51, hex("0602 00000000 0000"));
    // Routing header whose bytes exist after the payload but not inside it.
    const hidden = v6(43, hex(`${ext8(6)} ${TCP}`), 4);
    const cases: [Uint8Array, number][] = [
      [long, 40],
      [short, 40],
      [second, 48],
      [ah, 40],
      [hidden, 40],
    ];
    for (const [b, offset] of cases) {
      expectError(() => parseIpv6Header(b), "EXT_HEADER_OVERRUN", offset);
      for (const f of packetDecoders)
        expectError(() => f(b, b.length), "EXT_HEADER_OVERRUN", offset);
    }
  });

  it(`accepts ${MAX_EXTENSION_HEADERS} extension headers and refuses one more`, () => {
    const chain = (n: number) => {
      let s = "";
      for (let i = 0; i < n; i++) s += ext8(i === n - 1 ? 6 : i % 2 === 0 ? 60 : 0);
      return v6(0, hex(s + TCP));
    };
    const ok = new PacketInfo().parse(chain(16), 40 + 16 * 8 + 20);
    expect([ok.protocol, ok.l4Offset]).toEqual([6, 168]);
    expect(parseIpv6Header(chain(16)).extensionHeaders).toHaveLength(16);
    for (const n of [17, 18, 40]) {
      const b = chain(n);
      // The 17th header starts at 40 + 16 * 8.
      expectError(() => parseIpv6Header(b), "EXT_HEADER_CHAIN_TOO_LONG", 168);
      for (const f of packetDecoders)
        expectError(() => f(b, b.length), "EXT_HEADER_CHAIN_TOO_LONG", 168);
    }
  });

  it("a chain whose next-header bytes name the same type forever ends, never hangs", () => {
    // Every header names its own type again: hbh, dest opts, routing, fragment, AH, mobility.
    for (const type of [0, 60, 43, 44, 51, 135]) {
      const self = type === 51 ? "0000 00000000 0000" : ext8(type);
      for (const n of [1, 5, 16, 17, 100]) {
        const b = v6(type, hex(self.repeat(n)));
        const e = codecError(() => new PacketInfo().parse(b, b.length));
        // The 16th header naming a 17th is already one too many.
        if (n >= MAX_EXTENSION_HEADERS) {
          expect([e.code, e.offset]).toEqual(["EXT_HEADER_CHAIN_TOO_LONG", 168]);
        } else {
          // The chain runs off the end of the payload right after its last header.
          expect([e.code, e.offset]).toEqual(["EXT_HEADER_OVERRUN", 40 + 8 * n]);
        }
        expect(codecError(() => parseIpv6Header(b)).code).toBe(e.code);
        expect(codecError(() => parsePacket(b)).code).toBe(e.code);
      }
    }
    // The largest payload, all zero: hop-by-hop naming hop-by-hop 8 bytes at a time.
    const zeros = v6(0, new Uint8Array(0xffff));
    expectError(() => parseIpv6Header(zeros), "EXT_HEADER_CHAIN_TOO_LONG", 168);
    expectError(
      () => new Ipv6Chain().walk(zeros, 0, zeros.length),
      "EXT_HEADER_CHAIN_TOO_LONG",
      168,
    );
  });

  it("Ipv6Chain.walk honours `end`", () => {
    // hbh -> TCP, complete in the buffer; `end` cuts the hop-by-hop header.
    const b = v6(0, hex(`${ext8(6)} ${TCP}`));
    expect(new Ipv6Chain().walk(b, 0, b.length).offset).toBe(48);
    expectError(() => new Ipv6Chain().walk(b, 0, 47), "EXT_HEADER_OVERRUN", 40);
    expectError(() => new Ipv6Chain().walk(b.subarray(0, 47), 0, 47), "EXT_HEADER_OVERRUN", 40);
    expectError(() => new Ipv6Chain().walk(at(3, b), 3, 3 + 47), "EXT_HEADER_OVERRUN", 43);
  });

  it("Ipv6Chain.walk refuses an `end` that does not hold the fixed header", () => {
    // Not walking past `end`: the fixed header itself is cut, as PacketInfo reports it.
    const b = v6(0, hex(`${ext8(6)} ${TCP}`));
    for (const n of [0, 6, 39]) {
      expectError(() => new Ipv6Chain().walk(b, 0, n), "TRUNCATED", 0);
      expectError(() => new Ipv6Chain().walk(b.subarray(0, n), 0, n), "TRUNCATED", 0);
    }
  });
});

describe("TOA option", () => {
  const formats: [string, ToaFormat][] = [
    ["port-addr", { kind: 254, layout: "port-addr" }],
    ["port-addr-vaddr", { kind: 254, layout: "port-addr-vaddr" }],
    ["ttm", { kind: 254, layout: "ttm", afOrder: "host" }],
    ["ttm network order", { kind: 254, layout: "ttm", afOrder: "network" }],
    ["version-addr", { kind: 28, layout: "version-addr" }],
  ];
  const off = 4;

  for (const [name, format] of formats) {
    describe(name, () => {
      /** kind, length, then zeros: `room` bytes from the kind byte to `end`. */
      const option = (len: number, room: number) => {
        const b = new Uint8Array(off + room + 8).fill(0x11);
        b.fill(0, off, off + room);
        b[off] = format.kind;
        b[off + 1] = len;
        return b;
      };

      it("length 0 and 1 are BAD_OPTION_LENGTH at the length byte", () => {
        for (const len of [0, 1]) {
          expectError(
            () => decodeToa(format, option(len, 40), off, off + 40),
            "BAD_OPTION_LENGTH",
            off + 1,
          );
        }
      });

      it("length 2 and 3 are BAD_CARRIER at the length byte", () => {
        for (const len of [2, 3]) {
          for (const room of [len, 40]) {
            expectError(
              () => decodeToa(format, option(len, room), off, off + room),
              "BAD_CARRIER",
              off + 1,
            );
          }
        }
      });

      it("length 255 is TRUNCATED in a 40-byte option area, BAD_CARRIER given 255 bytes", () => {
        expectError(() => decodeToa(format, option(255, 40), off, off + 40), "TRUNCATED", off);
        expectError(
          () => decodeToa(format, option(255, 255), off, off + 255),
          "BAD_CARRIER",
          off + 1,
        );
      });

      it("a kind byte alone is TRUNCATED", () => {
        expectError(() => decodeToa(format, option(8, 1), off, off + 1), "TRUNCATED", off);
        expectError(() => decodeToa(format, option(8, 1), off, off), "TRUNCATED", off);
      });
    });
  }

  it("honours `end`: a valid option one byte short is TRUNCATED", () => {
    const cases: [ToaFormat, string][] = [
      [{ kind: 254, layout: "port-addr" }, "fe08 9c40 c6336407"],
      [{ kind: 254, layout: "port-addr" }, "fe14 9c40 20010db8000c00000000000000000007"],
      [{ kind: 254, layout: "port-addr-vaddr" }, "fe10 9c40 c6336407 0000 0050 cb00710a"],
      [{ kind: 254, layout: "ttm" }, "fe16 0200 9c40 c6336407000000000000000000000000"],
      [{ kind: 28, layout: "version-addr" }, "1c07 01 c6336407"],
    ];
    for (const [format, h] of cases) {
      const opt = hex(h);
      const buf = at(5, opt, 5);
      expect(decodeToa(format, buf, 5, 5 + opt.length).addr.length).toBeGreaterThan(0);
      expectError(() => decodeToa(format, buf, 5, 5 + opt.length - 1), "TRUNCATED", 5);
      const view = buf.subarray(5, 5 + opt.length - 1);
      expectError(() => decodeToa(format, view, 0, view.length), "TRUNCATED", 0);
    }
  });
});

describe("UOA option and opp header", () => {
  const off = 3;
  const uoa = (len: number, room = 24) => {
    const b = at(off, new Uint8Array(room), 4);
    b[off] = 0x1f;
    b[off + 1] = len;
    return b;
  };

  it("option length 0, 1, 255 (and anything but 8 and 20) is BAD_OPTION_LENGTH at the length byte", () => {
    for (const len of [0, 1, 2, 7, 9, 19, 21, 255]) {
      expectError(() => decodeUoaOption(uoa(len), off, off + 24), "BAD_OPTION_LENGTH", off + 1);
    }
  });

  it("a valid option cut short is TRUNCATED at the option", () => {
    expectError(() => decodeUoaOption(uoa(8), off, off + 7), "TRUNCATED", off);
    expectError(() => decodeUoaOption(uoa(20), off, off + 19), "TRUNCATED", off);
    expectError(() => decodeUoaOption(uoa(20), off, off + 1), "TRUNCATED", off);
    expectError(() => decodeUoaOption(uoa(8).subarray(off, off + 7), 0, 7), "TRUNCATED", 0);
  });

  it("another option type is BAD_CARRIER", () => {
    expectError(
      () => decodeUoaOption(edit(uoa(8), { [off]: 0x9f }), off, off + 8),
      "BAD_CARRIER",
      off,
    );
  });

  it("accepts the base vectors", () => {
    expect(decodeOpp(at(off, hex(OPP)), off, off + 12).length).toBe(12);
    expect(decodeOpp(at(off, hex(OPP6)), off, off + 24).length).toBe(24);
  });

  it("opp versions other than 1 and 2 are BAD_VERSION at the header", () => {
    for (const v of [0, 3, 15]) {
      const b = at(off, edit(hex(OPP), { 0: v << 4 }));
      expectError(() => decodeOpp(b, off, off + 12), "BAD_VERSION", off);
    }
  });

  it("an opp length that lies is an error at the length field or the option", () => {
    const len = (n: number) => at(off, edit(hex(OPP), { 2: n >> 8, 3: n & 0xff }), 32);
    // Shorter than header plus the smallest option.
    for (const n of [0, 4, 5]) {
      expectError(() => decodeOpp(len(n), off, off + 12), "BAD_TOTAL_LENGTH", off + 2);
    }
    // Longer than the bytes given.
    for (const n of [13, 0xffff]) {
      expectError(() => decodeOpp(len(n), off, off + 12), "TRUNCATED", off);
    }
    // Longer than the option, with the bytes present.
    expectError(() => decodeOpp(len(16), off, off + 16), "BAD_TOTAL_LENGTH", off + 2);
    // Shorter than the option: the option runs past the header's end.
    expectError(() => decodeOpp(len(8), off, off + 12), "TRUNCATED", off + 4);
  });

  it("a v6 address under version 1 is BAD_CARRIER", () => {
    const b = at(off, edit(hex(OPP6), { 0: 0x10 }));
    expectError(() => decodeOpp(b, off, off + 24), "BAD_CARRIER", off);
  });

  it("honours `end`: an opp header one byte short is TRUNCATED", () => {
    const b = at(off, hex(OPP), 8);
    for (let n = 0; n < 12; n++) expectError(() => decodeOpp(b, off, off + n), "TRUNCATED", off);
    expectError(() => decodeOpp(b.subarray(off, off + 11), 0, 11), "TRUNCATED", 0);
  });

  it("inside a packet (removeUoaOpp) offsets are absolute", () => {
    // IPv4 protocol 248: opp (12) + UDP (8).
    const ip = "45000028 00014000 40f80000 c0000264 c000020a";
    const udp = "9c400035 00080000";
    const good = hex(ip + OPP + udp);
    const info = new PacketInfo();
    expect(removeUoaOpp(good.slice(), info.parse(good, 40)).port).toBe(40000);
    const v3 = edit(good, { 20: 0x30 });
    expectError(() => removeUoaOpp(v3, info.parse(v3, 40)), "BAD_VERSION", 20);
    const lying = edit(good, { 23: 0x40 });
    expectError(() => removeUoaOpp(lying, info.parse(lying, 40)), "TRUNCATED", 20);
    const zeroLen = edit(good, { 25: 0 });
    expectError(() => removeUoaOpp(zeroLen, info.parse(zeroLen, 40)), "BAD_OPTION_LENGTH", 25);
  });
});

describe("reads past the end", () => {
  // Each decoder gets a complete, valid encoding inside a bigger buffer but is
  // told (by `end` or by a subarray view) that it ends one byte early. A decoder
  // that read on would succeed; it must report the cut instead.
  const PV1 = new TextEncoder().encode("PROXY TCP4 192.0.2.1 192.0.2.2 40000 80\r\n");
  const PV2 = hex("0d0a0d0a000d0a515549540a 21 11 000c c0000201 c0000202 9c40 0050");
  const SPP = hex(
    "56ec 00000000000000000000ffffc0000201 00000000000000000000ffffc0000202 9c40 0050",
  );
  type Case = [
    string,
    Uint8Array,
    (b: Uint8Array, off: number, end: number) => unknown,
    CodecErrorCode,
    number,
  ];
  const cases: Case[] = [
    ["parseIpv4Header", edit(V4_TCP.slice(0, 20), { 3: 20 }), parseIpv4Header, "TRUNCATED", 0],
    ["parseIpv6Header", v6(59, new Uint8Array(0)), parseIpv6Header, "TRUNCATED", 0],
    ["parseTcp", hex(TCP), parseTcp, "TRUNCATED", 0],
    ["parseUdp", edit(V4_UDP.slice(20, 28), { 5: 8 }), parseUdp, "TRUNCATED", 0],
    [
      "decodeToa",
      hex("fe08 9c40 c6336407"),
      (b, o, e) => decodeToa({ kind: 254, layout: "port-addr" }, b, o, e),
      "TRUNCATED",
      0,
    ],
    ["decodeUoaOption", hex("1f08 9c40 c6336407"), decodeUoaOption, "TRUNCATED", 0],
    ["decodeOpp", hex(OPP), decodeOpp, "TRUNCATED", 0],
    ["decodeProxyV1", PV1, decodeProxyV1, "TRUNCATED", 0],
    ["decodeProxyV2", PV2, decodeProxyV2, "TRUNCATED", 16],
    ["decodeSpp", SPP, decodeSpp, "TRUNCATED", 0],
    ["parseTcpOptions", hex("0101 0204 05b4"), parseTcpOptions, "OPTION_OVERRUN", 2],
    ["parseIpOptions", hex("0101 1f08 9c40 c6336407"), parseIpOptions, "OPTION_OVERRUN", 2],
    [
      "Ipv6Chain.walk",
      v6(60, hex(`${ext8(6)} ${TCP}`)).slice(0, 48),
      (b, o, e) => new Ipv6Chain().walk(b, o, e),
      "EXT_HEADER_OVERRUN",
      40,
    ],
  ];

  for (const [name, valid, decode, code, offset] of cases) {
    it(`${name}: ${code} at the cut`, () => {
      const pre = 5;
      const big = at(pre, valid, 8);
      // The whole thing decodes; so would the cut one, if the decoder read on.
      expect(() => decode(big, pre, pre + valid.length)).not.toThrow();
      const n = valid.length - 1;
      expectError(() => decode(big, pre, pre + n), code, pre + offset);
      const view = big.subarray(pre, pre + n);
      expectError(() => decode(view, 0, n), code, offset);
    });
  }

  it("whole packets: `len` is the packet, not the buffer", () => {
    const big = new Uint8Array(200);
    big.set(V4_TCP);
    for (const f of packetDecoders) {
      expectError(() => f(big, 19), "TRUNCATED", 0);
      expectError(() => f(big.subarray(0, 19), 19), "TRUNCATED", 0);
      expectError(() => f(big, 39), "BAD_TOTAL_LENGTH", 2);
    }
    big.set(V6_TCP);
    for (const f of packetDecoders) {
      expectError(() => f(big, 39), "TRUNCATED", 0);
      expectError(() => f(big.subarray(0, 39), 39), "TRUNCATED", 0);
      expectError(() => f(big, 59), "BAD_TOTAL_LENGTH", 4);
    }
  });
});
