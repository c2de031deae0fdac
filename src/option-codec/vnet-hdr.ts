import { finish, fold, pseudoHeaderSum, sumBytes } from "./checksum.js";
import { CodecError, CodecErrorCode, need } from "./errors.js";
import { IpProtocol } from "./ipv4.js";
import type { PacketInfo } from "./packet.js";
import { TcpField } from "./tcp.js";
import { UdpField } from "./udp.js";

const csumFieldOf = (protocol: number): number =>
  protocol === IpProtocol.tcp
    ? TcpField.checksum
    : protocol === IpProtocol.udp
      ? UdpField.checksum
      : -1;

/**
 * virtio_net_hdr: the 10 bytes before each packet on a TUN opened with
 * IFF_VNET_HDR (include/uapi/linux/virtio_net.h). They say whether the
 * packet is a super-packet the kernel coalesced (or must segment), and
 * whether its transport checksum is partial. The fields are in the
 * device's virtio byte order; toasim sets it to little-endian
 * (TUNSETVNETLE), which is also every supported host's own order.
 */
export const VNET_HDR_LEN = 10;

export const VnetField = {
  flags: 0,
  gsoType: 1,
  hdrLen: 2,
  gsoSize: 4,
  csumStart: 6,
  csumOffset: 8,
} as const;

export const VnetFlag = {
  /** The transport checksum field holds only the pseudo-header sum; csum_start/offset say where. */
  needsCsum: 1,
  /** The checksum was verified (on the way to user space only). */
  dataValid: 2,
} as const;

export const GsoType = {
  none: 0,
  tcpv4: 1,
  /** UFO: IP fragmentation offload, never asked for here. */
  udp: 3,
  tcpv6: 4,
  /** USO: UDP segmentation (kernels 6.2 and later). */
  udpL4: 5,
  /** Flag: the super-packet's segments carry CWR as the first one does. */
  ecn: 0x80,
} as const;

export interface VnetHdrRepr {
  flags: number;
  gsoType: number;
  /** Length of the headers (IP + transport) of a super-packet. */
  hdrLen: number;
  /** Payload bytes per segment of a super-packet. */
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

function readU16le(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

function writeU16le(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}

const KNOWN_GSO = new Set<number>([GsoType.none, GsoType.tcpv4, GsoType.tcpv6, GsoType.udpL4]);

/**
 * A checked view over a virtio_net_hdr, reused across packets (the hot path
 * allocates nothing). `wrap` checks the header alone; `check` checks it
 * against the packet after it.
 */
export class VnetHdr {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(buf: Uint8Array, off: number, end: number): this {
    need(end, off, VNET_HDR_LEN, "virtio_net_hdr");
    this.buf = buf;
    this.off = off;
    if (!KNOWN_GSO.has(this.gsoType & ~GsoType.ecn)) {
      throw new CodecError(
        CodecErrorCode.unsupported,
        off + VnetField.gsoType,
        `virtio_net_hdr gso_type ${this.gsoType}`,
      );
    }
    return this;
  }

  get flags(): number {
    return this.buf[this.off + VnetField.flags]!;
  }
  set flags(v: number) {
    this.buf[this.off + VnetField.flags] = v;
  }
  get gsoType(): number {
    return this.buf[this.off + VnetField.gsoType]!;
  }
  set gsoType(v: number) {
    this.buf[this.off + VnetField.gsoType] = v;
  }
  get hdrLen(): number {
    return readU16le(this.buf, this.off + VnetField.hdrLen);
  }
  set hdrLen(v: number) {
    writeU16le(this.buf, this.off + VnetField.hdrLen, v);
  }
  get gsoSize(): number {
    return readU16le(this.buf, this.off + VnetField.gsoSize);
  }
  set gsoSize(v: number) {
    writeU16le(this.buf, this.off + VnetField.gsoSize, v);
  }
  get csumStart(): number {
    return readU16le(this.buf, this.off + VnetField.csumStart);
  }
  set csumStart(v: number) {
    writeU16le(this.buf, this.off + VnetField.csumStart, v);
  }
  get csumOffset(): number {
    return readU16le(this.buf, this.off + VnetField.csumOffset);
  }
  set csumOffset(v: number) {
    writeU16le(this.buf, this.off + VnetField.csumOffset, v);
  }

  get needsCsum(): boolean {
    return (this.flags & VnetFlag.needsCsum) !== 0;
  }
  get isGso(): boolean {
    return (this.gsoType & ~GsoType.ecn) !== GsoType.none;
  }

  /**
   * Checks the header against the parsed packet after it (offsets relative
   * to the packet's first byte): a partial checksum must point at the
   * transport header's checksum field, and a super-packet must be TCP of
   * its own family (or UDP for USO) with a segment size.
   */
  check(info: PacketInfo): void {
    if (this.needsCsum) {
      const want = csumFieldOf(info.protocol);
      if (this.csumStart !== info.l4Offset || this.csumOffset !== want) {
        throw new CodecError(
          CodecErrorCode.badValue,
          this.off + VnetField.csumStart,
          `virtio_net_hdr partial checksum at ${this.csumStart}+${this.csumOffset}, ` +
            `not the transport header's checksum field`,
        );
      }
    }
    if (!this.isGso) return;
    const t = this.gsoType & ~GsoType.ecn;
    const fits =
      (t === GsoType.tcpv4 && info.family === 4 && info.protocol === IpProtocol.tcp) ||
      (t === GsoType.tcpv6 && info.family === 6 && info.protocol === IpProtocol.tcp) ||
      (t === GsoType.udpL4 && info.protocol === IpProtocol.udp);
    if (!fits || !this.needsCsum || this.gsoSize === 0) {
      throw new CodecError(
        CodecErrorCode.badValue,
        this.off + VnetField.gsoType,
        `virtio_net_hdr gso_type ${t} (segment size ${this.gsoSize}) on an IPv${info.family} ` +
          `packet of protocol ${info.protocol}`,
      );
    }
  }
}

export function parseVnetHdr(buf: Uint8Array, off: number, end: number): VnetHdrRepr {
  const v = new VnetHdr().wrap(buf, off, end);
  return {
    flags: v.flags,
    gsoType: v.gsoType,
    hdrLen: v.hdrLen,
    gsoSize: v.gsoSize,
    csumStart: v.csumStart,
    csumOffset: v.csumOffset,
  };
}

/** Writes the header; returns its length. */
export function emitVnetHdr(r: VnetHdrRepr, buf: Uint8Array, off: number): number {
  need(buf.length, off, VNET_HDR_LEN, "virtio_net_hdr output");
  buf[off + VnetField.flags] = r.flags;
  buf[off + VnetField.gsoType] = r.gsoType;
  writeU16le(buf, off + VnetField.hdrLen, r.hdrLen);
  writeU16le(buf, off + VnetField.gsoSize, r.gsoSize);
  writeU16le(buf, off + VnetField.csumStart, r.csumStart);
  writeU16le(buf, off + VnetField.csumOffset, r.csumOffset);
  return VNET_HDR_LEN;
}

/**
 * A partial checksum (NEEDS_CSUM) holds the folded pseudo-header sum, not
 * complemented, over the whole transport length; the kernel adds the rest.
 * After a rewrite of addresses, of the length or of the IP version (NAT64)
 * the field is computed again from the new pseudo-header: bytes after
 * csum_start (ports, options, payload) need nothing, the kernel sums them.
 */
export function fillPartialChecksum(buf: Uint8Array, info: PacketInfo): void {
  const s = pseudoHeaderSum(
    buf,
    info.srcOffset,
    info.dstOffset,
    info.addrLength,
    info.protocol,
    info.l4Length,
  );
  const at = info.l4Offset + csumFieldOf(info.protocol);
  const v = fold(s);
  buf[at] = v >>> 8;
  buf[at + 1] = v & 0xff;
}

/**
 * Does what the kernel would have done with a partial checksum: sums
 * buf[start..len) (the field holds the pseudo-header sum already) and
 * stores the result at start + offset. For packets that leave the offload
 * path (UDP, software segmentation, captures). A result of 0 is written as
 * 0xffff, its equal in one's complement, since UDP reads 0 as "none".
 */
export function completePartialChecksum(
  buf: Uint8Array,
  len: number,
  start: number,
  offset: number,
): void {
  if (start + offset + 2 > len) {
    throw new CodecError(
      CodecErrorCode.badValue,
      VnetField.csumStart,
      `virtio_net_hdr partial checksum at ${start}+${offset} outside a ${len}-byte packet`,
    );
  }
  const c = finish(sumBytes(buf, start, len - start)) || 0xffff;
  buf[start + offset] = c >>> 8;
  buf[start + offset + 1] = c & 0xff;
}
