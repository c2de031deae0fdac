import { readU16, readU32, writeU16, writeU32 } from "./bytes.js";
import { CodecError, CodecErrorCode } from "./errors.js";
import { Ipv4Field } from "./ipv4.js";
import { IPV6_HEADER, Ipv6Field } from "./ipv6.js";
import { fillIpv4Checksum, fillL4Checksum, PacketInfo } from "./packet.js";
import { TcpField, TcpFlag } from "./tcp.js";

/**
 * What the kernel's TCP segmentation (tcp_gso_segment) makes of a super-packet
 * on the wire, done in user space where toasim must see wire segments: for
 * pcaps, faults and the profiles whose carrier goes on one segment only.
 * Each segment has the super-packet's headers and `gsoSize` bytes of payload
 * (the last, the rest); sequence numbers advance; FIN and PSH stay on the
 * last segment, CWR on the first; IPv4 ids count up from the super-packet's;
 * lengths and checksums are filled in full.
 *
 * Reused across packets: `each` receives the segment in a buffer that the
 * next segment overwrites.
 */
export class TcpSegmenter {
  private readonly info = new PacketInfo();

  /**
   * `seg` receives each segment at its start: a view with room in front
   * lets the caller prepend a header (a virtio_net_hdr) without a copy.
   */
  constructor(private readonly seg: Uint8Array = new Uint8Array(0xffff)) {}

  /** Calls `each` once per wire segment; returns how many. */
  segment(
    src: Uint8Array,
    info: PacketInfo,
    gsoSize: number,
    each: (seg: Uint8Array, len: number) => void,
  ): number {
    const hdr = info.payloadOffset;
    const payload = info.length - hdr;
    if (gsoSize <= 0 || hdr + Math.min(gsoSize, payload) > this.seg.length) {
      throw new CodecError(
        CodecErrorCode.badValue,
        0,
        `segment size ${gsoSize} with ${hdr} bytes of headers`,
      );
    }
    const flagsAt = info.l4Offset + TcpField.flags;
    const flags = src[flagsAt]!;
    const seq = readU32(src, info.l4Offset + TcpField.seq);
    const id = info.family === 4 ? readU16(src, Ipv4Field.id) : 0;
    const n = Math.max(1, Math.ceil(payload / gsoSize));
    const seg = this.seg;
    for (let i = 0; i < n; i++) {
      const from = hdr + i * gsoSize;
      const len = Math.min(gsoSize, payload - i * gsoSize);
      seg.set(src.subarray(0, hdr), 0);
      seg.set(src.subarray(from, from + len), hdr);
      let f = flags;
      if (i < n - 1) f &= ~(TcpFlag.fin | TcpFlag.psh);
      if (i > 0) f &= ~TcpFlag.cwr;
      seg[flagsAt] = f;
      writeU32(seg, info.l4Offset + TcpField.seq, (seq + i * gsoSize) >>> 0);
      if (info.family === 4) writeU16(seg, Ipv4Field.id, (id + i) & 0xffff);
      if (info.family === 4) writeU16(seg, Ipv4Field.totalLength, hdr + len);
      else writeU16(seg, Ipv6Field.payloadLength, hdr + len - IPV6_HEADER);
      const si = this.info.parse(seg, hdr + len);
      fillIpv4Checksum(seg, si);
      fillL4Checksum(seg, si);
      each(seg, hdr + len);
    }
    return n;
  }
}
