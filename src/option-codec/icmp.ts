import { writeU16 } from "./bytes.js";
import { finish, pseudoHeaderSum, sumBytes } from "./checksum.js";
import { IpProtocol } from "./ipv4.js";
import type { PacketInfo } from "./packet.js";

// ICMP errors quote the packet that caused them; a NAT must translate the
// quote as well as the outer header, or the sender never matches the error
// to its socket (RFC 5508 §4.1).

export const Icmp4 = { destUnreachable: 3, timeExceeded: 11, parameterProblem: 12 } as const;
/** Destination unreachable codes (RFC 792, RFC 1812 §5.2.7.1). */
export const Icmp4Code = {
  netUnreachable: 0,
  hostUnreachable: 1,
  protocolUnreachable: 2,
  portUnreachable: 3,
  fragmentationNeeded: 4,
  sourceRouteFailed: 5,
  netUnknown: 6,
  hostUnknown: 7,
  hostIsolated: 8,
  netProhibited: 9,
  hostProhibited: 10,
  netTosUnreachable: 11,
  hostTosUnreachable: 12,
  communicationProhibited: 13,
  hostPrecedenceViolation: 14,
  precedenceCutoff: 15,
} as const;
/** Destination unreachable codes of ICMPv6 (RFC 4443 §3.1). */
export const Icmp6Code = {
  noRoute: 0,
  prohibited: 1,
  addressUnreachable: 3,
  portUnreachable: 4,
} as const;
export const Icmp6 = {
  destUnreachable: 1,
  packetTooBig: 2,
  timeExceeded: 3,
  parameterProblem: 4,
} as const;

/** Offsets in an ICMP or ICMPv6 header; the MTU of an error is 16 bits (v4, RFC 1191) or 32 (v6, RFC 4443). */
export const IcmpField = { type: 0, code: 1, checksum: 2, mtu4: 6, mtu6: 4 } as const;

/** ICMP header bytes before the quoted packet (type, code, checksum, 4 more). */
export const ICMP_ERROR_HEADER = 8;

/** Whether the ICMP/ICMPv6 message in `info` is an error that quotes a packet. */
export function isIcmpError(buf: Uint8Array, info: PacketInfo): boolean {
  if (info.length - info.l4Offset < ICMP_ERROR_HEADER) return false;
  const type = buf[info.l4Offset]!;
  if (info.protocol === IpProtocol.icmp) {
    return (
      type === Icmp4.destUnreachable ||
      type === Icmp4.timeExceeded ||
      type === Icmp4.parameterProblem
    );
  }
  if (info.protocol === IpProtocol.icmpv6) return type >= 1 && type <= 4;
  return false;
}

/**
 * Where the MTU of an error is (IPv4 "fragmentation needed": 16 bits at
 * offset 6, RFC 1191; IPv6 "packet too big": 32 bits at offset 4, RFC
 * 4443), or -1 for other errors.
 */
export function icmpMtuOffset(buf: Uint8Array, info: PacketInfo): number {
  const t = info.l4Offset;
  if (
    info.protocol === IpProtocol.icmp &&
    buf[t] === Icmp4.destUnreachable &&
    buf[t + 1] === Icmp4Code.fragmentationNeeded
  ) {
    return t + IcmpField.mtu4;
  }
  if (info.protocol === IpProtocol.icmpv6 && buf[t] === Icmp6.packetTooBig)
    return t + IcmpField.mtu6;
  return -1;
}

/** Recomputes the ICMP (v4: message only) or ICMPv6 (with pseudo-header) checksum. */
export function fillIcmpChecksum(buf: Uint8Array, info: PacketInfo): void {
  const t = info.l4Offset;
  const len = info.length - t;
  writeU16(buf, t + IcmpField.checksum, 0);
  const init =
    info.protocol === IpProtocol.icmpv6
      ? pseudoHeaderSum(buf, info.srcOffset, info.dstOffset, 16, IpProtocol.icmpv6, len)
      : 0;
  writeU16(buf, t + IcmpField.checksum, finish(sumBytes(buf, t, len, init)));
}

export function verifyIcmpChecksum(buf: Uint8Array, info: PacketInfo): boolean {
  const t = info.l4Offset;
  const len = info.length - t;
  const init =
    info.protocol === IpProtocol.icmpv6
      ? pseudoHeaderSum(buf, info.srcOffset, info.dstOffset, 16, IpProtocol.icmpv6, len)
      : 0;
  return finish(sumBytes(buf, t, len, init)) === 0;
}
