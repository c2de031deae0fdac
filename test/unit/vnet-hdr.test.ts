import { describe, expect, it } from "vitest";
import { readU16, readU32, toHex } from "../../src/option-codec/bytes.js";
import { finish, sumBytes } from "../../src/option-codec/checksum.js";
import { CodecErrorCode } from "../../src/option-codec/errors.js";
import { computeL4Checksum, PacketInfo } from "../../src/option-codec/packet.js";
import { TcpFlag } from "../../src/option-codec/tcp.js";
import { TcpSegmenter } from "../../src/option-codec/tcp-segment.js";
import {
  emitVnetHdr,
  fillPartialChecksum,
  GsoType,
  parseVnetHdr,
  VNET_HDR_LEN,
  VnetFlag,
  VnetHdr,
  type VnetHdrRepr,
} from "../../src/option-codec/vnet-hdr.js";
import { codecError } from "./helpers/errors.js";
import { C4, C6, expectValidChecksums, tcpPacket, udpPacket, V4, V6 } from "./helpers/packets.js";

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ""), "hex"));

describe("virtio_net_hdr", () => {
  // A TSO super-packet as the kernel hands it over: NEEDS_CSUM, TCPV4,
  // 52 bytes of headers, 1448-byte segments, checksum at 20 + 16. Little-endian.
  const bytes = hex("01 01 3400 a805 1400 1000");
  const repr: VnetHdrRepr = {
    flags: VnetFlag.needsCsum,
    gsoType: GsoType.tcpv4,
    hdrLen: 52,
    gsoSize: 1448,
    csumStart: 20,
    csumOffset: 16,
  };

  it("reads and writes the ten bytes as the kernel lays them out", () => {
    expect(parseVnetHdr(bytes, 0, bytes.length)).toEqual(repr);
    const out = new Uint8Array(VNET_HDR_LEN);
    expect(emitVnetHdr(repr, out, 0)).toBe(10);
    expect(toHex(out)).toBe(toHex(bytes));
  });

  it("refuses a short header and a segmentation type it does not know (UFO, 2)", () => {
    expect(codecError(() => parseVnetHdr(bytes, 0, 9)).code).toBe(CodecErrorCode.truncated);
    for (const t of [2, GsoType.udp, 6, 0x7f]) {
      const b = bytes.slice();
      b[1] = t;
      const e = codecError(() => parseVnetHdr(b, 0, b.length));
      expect([e.code, e.offset], `gso_type ${t}`).toEqual([CodecErrorCode.unsupported, 1]);
    }
    const ecn = bytes.slice();
    ecn[1] = GsoType.tcpv4 | GsoType.ecn;
    expect(new VnetHdr().wrap(ecn, 0, ecn.length).isGso).toBe(true);
  });

  it("checks a header against its packet: the checksum field, the family, a segment size", () => {
    const v4 = new PacketInfo().parse(tcpPacket(C4, V4), tcpPacket(C4, V4).length);
    const udp6p = udpPacket(C6, V6, new Uint8Array(10));
    const udp6 = new PacketInfo().parse(udp6p, udp6p.length);
    const v = new VnetHdr();
    const h = (r: Partial<VnetHdrRepr>): VnetHdr => {
      const b = new Uint8Array(VNET_HDR_LEN);
      emitVnetHdr({ ...repr, ...r }, b, 0);
      return v.wrap(b, 0, b.length);
    };
    expect(() => h({}).check(v4)).not.toThrow();
    expect(() => h({ gsoType: 0, csumStart: 40, csumOffset: 6 }).check(udp6)).not.toThrow();
    expect(() => h({ gsoType: 0, flags: 0, csumStart: 0, csumOffset: 0 }).check(v4)).not.toThrow();
    const bad: [string, Partial<VnetHdrRepr>, PacketInfo][] = [
      ["checksum start off the TCP header", { csumStart: 24 }, v4],
      ["UDP offset on TCP", { csumOffset: 6 }, v4],
      ["TCPV6 on IPv4", { gsoType: GsoType.tcpv6 }, v4],
      ["TCPV4 on UDP", { csumStart: 40, csumOffset: 6 }, udp6],
      ["no segment size", { gsoSize: 0 }, v4],
      ["segmentation without a partial checksum", { flags: 0 }, v4],
    ];
    for (const [what, r, info] of bad) {
      expect(codecError(() => h(r).check(info)).code, what).toBe(CodecErrorCode.badValue);
    }
  });

  it("a partial checksum completed as the kernel completes it is the full checksum", () => {
    for (const p of [
      tcpPacket(C4, V4, { payload: new Uint8Array(333).fill(7) }),
      tcpPacket(C6, V6),
      udpPacket(C4, V4, Uint8Array.of(1, 2, 3)),
      udpPacket(C6, V6, new Uint8Array(1000).fill(0xa5)),
    ]) {
      const info = new PacketInfo().parse(p, p.length);
      const want = computeL4Checksum(p, info);
      fillPartialChecksum(p, info);
      // skb_checksum_help: sum from csum_start to the end, field included.
      const got = finish(sumBytes(p, info.l4Offset, info.l4Length));
      expect(got === 0 && info.protocol === 17 ? 0xffff : got).toBe(want);
    }
  });
});

describe("TcpSegmenter", () => {
  const payload = Uint8Array.from({ length: 3500 }, (_, i) => (i * 13) & 0xff);

  for (const [name, src, dst] of [
    ["IPv4", C4, V4],
    ["IPv6", C6, V6],
  ] as const) {
    it(`${name}: cuts a super-packet into wire segments the way tcp_gso_segment does`, () => {
      const flags = TcpFlag.ack | TcpFlag.psh | TcpFlag.fin | TcpFlag.cwr;
      const sp = tcpPacket(src, dst, { payload, flags, seq: 0xffffff00 });
      const info = new PacketInfo().parse(sp, sp.length);
      const segs: Uint8Array[] = [];
      const n = new TcpSegmenter().segment(sp, info, 1000, (s, len) => {
        segs.push(s.slice(0, len));
      });
      expect(n).toBe(4);
      let joined: number[] = [];
      segs.forEach((s, i) => {
        const si = new PacketInfo().parse(s, s.length);
        expectValidChecksums(s, s.length);
        expect(si.length - si.payloadOffset).toBe(i < 3 ? 1000 : 500);
        expect(readU32(s, si.l4Offset + 4)).toBe((0xffffff00 + i * 1000) >>> 0);
        const f = s[si.l4Offset + 13]!;
        expect(f & (TcpFlag.fin | TcpFlag.psh), `segment ${i}`).toBe(
          i === 3 ? TcpFlag.fin | TcpFlag.psh : 0,
        );
        expect(f & TcpFlag.cwr).toBe(i === 0 ? TcpFlag.cwr : 0);
        if (si.family === 4) expect(readU16(s, 4)).toBe((readU16(sp, 4) + i) & 0xffff);
        // Options and the rest of the header travel on every segment.
        expect(toHex(s.subarray(si.l4Offset + 20, si.payloadOffset))).toBe(
          toHex(sp.subarray(info.l4Offset + 20, info.payloadOffset)),
        );
        joined = joined.concat([...s.subarray(si.payloadOffset)]);
      });
      expect(joined).toEqual([...payload]);
    });
  }

  it("a packet without payload is one segment, unchanged but for its checksums", () => {
    const p = tcpPacket(C4, V4, { payload: new Uint8Array(0) });
    const info = new PacketInfo().parse(p, p.length);
    const got: string[] = [];
    expect(
      new TcpSegmenter().segment(p, info, 1448, (s, len) => got.push(toHex(s.subarray(0, len)))),
    ).toBe(1);
    expect(got).toEqual([toHex(p)]);
  });

  it("refuses a segment size of 0", () => {
    const p = tcpPacket(C4, V4);
    const info = new PacketInfo().parse(p, p.length);
    expect(codecError(() => new TcpSegmenter().segment(p, info, 0, () => {})).code).toBe(
      CodecErrorCode.badValue,
    );
  });
});
