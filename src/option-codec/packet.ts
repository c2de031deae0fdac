import type { IpAddress } from "./address.js";
import { readU16, writeU16 } from "./bytes.js";
import { finish, pseudoHeaderSum, sumBytes } from "./checksum.js";
import { CodecError, CodecErrorCode } from "./errors.js";
import {
  emitIpv4Header,
  IpProtocol,
  Ipv4Field,
  Ipv4Packet,
  type Ipv4Repr,
  ipv4Defaults,
  ipv4HeaderLength,
  parseIpv4Header,
} from "./ipv4.js";
import {
  emitIpv6Header,
  IPV6_HEADER,
  Ipv6Chain,
  Ipv6Field,
  Ipv6Packet,
  type Ipv6Repr,
  ipv6Defaults,
  ipv6HeaderLength,
  parseIpv6Header,
} from "./ipv6.js";
import { emitTcp, parseTcp, TcpField, type TcpRepr, TcpSegment, tcpLength } from "./tcp.js";
import {
  emitUdp,
  parseUdp,
  UDP_HEADER,
  UdpDatagram,
  UdpField,
  type UdpRepr,
  udpLength,
} from "./udp.js";

/**
 * Where things are in one L3 packet (no link header, as TUN with
 * IFF_NO_PI delivers it). Filled by `parse`, updated by the surgery
 * functions, reused for every packet: the hot path allocates nothing.
 */
export class PacketInfo {
  family: 4 | 6 = 4;
  /** Bytes of the packet (the IP total length, not the buffer's). */
  length = 0;
  /** IP header length, IPv6 extension headers included. */
  ipHeaderLength = 0;
  protocol = 0;
  protocolFieldOffset = 0;
  srcOffset = 0;
  dstOffset = 0;
  addrLength: 4 | 16 = 4;
  l4Offset = 0;
  isFragment = false;
  /** TCP only: header length; payloadOffset is valid for TCP and UDP. */
  tcpHeaderLength = 0;
  payloadOffset = 0;

  private readonly v4 = new Ipv4Packet();
  private readonly v6 = new Ipv6Packet();
  private readonly chain = new Ipv6Chain();
  private readonly tcp = new TcpSegment();
  private readonly udp = new UdpDatagram();

  /** Checks the IP header and, for unfragmented TCP/UDP, the L4 header. */
  parse(buf: Uint8Array, len: number): this {
    if (len < 1) throw new CodecError(CodecErrorCode.truncated, 0, "empty packet");
    const version = buf[0]! >> 4;
    if (version === 4) {
      const p = this.v4.wrap(buf, 0, len);
      this.family = 4;
      this.length = p.totalLength;
      this.ipHeaderLength = p.headerLength;
      this.protocol = p.protocol;
      this.protocolFieldOffset = Ipv4Field.protocol;
      this.srcOffset = Ipv4Field.src;
      this.dstOffset = Ipv4Field.dst;
      this.addrLength = 4;
      this.isFragment = p.fragmentOffset !== 0 || p.moreFragments;
    } else if (version === 6) {
      const p = this.v6.wrap(buf, 0, len);
      const c = this.chain.walk(buf, 0, p.end);
      this.family = 6;
      this.length = p.end;
      this.ipHeaderLength = c.offset;
      this.protocol = c.protocol;
      this.protocolFieldOffset = c.protocolFieldOffset;
      this.srcOffset = Ipv6Field.src;
      this.dstOffset = Ipv6Field.dst;
      this.addrLength = 16;
      this.isFragment = c.isFragment;
    } else {
      throw new CodecError(CodecErrorCode.badVersion, 0, `IP version ${version}`);
    }
    this.l4Offset = this.ipHeaderLength;
    this.tcpHeaderLength = 0;
    this.payloadOffset = this.l4Offset;
    if (this.isFragment) return this;
    if (this.protocol === IpProtocol.tcp) {
      const t = this.tcp.wrap(buf, this.l4Offset, this.length);
      this.tcpHeaderLength = t.headerLength;
      this.payloadOffset = this.l4Offset + this.tcpHeaderLength;
    } else if (this.protocol === IpProtocol.udp) {
      const u = this.udp.wrap(buf, this.l4Offset, this.length);
      if (u.end !== this.length) {
        throw new CodecError(
          CodecErrorCode.badTotalLength,
          this.l4Offset + UdpField.length,
          `UDP length ${u.length} disagrees with IP payload ${this.length - this.l4Offset}`,
        );
      }
      this.payloadOffset = this.l4Offset + UDP_HEADER;
    }
    return this;
  }

  get l4Length(): number {
    return this.length - this.l4Offset;
  }
}

/**
 * The largest the packet may grow to: the MTU, the buffer, and what the IP
 * length field can say (IPv4 total length, IPv6 payload length).
 */
export function growthLimit(buf: Uint8Array, info: PacketInfo, mtu: number): number {
  const field = info.family === 4 ? 0xffff : 0xffff + IPV6_HEADER;
  return Math.min(mtu, buf.length, field);
}

/** Sets the IP length field after the packet grew or shrank to `newLength`. */
export function setIpLength(buf: Uint8Array, info: PacketInfo, newLength: number): void {
  if (info.family === 4) writeU16(buf, Ipv4Field.totalLength, newLength);
  else writeU16(buf, Ipv6Field.payloadLength, newLength - IPV6_HEADER);
  info.length = newLength;
}

/** Full TCP/UDP checksum over pseudo-header and segment (checksum field taken as zero). */
export function computeL4Checksum(
  buf: Uint8Array,
  info: PacketInfo,
  protocol = info.protocol,
): number {
  const csumOff =
    info.l4Offset + (protocol === IpProtocol.tcp ? TcpField.checksum : UdpField.checksum);
  const saved = readU16(buf, csumOff);
  writeU16(buf, csumOff, 0);
  const s = pseudoHeaderSum(
    buf,
    info.srcOffset,
    info.dstOffset,
    info.addrLength,
    protocol,
    info.l4Length,
  );
  const c = finish(sumBytes(buf, info.l4Offset, info.l4Length, s));
  writeU16(buf, csumOff, saved);
  // UDP sends 0 as "no checksum", so a computed 0 goes out as 0xffff (RFC 768).
  return protocol === IpProtocol.udp && c === 0 ? 0xffff : c;
}

export function fillL4Checksum(buf: Uint8Array, info: PacketInfo): void {
  const off =
    info.l4Offset + (info.protocol === IpProtocol.tcp ? TcpField.checksum : UdpField.checksum);
  writeU16(buf, off, computeL4Checksum(buf, info));
}

export function verifyL4Checksum(buf: Uint8Array, info: PacketInfo): boolean {
  if (info.protocol === IpProtocol.udp) {
    const c = readU16(buf, info.l4Offset + UdpField.checksum);
    if (c === 0) return info.family === 4;
    return c === computeL4Checksum(buf, info);
  }
  return readU16(buf, info.l4Offset + TcpField.checksum) === computeL4Checksum(buf, info);
}

export function fillIpv4Checksum(buf: Uint8Array, info: PacketInfo): void {
  if (info.family !== 4) return;
  writeU16(buf, Ipv4Field.checksum, 0);
  writeU16(buf, Ipv4Field.checksum, finish(sumBytes(buf, 0, info.ipHeaderLength)));
}

// Whole packets as plain data, for crafting and tests (allocates freely).

export type IpHeaderRepr =
  | { readonly family: 4; readonly v4: Ipv4Repr }
  | { readonly family: 6; readonly v6: Ipv6Repr };

export type L4Repr =
  | { readonly protocol: typeof IpProtocol.tcp; readonly tcp: TcpRepr }
  | {
      readonly protocol: typeof IpProtocol.udp;
      readonly udp: UdpRepr;
      readonly udpChecksum?: boolean;
    }
  | { readonly protocol: number; readonly raw: Uint8Array };

export interface PacketRepr {
  readonly ip: IpHeaderRepr;
  readonly l4: L4Repr;
}

function l4ReprLength(l4: L4Repr): number {
  if ("tcp" in l4) return tcpLength(l4.tcp);
  if ("udp" in l4) return udpLength(l4.udp);
  return l4.raw.length;
}

/** A header for src -> dst carrying `l4`, with defaults for everything else. */
export function ipHeaderFor(src: IpAddress, dst: IpAddress, l4: L4Repr): IpHeaderRepr {
  if (src.length !== dst.length) {
    throw new CodecError(
      CodecErrorCode.badAddress,
      0,
      "source and destination of different families",
    );
  }
  const n = l4ReprLength(l4);
  return src.length === 4
    ? { family: 4, v4: ipv4Defaults(src, dst, l4.protocol, n) }
    : { family: 6, v6: ipv6Defaults(src, dst, l4.protocol, n) };
}

const info = new PacketInfo();

/** Emits a whole packet with every checksum valid. */
export function emitPacket(p: PacketRepr): Uint8Array {
  const l4Len = l4ReprLength(p.l4);
  const ip: IpHeaderRepr =
    p.ip.family === 4
      ? { family: 4, v4: { ...p.ip.v4, protocol: p.l4.protocol, payloadLength: l4Len } }
      : { family: 6, v6: { ...p.ip.v6, protocol: p.l4.protocol, payloadLength: l4Len } };
  const hl = ip.family === 4 ? ipv4HeaderLength(ip.v4) : ipv6HeaderLength(ip.v6);
  if (hl + l4Len > 0xffff + (ip.family === 6 ? IPV6_HEADER : 0)) {
    throw new CodecError(CodecErrorCode.badValue, 0, `packet of ${hl + l4Len} bytes`);
  }
  const buf = new Uint8Array(hl + l4Len);
  if (ip.family === 4) emitIpv4Header(ip.v4, buf, 0);
  else emitIpv6Header(ip.v6, buf, 0);
  const l4 = p.l4;
  if ("tcp" in l4) emitTcp(l4.tcp, buf, hl);
  else if ("udp" in l4) emitUdp(l4.udp, buf, hl);
  else buf.set(l4.raw, hl);
  if ("tcp" in l4 || ("udp" in l4 && (l4.udpChecksum ?? true))) {
    info.parse(buf, buf.length);
    fillL4Checksum(buf, info);
  }
  return buf;
}

export function parsePacket(buf: Uint8Array, len = buf.length): PacketRepr {
  if (len < 1) throw new CodecError(CodecErrorCode.truncated, 0, "empty packet");
  const version = buf[0]! >> 4;
  let ip: IpHeaderRepr;
  let l4Off: number;
  let end: number;
  if (version === 4) {
    const v4 = parseIpv4Header(buf, 0, len);
    ip = { family: 4, v4 };
    end = readU16(buf, Ipv4Field.totalLength);
    l4Off = end - v4.payloadLength;
  } else if (version === 6) {
    const { headerLength, ...v6 } = parseIpv6Header(buf, 0, len);
    ip = { family: 6, v6 };
    l4Off = headerLength;
    end = headerLength + v6.payloadLength;
  } else {
    throw new CodecError(CodecErrorCode.badVersion, 0, `IP version ${version}`);
  }
  const proto = ip.family === 4 ? ip.v4.protocol : ip.v6.protocol;
  // A fragment's bytes after the IP header are not an L4 header (except the
  // first fragment's, but the header alone is not a segment): keep them raw.
  const fragment =
    ip.family === 4
      ? ip.v4.fragmentOffset !== 0 || ip.v4.moreFragments
      : ip.v6.extensionHeaders.some((e) => e.type === IpProtocol.ipv6Fragment);
  if (!fragment && proto === IpProtocol.tcp) {
    return { ip, l4: { protocol: IpProtocol.tcp, tcp: parseTcp(buf, l4Off, end) } };
  }
  if (!fragment && proto === IpProtocol.udp) {
    const udp = parseUdp(buf, l4Off, end);
    if (UDP_HEADER + udp.payload.length !== end - l4Off) {
      throw new CodecError(
        CodecErrorCode.badTotalLength,
        l4Off + UdpField.length,
        `UDP length ${UDP_HEADER + udp.payload.length} disagrees with IP payload ${end - l4Off}`,
      );
    }
    const udpChecksum = readU16(buf, l4Off + UdpField.checksum) !== 0;
    return { ip, l4: { protocol: IpProtocol.udp, udp, udpChecksum } };
  }
  return { ip, l4: { protocol: proto, raw: buf.slice(l4Off, end) } };
}
