import { readU16 } from "../option-codec/bytes.js";
import { CodecError } from "../option-codec/errors.js";
import { IpProtocol } from "../option-codec/ipv4.js";
import { rewriteAddresses, translate4to6, translate6to4 } from "../option-codec/nat.js";
import { PacketInfo } from "../option-codec/packet.js";
import { TcpField, TcpFlag } from "../option-codec/tcp.js";
import { TcpOptionCursor } from "../option-codec/tcp-options.js";
import { lowerMss } from "../option-codec/tcp-surgery.js";
import { Carriers } from "./carriers.js";
import type { GatewayConfig } from "./config.js";
import { ConnState, ConnTable } from "./conn-table.js";
import { GatewayError } from "./errors.js";
import { IcmpTranslator } from "./icmp-translate.js";
import { LipPool, sameBytes } from "./lip-pool.js";
import { PacketClass } from "./packet-class.js";
import { buildServices, findService, type Service, schedule } from "./services.js";
import { bump, newStats, Stat } from "./stats.js";
import { clientSegment, isBareSyn, serverSegment, shiftSeq, tcpClass } from "./tcp-state.js";
import { CarrierOutcome, Verdict } from "./verdict.js";

export { GatewayError } from "./errors.js";
export { CarrierOutcome, Verdict } from "./verdict.js";

const DROP = -1;
const PROTO_TCP = IpProtocol.tcp;
const PROTO_UDP = IpProtocol.udp;

/**
 * The FULLNAT gateway over byte arrays: takes a packet read from one side,
 * edits it in place into what goes out the other side, and returns its new
 * length (or -1 to drop it, with the reason counted); what it decided
 * beside the bytes is in `verdict`. It knows nothing of how packets
 * arrive: the TUN loop and the tests call it the same way.
 *
 * A client packet's path: parse, find its service, find or open its
 * connection, TCP state, NAT (and NAT64), carrier. A server packet's: parse
 * (ICMP errors apart), find its connection by LIP and port, TCP state, NAT
 * back. Malformed input is caught once, at the two entry points.
 */
export class Gateway {
  readonly conns: ConnTable;
  readonly stats: Float64Array;
  /** What the gateway decided about the packet it just returned. */
  readonly verdict = new Verdict();
  /** A packet to send toward the server before the one just returned (UOA ipo probe). */
  readonly extra: Uint8Array;

  private readonly info = new PacketInfo();
  private readonly cursor = new TcpOptionCursor();
  private readonly services: Service[];
  private readonly lips: LipPool;
  private readonly carriers: Carriers;
  private readonly icmp: IcmpTranslator;
  private sweep = 0;

  constructor(
    readonly config: GatewayConfig,
    stats?: Float64Array,
  ) {
    this.stats = stats ?? newStats();
    this.conns = new ConnTable(config.maxConnections, Math.min(config.maxConnections, 4096));
    if (config.portMin < 1 || config.portMax > 65535 || config.portMin > config.portMax) {
      throw new GatewayError(
        "BAD_CONFIG",
        `LIP port range ${config.portMin}-${config.portMax} is not within 1-65535`,
      );
    }
    this.lips = new LipPool(config.lips4, config.lips6, config.portMin, config.portMax);
    this.services = buildServices(config, (f) => this.lips.count(f));
    this.carriers = new Carriers(config, this.conns, this.stats);
    this.extra = this.carriers.extra;
    this.icmp = new IcmpTranslator(this.conns, this.services, this.lips, this.carriers, this.stats);
  }

  /** The packet just returned, as parsed and edited (offsets, family, lengths). */
  get packet(): PacketInfo {
    return this.info;
  }

  /**
   * Client packets that follow are TCP super-packets (TUN offloads): a
   * carrier may grow them past the MTU, since the segments they are cut
   * into are sized after the gateway. false: back to the path MTU.
   */
  superPackets(on: boolean): void {
    this.carriers.setLimit(on ? 0xffff : this.config.mtu);
  }

  /** The length of `extra` to send first (0: none). */
  get extraLength(): number {
    return this.carriers.extraLength;
  }

  private drop(s: Stat): number {
    bump(this.stats, s);
    return DROP;
  }

  // ---- client -> server -------------------------------------------------

  /** A client -> VIP packet becomes LIP -> RS; returns its new length or -1. */
  fromClient(buf: Uint8Array, len: number, now: number): number {
    bump(this.stats, Stat.packetsFromClient);
    this.verdict.reset();
    this.carriers.extraLength = 0;
    try {
      return this.clientPacket(buf, len, now);
    } catch (e) {
      // Parsing, and the option walks where needed (stripping, MSS, pruning):
      // bad bytes found anywhere drop the packet like any other malformed input.
      if (e instanceof CodecError) return this.drop(Stat.dropMalformed);
      throw e;
    }
  }

  private clientPacket(buf: Uint8Array, len: number, now: number): number {
    const info = this.info.parse(buf, len);
    if (info.isFragment) return this.drop(Stat.dropFragment);
    const proto = info.protocol;
    if (proto !== PROTO_TCP && proto !== PROTO_UDP) return this.drop(Stat.dropProtocol);
    const sIdx = findService(this.services, buf, info, proto);
    if (sIdx < 0) return this.drop(Stat.dropNoService);
    const isTcp = proto === PROTO_TCP;
    const flags = isTcp ? buf[info.l4Offset + TcpField.flags]! : 0;
    const c = this.connectionOf(buf, info, proto, flags, sIdx);
    if (c < 0) return DROP;
    const conns = this.conns;
    const v = this.verdict;
    v.conn = c;
    const svc = this.services[conns.service[c]!]!;
    const rs = svc.servers[conns.server[c]!]!;
    let cls: number;
    if (isTcp) {
      cls =
        tcpClass(flags, info.length > info.payloadOffset) |
        clientSegment(conns, c, flags, now, this.config.timeouts);
      this.carriers.cleanClientSegment(buf, info, flags);
    } else {
      conns.state[c] = ConnState.udp;
      conns.expires[c] = now + this.config.timeouts.udp;
      conns.datagrams[c] = conns.datagrams[c]! + 1;
      cls = PacketClass.udp;
      v.index = conns.datagrams[c]!;
    }
    const lip = this.lips.addr(rs.family, conns.lip[c]!);
    if (info.family !== rs.family && !translate6to4(buf, info, lip, 0, rs.addr, 0)) {
      return this.drop(Stat.dropTooBig);
    }
    rewriteAddresses(buf, info, lip, 0, conns.lport[c]!, rs.addr, 0, rs.port);
    if (isTcp) {
      const delta = conns.streamDelta[c]!;
      if (delta !== 0) shiftSeq(buf, info, TcpField.seq, delta);
      v.carrier = this.carriers.tcp(buf, info, c, flags, svc);
    } else {
      v.carrier = this.carriers.udp(buf, info, c, svc);
    }
    if (v.carrier === CarrierOutcome.inserted || v.carrier === CarrierOutcome.insertedAfterPruning)
      cls |= PacketClass.toa;
    v.cls = cls;
    bump(this.stats, Stat.packetsToServer);
    bump(this.stats, Stat.bytesToServer, info.length);
    return info.length;
  }

  /** The connection of a client packet, opened for a TCP SYN or any datagram; -1 (counted) if none. */
  private connectionOf(
    buf: Uint8Array,
    info: PacketInfo,
    proto: number,
    flags: number,
    sIdx: number,
  ): number {
    const conns = this.conns;
    const cport = readU16(buf, info.l4Offset);
    let c = conns.findByClient(proto, buf, info.srcOffset, info.addrLength, cport, sIdx);
    const isTcp = proto === PROTO_TCP;
    if (c >= 0 && isTcp && isBareSyn(flags) && conns.state[c] === ConnState.closing) {
      // The client reuses its port for a new connection while the old one
      // lingers (TIME_WAIT-like): start afresh, as LVS does with conn_reuse.
      this.close(c);
      c = -1;
    }
    if (c >= 0) return c;
    // A TCP connection starts with a SYN; anything else belongs to none.
    if (isTcp && !isBareSyn(flags)) return this.drop(Stat.dropNoConnection);
    // Check the options before taking a slot and a port for a SYN whose
    // options would make it undeliverable anyway.
    if (isTcp) {
      const o = info.l4Offset;
      this.cursor.reset(buf, o + 20, o + info.tcpHeaderLength);
      while (this.cursor.next()) {}
    }
    return this.open(buf, info, proto, cport, sIdx);
  }

  private open(
    buf: Uint8Array,
    info: PacketInfo,
    proto: number,
    cport: number,
    sIdx: number,
  ): number {
    const conns = this.conns;
    if (conns.size >= this.config.maxConnections) return this.drop(Stat.dropTableFull);
    const svc = this.services[sIdx]!;
    const r = schedule(svc);
    const rs = svc.servers[r]!;
    // The TOA follows the client's family (also over NAT64): the profile must have one.
    const toa = this.carriers.toa;
    if (info.family === 6 && toa && !toa.v6) return this.drop(Stat.dropNoCarrierFamily);
    const li = this.lips.take(rs.family, proto);
    if (li < 0) return this.drop(Stat.dropPortsExhausted);
    const port = this.lips.port;
    const c = conns.add(
      proto,
      buf,
      info.srcOffset,
      info.addrLength,
      cport,
      sIdx,
      r,
      rs.family,
      li,
      port,
    );
    if (c < 0) {
      this.lips.free(rs.family, li, proto, port);
      return this.drop(Stat.dropTableFull);
    }
    bump(this.stats, Stat.connectionsCreated);
    this.stats[Stat.connectionsActive] = conns.size;
    return c;
  }

  // ---- server -> client -------------------------------------------------

  /** An RS -> LIP packet becomes VIP -> client; returns its new length or -1. */
  fromServer(buf: Uint8Array, len: number, now: number): number {
    bump(this.stats, Stat.packetsFromServer);
    this.verdict.reset();
    try {
      return this.serverPacket(buf, len, now);
    } catch (e) {
      if (e instanceof CodecError) return this.drop(Stat.dropMalformed);
      throw e;
    }
  }

  private serverPacket(buf: Uint8Array, len: number, now: number): number {
    const info = this.info.parse(buf, len);
    if (info.isFragment) return this.drop(Stat.dropFragment);
    const proto = info.protocol;
    if (proto === IpProtocol.icmp || proto === IpProtocol.icmpv6)
      return this.icmp.fromServer(buf, info, this.verdict);
    if (proto !== PROTO_TCP && proto !== PROTO_UDP) return this.drop(Stat.dropProtocol);
    const li = this.lips.find(info.family, buf, info.dstOffset, info.addrLength);
    if (li < 0) return this.drop(Stat.dropNotForGateway);
    const conns = this.conns;
    const c = conns.findByServer(proto, info.family, li, readU16(buf, info.l4Offset + 2));
    if (c < 0) return this.drop(Stat.dropNoConnection);
    const svc = this.services[conns.service[c]!]!;
    const rs = svc.servers[conns.server[c]!]!;
    if (
      readU16(buf, info.l4Offset) !== rs.port ||
      !sameBytes(rs.addr, buf, info.srcOffset, info.addrLength)
    ) {
      return this.drop(Stat.dropServerMismatch);
    }
    const v = this.verdict;
    v.conn = c;
    if (proto === PROTO_TCP) {
      const f = buf[info.l4Offset + TcpField.flags]!;
      v.cls = tcpClass(f, info.length > info.payloadOffset);
      serverSegment(conns, c, buf, info, f, now, this.config.timeouts);
      // The TOA will take room in the client's segments: ask it for less.
      if (f & TcpFlag.syn && f & TcpFlag.ack && this.carriers.toa?.lowerMss)
        lowerMss(buf, info, this.carriers.toaRoom(c));
      const delta = conns.streamDelta[c]!;
      if (delta !== 0 && f & TcpFlag.ack) shiftSeq(buf, info, TcpField.ack, -delta);
    } else {
      conns.expires[c] = now + this.config.timeouts.udp;
      v.cls = PacketClass.udp;
    }
    if (conns.clientFamily[c] !== info.family) {
      if (!translate4to6(buf, info, svc.vip, 0, conns.clientAddr, c * 16))
        return this.drop(Stat.dropTooBig);
    }
    rewriteAddresses(
      buf,
      info,
      svc.vip,
      0,
      svc.vport,
      conns.clientAddr,
      c * 16,
      conns.clientPort[c]!,
    );
    bump(this.stats, Stat.packetsToClient);
    bump(this.stats, Stat.bytesToClient, info.length);
    return info.length;
  }

  // ---- housekeeping -----------------------------------------------------

  /** Removes up to `budget` expired connections, scanning incrementally; returns how many. */
  expire(now: number, budget = 256): number {
    const conns = this.conns;
    const slots = conns.slots;
    if (slots === 0) return 0;
    let removed = 0;
    for (let i = 0; i < budget; i++) {
      if (this.sweep >= slots) this.sweep = 0;
      const c = this.sweep++;
      if (conns.state[c] === ConnState.free || conns.expires[c]! > now) continue;
      this.close(c);
      removed++;
    }
    if (removed) {
      bump(this.stats, Stat.connectionsExpired, removed);
      this.stats[Stat.connectionsActive] = conns.size;
    }
    return removed;
  }

  private close(c: number): void {
    const conns = this.conns;
    const family = conns.serverFamily[c] === 4 ? 4 : 6;
    this.lips.free(family, conns.lip[c]!, conns.proto[c]!, conns.lport[c]!);
    conns.remove(c);
  }
}
