import { IpProtocol } from "../option-codec/ipv4.js";
import type { PacketInfo } from "../option-codec/packet.js";
import { TcpField, TcpFlag } from "../option-codec/tcp.js";
import {
  completePartialChecksum,
  fillPartialChecksum,
  GsoType,
  VNET_HDR_LEN,
  VnetFlag,
  VnetHdr,
} from "../option-codec/vnet-hdr.js";

/** What a frame read from an offloading TUN holds, for the packet loop. */
export const Arrival = {
  /** A packet with complete checksums. */
  plain: 0,
  /** A TCP packet whose checksum stays partial through the gateway. */
  partial: 1,
  /** A TCP super-packet (partial checksum, segment size in `gsoSize`). */
  superPacket: 2,
  /**
   * A super-packet to cut into wire segments before the gateway: it ends
   * with a FIN, which only its last segment carries, and a profile may put
   * the TOA on that segment alone (or only on the others).
   */
  cut: 3,
  /** A header the kernel does not write (unknown GSO type, GSO without a partial checksum). */
  bad: 4,
} as const;
export type Arrival = (typeof Arrival)[keyof typeof Arrival];

/**
 * The virtio_net_hdr side of the packet loop when the TUNs offload
 * (IFF_VNET_HDR, TSO, partial checksums): the header sits in frame[0..10)
 * and the packet right after it, so the gateway edits the packet in place
 * and the header is rewritten for what it returned.
 *
 * A TCP checksum stays partial through the gateway (only its pseudo-header
 * part is computed again after), so a 64 KB super-packet costs no payload
 * summing. Other partial checksums (UDP) are completed on arrival, as is
 * everything when `keepPartial` is false (packets that faults, captures or
 * scripted clients will see whole).
 */
export class OffloadFrames {
  /** The segment size of the super-packet that just arrived (0: none). */
  gsoSize = 0;
  private readonly hdr = new VnetHdr();
  private readonly pkt: Uint8Array;
  private ecn = 0;

  constructor(
    private readonly frame: Uint8Array,
    /** The path MTU: the size of the segments a super-packet is cut into. */
    private readonly mtu: number,
  ) {
    this.hdr.buf = frame;
    this.hdr.off = 0;
    this.pkt = frame.subarray(VNET_HDR_LEN);
  }

  /** The frame's header for a packet of `len` bytes after it. */
  arrive(len: number, keepPartial: boolean): Arrival {
    const h = this.hdr;
    const gso = h.gsoType & ~GsoType.ecn;
    this.ecn = h.gsoType & GsoType.ecn;
    this.gsoSize = 0;
    if (!h.needsCsum) return gso === GsoType.none ? Arrival.plain : Arrival.bad;
    const start = h.csumStart;
    const offset = h.csumOffset;
    const tcp = offset === TcpField.checksum && this.simpleTcp(len, start);
    if (gso === GsoType.tcpv4 || gso === GsoType.tcpv6) {
      if (h.gsoSize === 0 || !tcp) return Arrival.bad;
      this.gsoSize = h.gsoSize;
      const fin = this.frame[VNET_HDR_LEN + start + TcpField.flags]! & TcpFlag.fin;
      return fin !== 0 ? Arrival.cut : Arrival.superPacket;
    }
    if (gso !== GsoType.none) return Arrival.bad;
    if (tcp && keepPartial) return Arrival.partial;
    completePartialChecksum(this.frame, VNET_HDR_LEN + len, VNET_HDR_LEN + start, offset);
    return Arrival.plain;
  }

  /**
   * The header for the packet the gateway returned (`info`, edited): a
   * plain packet's is empty; a partial checksum is computed again from the
   * new pseudo-header (addresses, length, family); a super-packet's segment
   * size shrinks so that headers grown by a TOA or NAT64 still fit the MTU.
   * Returns false if its segments cannot fit at all.
   */
  depart(arrival: Arrival, info: PacketInfo): boolean {
    if (arrival === Arrival.plain) {
      this.frame.fill(0, 0, VNET_HDR_LEN);
      return true;
    }
    const h = this.hdr;
    const headers = info.payloadOffset;
    // The kernel adds the bytes from csum_start on to the pseudo-header sum.
    fillPartialChecksum(this.pkt, info);
    h.flags = VnetFlag.needsCsum;
    h.csumStart = info.l4Offset;
    h.csumOffset = TcpField.checksum;
    const seg = Math.min(this.gsoSize, this.mtu - headers);
    if (arrival === Arrival.superPacket && info.length - headers > seg) {
      if (seg <= 0) return false;
      h.gsoType = (info.family === 4 ? GsoType.tcpv4 : GsoType.tcpv6) | this.ecn;
      h.hdrLen = headers;
      h.gsoSize = seg;
    } else {
      h.gsoType = GsoType.none;
      h.hdrLen = 0;
      h.gsoSize = 0;
    }
    return true;
  }

  /** csum_start is the TCP header behind a plain IPv4 or IPv6 header (no extension headers). */
  private simpleTcp(len: number, start: number): boolean {
    const f = this.frame;
    const v = f[VNET_HDR_LEN]! >> 4;
    if (v === 4) {
      return (
        f[VNET_HDR_LEN + 9] === IpProtocol.tcp &&
        start === (f[VNET_HDR_LEN]! & 0x0f) * 4 &&
        start + 20 <= len
      );
    }
    return v === 6 && f[VNET_HDR_LEN + 6] === IpProtocol.tcp && start === 40 && start + 20 <= len;
  }
}
