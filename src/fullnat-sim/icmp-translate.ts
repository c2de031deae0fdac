import { readU16, readU32, writeU16, writeU32 } from "../option-codec/bytes.js";
import { adjust, finish, sumBytes } from "../option-codec/checksum.js";
import {
  fillIcmpChecksum,
  ICMP_ERROR_HEADER,
  Icmp4,
  Icmp4Code,
  Icmp6,
  Icmp6Code,
  IcmpField,
  icmpMtuOffset,
  isIcmpError,
} from "../option-codec/icmp.js";
import { IpProtocol, Ipv4Field } from "../option-codec/ipv4.js";
import { IPV6_HEADER, Ipv6Field } from "../option-codec/ipv6.js";
import { fillIpv4Checksum, type PacketInfo } from "../option-codec/packet.js";
import { TcpField } from "../option-codec/tcp.js";
import { UdpField } from "../option-codec/udp.js";
import type { Carriers } from "./carriers.js";
import type { ConnTable } from "./conn-table.js";
import type { LipPool } from "./lip-pool.js";
import type { Service } from "./services.js";
import { bump, Stat } from "./stats.js";
import type { Verdict } from "./verdict.js";

const DROP = -1;

/**
 * RFC 7915 §4.2: the ICMPv4 unreachable codes a NAT64 client can act on,
 * and the ICMPv6 code each becomes (absent: the error is dropped).
 * Fragmentation needed becomes packet too big, handled apart.
 */
const C4 = Icmp4Code;
const UNREACHABLE_4TO6: ReadonlyMap<number, number> = new Map([
  ...[
    C4.netUnreachable,
    C4.hostUnreachable,
    C4.sourceRouteFailed,
    C4.netUnknown,
    C4.hostUnknown,
    C4.hostIsolated,
    C4.netTosUnreachable,
    C4.hostTosUnreachable,
  ].map((c) => [c, Icmp6Code.noRoute] as const),
  ...[C4.netProhibited, C4.hostProhibited, C4.communicationProhibited, C4.precedenceCutoff].map(
    (c) => [c, Icmp6Code.prohibited] as const,
  ),
  [C4.portUnreachable, Icmp6Code.portUnreachable],
]);

/** The outer IPv6 header, the ICMPv6 header and the quoted IPv6 header of a translated error. */
const OUT_ICMP = IPV6_HEADER;
const OUT_QUOTE = OUT_ICMP + ICMP_ERROR_HEADER;
const OUT_QUOTE_L4 = OUT_QUOTE + IPV6_HEADER;

/**
 * ICMP errors from the server side about a packet the gateway sent (port
 * unreachable, fragmentation needed, ...): the quoted LIP -> RS packet
 * becomes client -> VIP, the outer header VIP -> client, and a reported
 * MTU is lowered by the TOA the gateway adds. For NAT64 flows the ICMPv4
 * error becomes an ICMPv6 one.
 */
export class IcmpTranslator {
  /** ICMPv6 errors are at most 1280 bytes (RFC 4443 §2.4). */
  private readonly scratch = new Uint8Array(1280);

  constructor(
    private readonly conns: ConnTable,
    private readonly services: readonly Service[],
    private readonly lips: LipPool,
    private readonly carriers: Carriers,
    private readonly stats: Float64Array,
  ) {}

  /** The error in `buf` translated in place: its new length, or -1 (reason counted). */
  fromServer(buf: Uint8Array, info: PacketInfo, v: Verdict): number {
    if (!isIcmpError(buf, info)) return this.drop(Stat.dropIcmp);
    const q = info.l4Offset + ICMP_ERROR_HEADER;
    const end = info.length;
    let qProto: number;
    let qSrc: number;
    let qDst: number;
    let qL4: number;
    if (info.family === 4) {
      if (q + 20 > end || buf[q]! >> 4 !== 4) return this.drop(Stat.dropIcmp);
      qProto = buf[q + Ipv4Field.protocol]!;
      qSrc = q + Ipv4Field.src;
      qDst = q + Ipv4Field.dst;
      qL4 = q + (buf[q]! & 0x0f) * 4;
    } else {
      if (q + IPV6_HEADER > end || buf[q]! >> 4 !== 6) return this.drop(Stat.dropIcmp);
      qProto = buf[q + Ipv6Field.nextHeader]!;
      qSrc = q + Ipv6Field.src;
      qDst = q + Ipv6Field.dst;
      qL4 = q + IPV6_HEADER;
    }
    if (qProto === IpProtocol.uoaOpp && qL4 + 4 <= end) {
      // The quote is one of our UOA opp datagrams: its UDP header follows the private one.
      qL4 += readU16(buf, qL4 + 2);
      qProto = IpProtocol.udp;
    }
    if ((qProto !== IpProtocol.tcp && qProto !== IpProtocol.udp) || qL4 + 8 > end) {
      return this.drop(Stat.dropIcmp);
    }
    const n = info.addrLength;
    const li = this.lips.find(info.family, buf, qSrc, n);
    if (li < 0) return this.drop(Stat.dropIcmp);
    const conns = this.conns;
    const c = conns.findByServer(qProto, info.family, li, readU16(buf, qL4));
    if (c < 0) return this.drop(Stat.dropNoConnection);
    v.conn = c;
    if (conns.clientFamily[c] !== info.family) return this.fourToSix(buf, info, c, qProto, q, qL4);
    const svc = this.services[conns.service[c]!]!;
    const cport = conns.clientPort[c]!;
    // The quoted segment's checksum covers its addresses and ports: adjust it
    // when the quote holds it (the first 8 bytes always hold the ports).
    const oldSum =
      sumBytes(buf, qSrc, n) + sumBytes(buf, qDst, n) + readU16(buf, qL4) + readU16(buf, qL4 + 2);
    for (let i = 0; i < n; i++) {
      buf[qSrc + i] = conns.clientAddr[c * 16 + i]!;
      buf[qDst + i] = svc.vip[i]!;
    }
    writeU16(buf, qL4, cport);
    writeU16(buf, qL4 + 2, svc.vport);
    const newSum = sumBytes(buf, qSrc, n) + sumBytes(buf, qDst, n) + cport + svc.vport;
    const csAt = qL4 + (qProto === IpProtocol.tcp ? TcpField.checksum : UdpField.checksum);
    if (csAt + 2 <= end) {
      const old = readU16(buf, csAt);
      if (!(qProto === IpProtocol.udp && old === 0))
        writeU16(buf, csAt, adjust(old, oldSum, newSum));
    }
    if (info.family === 4) {
      writeU16(buf, q + Ipv4Field.checksum, 0);
      writeU16(buf, q + Ipv4Field.checksum, finish(sumBytes(buf, q, qL4 - q)));
    }
    const mtuAt = icmpMtuOffset(buf, info);
    // Only TCP segments grow by a fixed carrier (the TOA); a UOA rides on a
    // few datagrams only, so UDP errors pass the MTU on unchanged.
    const room = qProto === IpProtocol.tcp ? this.carriers.toaRoom(c) : 0;
    if (mtuAt >= 0 && room > 0) {
      if (info.family === 4) writeU16(buf, mtuAt, Math.max(68, readU16(buf, mtuAt) - room));
      else writeU32(buf, mtuAt, Math.max(1280, readU32(buf, mtuAt) - room));
    }
    for (let i = 0; i < n; i++) {
      buf[info.srcOffset + i] = svc.vip[i]!;
      buf[info.dstOffset + i] = conns.clientAddr[c * 16 + i]!;
    }
    fillIpv4Checksum(buf, info);
    fillIcmpChecksum(buf, info);
    return this.sent(info.length);
  }

  /**
   * RFC 7915 §4.2 for the errors a NAT64 client can act on: unreachable
   * (UNREACHABLE_4TO6), fragmentation needed (as packet too big, MTU + 20,
   * less the TOA), time exceeded. The quote becomes client -> VIP over
   * IPv6; the packet grows by 40 bytes (two headers).
   */
  private fourToSix(
    buf: Uint8Array,
    info: PacketInfo,
    c: number,
    qProto: number,
    q: number,
    qL4: number,
  ): number {
    const t = info.l4Offset;
    const type4 = buf[t + IcmpField.type]!;
    const code4 = buf[t + IcmpField.code]!;
    let type6: number;
    let code6 = 0;
    let mtu = 0;
    if (type4 === Icmp4.destUnreachable && code4 === Icmp4Code.fragmentationNeeded) {
      type6 = Icmp6.packetTooBig;
      const room = qProto === IpProtocol.tcp ? this.carriers.toaRoom(c) : 0;
      mtu = Math.max(1280, readU16(buf, t + IcmpField.mtu4) + 20 - room);
    } else if (type4 === Icmp4.destUnreachable) {
      const mapped = UNREACHABLE_4TO6.get(code4);
      if (mapped === undefined) return this.drop(Stat.dropIcmp);
      type6 = Icmp6.destUnreachable;
      code6 = mapped;
    } else if (type4 === Icmp4.timeExceeded) {
      type6 = Icmp6.timeExceeded;
      code6 = code4;
    } else {
      return this.drop(Stat.dropIcmp);
    }
    const conns = this.conns;
    const svc = this.services[conns.service[c]!]!;
    const out = this.scratch;
    const quoteLen = Math.min(info.length - qL4, out.length - OUT_QUOTE_L4);
    const total = OUT_QUOTE_L4 + quoteLen;
    // Outer IPv6 header: VIP -> client.
    out.fill(0, 0, OUT_QUOTE_L4);
    out[0] = 0x60;
    writeU16(out, Ipv6Field.payloadLength, total - IPV6_HEADER);
    out[Ipv6Field.nextHeader] = IpProtocol.icmpv6;
    out[Ipv6Field.hopLimit] = 64;
    out.set(svc.vip, Ipv6Field.src);
    for (let i = 0; i < 16; i++) out[Ipv6Field.dst + i] = conns.clientAddr[c * 16 + i]!;
    out[OUT_ICMP + IcmpField.type] = type6;
    out[OUT_ICMP + IcmpField.code] = code6;
    writeU32(out, OUT_ICMP + IcmpField.mtu6, mtu);
    // The quoted packet as the client sent it: client -> VIP over IPv6.
    const oq = OUT_QUOTE;
    out[oq] = 0x60;
    writeU16(
      out,
      oq + Ipv6Field.payloadLength,
      Math.max(0, readU16(buf, q + Ipv4Field.totalLength) - (qL4 - q)),
    );
    out[oq + Ipv6Field.nextHeader] = qProto;
    out[oq + Ipv6Field.hopLimit] = buf[q + Ipv4Field.ttl]!;
    for (let i = 0; i < 16; i++) out[oq + Ipv6Field.src + i] = conns.clientAddr[c * 16 + i]!;
    out.set(svc.vip, oq + Ipv6Field.dst);
    const ol4 = OUT_QUOTE_L4;
    for (let i = 0; i < quoteLen; i++) out[ol4 + i] = buf[qL4 + i]!;
    const oldSum = sumBytes(buf, q + Ipv4Field.src, 8) + readU16(out, ol4) + readU16(out, ol4 + 2);
    writeU16(out, ol4, conns.clientPort[c]!);
    writeU16(out, ol4 + 2, svc.vport);
    const newSum = sumBytes(out, oq + Ipv6Field.src, 32) + conns.clientPort[c]! + svc.vport;
    const csAt = ol4 + (qProto === IpProtocol.tcp ? TcpField.checksum : UdpField.checksum);
    if (csAt + 2 <= ol4 + quoteLen) {
      const old = readU16(out, csAt);
      // A v4 UDP checksum of 0 (none) is not allowed over IPv6: leave it; the quote is informative.
      if (!(qProto === IpProtocol.udp && old === 0))
        writeU16(out, csAt, adjust(old, oldSum, newSum));
    }
    if (total > buf.length) return this.drop(Stat.dropTooBig);
    for (let i = 0; i < total; i++) buf[i] = out[i]!;
    info.parse(buf, total);
    fillIcmpChecksum(buf, info);
    return this.sent(total);
  }

  private sent(length: number): number {
    bump(this.stats, Stat.icmpErrorsTranslated);
    bump(this.stats, Stat.packetsToClient);
    bump(this.stats, Stat.bytesToClient, length);
    return length;
  }

  private drop(s: Stat): number {
    bump(this.stats, s);
    return DROP;
  }
}
