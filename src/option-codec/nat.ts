import { readU16, writeU16 } from "./bytes.js";
import { adjust, sumBytes } from "./checksum.js";
import { CodecError, CodecErrorCode } from "./errors.js";
import { IPV4_MIN_HEADER, IpProtocol, Ipv4Field } from "./ipv4.js";
import { IPV6_HEADER, Ipv6Field } from "./ipv6.js";
import { computeL4Checksum, fillIpv4Checksum, type PacketInfo } from "./packet.js";
import { TcpField } from "./tcp.js";
import { UdpField } from "./udp.js";

// Address and port rewriting for FULLNAT, with RFC 1624 incremental
// checksum updates (gVisor's header.UpdateChecksum approach). Addresses are
// passed as (array, offset) so the gateway can keep them in flat tables.

function l4ChecksumOffset(info: PacketInfo): number {
  if (info.isFragment) return -1;
  if (info.protocol === IpProtocol.tcp) return info.l4Offset + TcpField.checksum;
  if (info.protocol === IpProtocol.udp) return info.l4Offset + UdpField.checksum;
  return -1;
}

function hasPorts(info: PacketInfo): boolean {
  return !info.isFragment && (info.protocol === IpProtocol.tcp || info.protocol === IpProtocol.udp);
}

/**
 * Rewrites source and destination address and port, same family. The L4
 * checksum covers the addresses through the pseudo-header, so both the IPv4
 * header checksum and the L4 checksum are adjusted. A zero UDP checksum over
 * IPv4 means "none" and stays zero.
 */
export function rewriteAddresses(
  buf: Uint8Array,
  info: PacketInfo,
  src: Uint8Array,
  srcOff: number,
  srcPort: number,
  dst: Uint8Array,
  dstOff: number,
  dstPort: number,
): void {
  const n = info.addrLength;
  const oldAddr = sumBytes(buf, info.srcOffset, n) + sumBytes(buf, info.dstOffset, n);
  for (let i = 0; i < n; i++) {
    buf[info.srcOffset + i] = src[srcOff + i]!;
    buf[info.dstOffset + i] = dst[dstOff + i]!;
  }
  const newAddr = sumBytes(buf, info.srcOffset, n) + sumBytes(buf, info.dstOffset, n);
  if (info.family === 4) {
    writeU16(buf, Ipv4Field.checksum, adjust(readU16(buf, Ipv4Field.checksum), oldAddr, newAddr));
  }
  const c = l4ChecksumOffset(info);
  if (!hasPorts(info)) return;
  const oldPorts = readU16(buf, info.l4Offset) + readU16(buf, info.l4Offset + 2);
  writeU16(buf, info.l4Offset, srcPort);
  writeU16(buf, info.l4Offset + 2, dstPort);
  const udpNone = info.protocol === IpProtocol.udp && info.family === 4 && readU16(buf, c) === 0;
  if (udpNone) return;
  const cs = adjust(readU16(buf, c), oldAddr + oldPorts, newAddr + srcPort + dstPort);
  writeU16(buf, c, info.protocol === IpProtocol.udp && cs === 0 ? 0xffff : cs);
}

/**
 * NAT64 toward the server: replaces the IPv6 header (and any extension
 * headers) by a 20-byte IPv4 header from src4 to dst4; the packet shrinks.
 * Returns false, packet unchanged, if it is too big for IPv4.
 * The L4 checksum changes only through the pseudo-header addresses: the
 * length and protocol words sum the same in both forms.
 */
export function translate6to4(
  buf: Uint8Array,
  info: PacketInfo,
  src4: Uint8Array,
  src4Off: number,
  dst4: Uint8Array,
  dst4Off: number,
): boolean {
  if (info.family !== 6) {
    throw new CodecError(CodecErrorCode.unsupported, 0, "translate6to4 needs IPv6");
  }
  if (info.isFragment) {
    throw new CodecError(CodecErrorCode.unsupported, 0, "IPv6 fragments are not translated");
  }
  // An IPv4 total length cannot say more than 65535.
  if (info.length - info.l4Offset > 0xffff - IPV4_MIN_HEADER) return false;
  const oldAddr = sumBytes(buf, Ipv6Field.src, 32);
  const hopLimit = buf[Ipv6Field.hopLimit]!;
  const tclass = ((buf[0]! & 0x0f) << 4) | (buf[1]! >> 4);
  const l4Len = info.length - info.l4Offset;
  const c = l4ChecksumOffset(info);
  const oldCsum = c >= 0 ? readU16(buf, c) : 0;
  buf.copyWithin(IPV4_MIN_HEADER, info.l4Offset, info.length);
  buf[0] = 0x45;
  buf[Ipv4Field.tos] = tclass;
  writeU16(buf, Ipv4Field.totalLength, IPV4_MIN_HEADER + l4Len);
  writeU16(buf, Ipv4Field.id, 0);
  writeU16(buf, Ipv4Field.flagsFragment, 0x4000);
  buf[Ipv4Field.ttl] = hopLimit;
  buf[Ipv4Field.protocol] = info.protocol;
  for (let i = 0; i < 4; i++) {
    buf[Ipv4Field.src + i] = src4[src4Off + i]!;
    buf[Ipv4Field.dst + i] = dst4[dst4Off + i]!;
  }
  info.family = 4;
  info.addrLength = 4;
  info.srcOffset = Ipv4Field.src;
  info.dstOffset = Ipv4Field.dst;
  info.protocolFieldOffset = Ipv4Field.protocol;
  const shift = info.l4Offset - IPV4_MIN_HEADER;
  info.ipHeaderLength = IPV4_MIN_HEADER;
  info.l4Offset = IPV4_MIN_HEADER;
  info.payloadOffset -= shift;
  info.length = IPV4_MIN_HEADER + l4Len;
  fillIpv4Checksum(buf, info);
  if (c >= 0) {
    const newAddr = sumBytes(buf, Ipv4Field.src, 8);
    const cs = adjust(oldCsum, oldAddr, newAddr);
    // Over IPv4 a UDP checksum of 0 means "none": send 0xffff (RFC 768).
    writeU16(buf, c - shift, info.protocol === IpProtocol.udp && cs === 0 ? 0xffff : cs);
  }
  return true;
}

/**
 * NAT64 toward the client: replaces the IPv4 header (options dropped) by a
 * 40-byte IPv6 header from src6 to dst6; the packet grows by 20 bytes or
 * more. A zero UDP checksum is computed, since IPv6 forbids it.
 */
export function translate4to6(
  buf: Uint8Array,
  info: PacketInfo,
  src6: Uint8Array,
  src6Off: number,
  dst6: Uint8Array,
  dst6Off: number,
): boolean {
  if (info.family !== 4)
    throw new CodecError(CodecErrorCode.unsupported, 0, "translate4to6 needs IPv4");
  if (info.isFragment)
    throw new CodecError(CodecErrorCode.unsupported, 0, "IPv4 fragments are not translated");
  const l4Len = info.length - info.l4Offset;
  if (IPV6_HEADER + l4Len > buf.length) return false;
  const oldAddr = sumBytes(buf, Ipv4Field.src, 8);
  const ttl = buf[Ipv4Field.ttl]!;
  const tos = buf[Ipv4Field.tos]!;
  const c = l4ChecksumOffset(info);
  const oldCsum = c >= 0 ? readU16(buf, c) : 0;
  buf.copyWithin(IPV6_HEADER, info.l4Offset, info.length);
  buf[0] = 0x60 | (tos >> 4);
  buf[1] = (tos & 0x0f) << 4;
  buf[2] = 0;
  buf[3] = 0;
  writeU16(buf, Ipv6Field.payloadLength, l4Len);
  buf[Ipv6Field.nextHeader] = info.protocol;
  buf[Ipv6Field.hopLimit] = ttl;
  for (let i = 0; i < 16; i++) {
    buf[Ipv6Field.src + i] = src6[src6Off + i]!;
    buf[Ipv6Field.dst + i] = dst6[dst6Off + i]!;
  }
  const shift = IPV6_HEADER - info.l4Offset;
  info.family = 6;
  info.addrLength = 16;
  info.srcOffset = Ipv6Field.src;
  info.dstOffset = Ipv6Field.dst;
  info.protocolFieldOffset = Ipv6Field.nextHeader;
  info.ipHeaderLength = IPV6_HEADER;
  info.l4Offset = IPV6_HEADER;
  info.payloadOffset += shift;
  info.length = IPV6_HEADER + l4Len;
  if (c >= 0) {
    const newAddr = sumBytes(buf, Ipv6Field.src, 32);
    const at = c + shift;
    if (info.protocol === IpProtocol.udp && oldCsum === 0) {
      writeU16(buf, at, computeL4Checksum(buf, info));
    } else {
      const cs = adjust(oldCsum, oldAddr, newAddr);
      writeU16(buf, at, info.protocol === IpProtocol.udp && cs === 0 ? 0xffff : cs);
    }
  }
  return true;
}
