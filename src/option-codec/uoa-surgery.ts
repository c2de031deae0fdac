import type { IpAddress } from "./address.js";
import { readU16, writeU16 } from "./bytes.js";
import { CodecError, CodecErrorCode } from "./errors.js";
import { IpOptionCursor } from "./ip-options.js";
import { IPV4_MAX_HEADER, IPV4_MIN_HEADER, IpProtocol, Ipv4Field } from "./ipv4.js";
import {
  fillIpv4Checksum,
  fillL4Checksum,
  growthLimit,
  type PacketInfo,
  setIpLength,
} from "./packet.js";
import { UDP_HEADER, UdpField } from "./udp.js";
import {
  decodeOpp,
  decodeUoaOption,
  OPP_HEADER_LENGTH,
  OPP_PROTOCOL,
  UOA_OPTION_TYPE,
  type UoaRepr,
  uoaOptionLength,
} from "./uoa.js";

// UOA insertion and removal on UDP packets already checked by PacketInfo.
// The gateway inserts; decoders and tests remove.

function writeUoa(
  buf: Uint8Array,
  at: number,
  addr: IpAddress,
  addrOff: number,
  addrLen: number,
  port: number,
): void {
  buf[at] = UOA_OPTION_TYPE;
  buf[at + 1] = 4 + addrLen;
  writeU16(buf, at + 2, port);
  for (let i = 0; i < addrLen; i++) buf[at + 4 + i] = addr[addrOff + i]!;
}

/**
 * ipo mode: the option goes first in the IPv4 options (IHL grows by 2
 * words). The UDP checksum does not cover IP options, so it stays valid.
 * Returns false, leaving the packet unchanged, when the header would pass
 * 60 bytes or the packet `mtu`: the caller then sends a probe datagram.
 */
export function insertUoaIpo(
  buf: Uint8Array,
  info: PacketInfo,
  addr: IpAddress,
  addrOff: number,
  port: number,
  mtu: number,
): boolean {
  if (info.family !== 4)
    throw new CodecError(CodecErrorCode.unsupported, 0, "UOA ipo mode is IPv4 only");
  const optLen = uoaOptionLength(4);
  if (info.ipHeaderLength + optLen > IPV4_MAX_HEADER) return false;
  if (info.length + optLen > growthLimit(buf, info, mtu)) return false;
  buf.copyWithin(IPV4_MIN_HEADER + optLen, IPV4_MIN_HEADER, info.length);
  writeUoa(buf, IPV4_MIN_HEADER, addr, addrOff, 4, port);
  buf[0] = 0x40 | ((info.ipHeaderLength + optLen) / 4);
  info.ipHeaderLength += optLen;
  info.l4Offset += optLen;
  info.payloadOffset += optLen;
  setIpLength(buf, info, info.length + optLen);
  fillIpv4Checksum(buf, info);
  return true;
}

/**
 * The ipo fallback: a zero-payload UDP datagram carrying only the option,
 * built from the original's addresses and ports into `out`. Returns its length.
 */
export function writeUoaIpoProbe(
  buf: Uint8Array,
  info: PacketInfo,
  addr: IpAddress,
  addrOff: number,
  port: number,
  out: Uint8Array,
  outInfo: PacketInfo,
): number {
  const hl = IPV4_MIN_HEADER + uoaOptionLength(4);
  const len = hl + UDP_HEADER;
  if (out.length < len) throw new CodecError(CodecErrorCode.noRoom, 0, "probe buffer too small");
  for (let i = 0; i < IPV4_MIN_HEADER; i++) out[i] = buf[i]!;
  out[0] = 0x40 | (hl / 4);
  writeU16(out, Ipv4Field.flagsFragment, 0x4000);
  writeUoa(out, IPV4_MIN_HEADER, addr, addrOff, 4, port);
  writeU16(out, hl, readU16(buf, info.l4Offset));
  writeU16(out, hl + 2, readU16(buf, info.l4Offset + 2));
  writeU16(out, hl + UdpField.length, UDP_HEADER);
  writeU16(out, Ipv4Field.totalLength, len);
  outInfo.parse(out, len);
  fillIpv4Checksum(out, outInfo);
  fillL4Checksum(out, outInfo);
  return len;
}

const ipCursor = new IpOptionCursor();

/** Removes the first UOA option from the IPv4 options; returns it, or null. */
export function removeUoaIpo(buf: Uint8Array, info: PacketInfo): UoaRepr | null {
  if (info.family !== 4) return null;
  ipCursor.reset(buf, IPV4_MIN_HEADER, info.ipHeaderLength);
  while (ipCursor.next()) {
    if (ipCursor.kind !== UOA_OPTION_TYPE) continue;
    const at = ipCursor.at;
    const len = ipCursor.length;
    const uoa = decodeUoaOption(buf, at, at + len);
    buf.copyWithin(at, at + len, info.length);
    buf[0] = 0x40 | ((info.ipHeaderLength - len) / 4);
    info.ipHeaderLength -= len;
    info.l4Offset -= len;
    info.payloadOffset -= len;
    setIpLength(buf, info, info.length - len);
    fillIpv4Checksum(buf, info);
    return uoa;
  }
  return null;
}

/**
 * opp mode: the private header and option go between IP and UDP and the IP
 * protocol becomes 248. Over IPv4 the UDP checksum is zeroed, as DPVS does;
 * over IPv6 it must stay (zero is illegal there) and is still valid, since
 * the receiver checks it after removing the header. Afterwards `info`
 * describes the UDP header behind the opp header; a fresh PacketInfo.parse
 * (which stops at protocol 248) is what removeUoaOpp expects.
 */
export function insertUoaOpp(
  buf: Uint8Array,
  info: PacketInfo,
  addr: IpAddress,
  addrOff: number,
  addrLen: 4 | 16,
  port: number,
  mtu: number,
): boolean {
  if (info.protocol !== IpProtocol.udp) {
    throw new CodecError(CodecErrorCode.unsupported, info.l4Offset, "UOA opp needs a UDP packet");
  }
  const optLen = uoaOptionLength(addrLen === 4 ? 4 : 6);
  const total = OPP_HEADER_LENGTH + optLen;
  if (info.length + total > growthLimit(buf, info, mtu)) return false;
  const at = info.l4Offset;
  buf.copyWithin(at + total, at, info.length);
  buf[at] = (addrLen === 4 ? 1 : 2) << 4;
  buf[at + 1] = IpProtocol.udp;
  writeU16(buf, at + 2, total);
  writeUoa(buf, at + OPP_HEADER_LENGTH, addr, addrOff, addrLen, port);
  buf[info.protocolFieldOffset] = OPP_PROTOCOL;
  info.protocol = OPP_PROTOCOL;
  info.l4Offset += total;
  info.payloadOffset += total;
  setIpLength(buf, info, info.length + total);
  if (info.family === 4) {
    writeU16(buf, info.l4Offset + UdpField.checksum, 0);
    fillIpv4Checksum(buf, info);
  }
  return true;
}

/**
 * Removes the opp header from a protocol-248 packet (after PacketInfo.parse,
 * which leaves l4Offset at the opp header). Returns the client address.
 */
export function removeUoaOpp(buf: Uint8Array, info: PacketInfo): UoaRepr {
  if (info.protocol !== OPP_PROTOCOL) {
    throw new CodecError(
      CodecErrorCode.badCarrier,
      info.protocolFieldOffset,
      `protocol ${info.protocol} is not opp (248)`,
    );
  }
  const at = info.l4Offset;
  const opp = decodeOpp(buf, at, info.length);
  buf.copyWithin(at, at + opp.length, info.length);
  buf[info.protocolFieldOffset] = opp.protocol;
  setIpLength(buf, info, info.length - opp.length);
  fillIpv4Checksum(buf, info);
  // Re-check the inner header now that it sits where L4 belongs.
  info.parse(buf, info.length);
  return opp.uoa;
}
