import { familyOf } from "../option-codec/address.js";
import { readU16, readU32, writeU16, writeU32 } from "../option-codec/bytes.js";
import { adjust, finish, sumBytes } from "../option-codec/checksum.js";
import { CodecError } from "../option-codec/errors.js";
import {
  fillIcmpChecksum,
  ICMP_ERROR_HEADER,
  Icmp4,
  Icmp4Code,
  Icmp6,
  icmpMtuOffset,
  isIcmpError,
} from "../option-codec/icmp.js";
import { IpProtocol } from "../option-codec/ipv4.js";
import { rewriteAddresses, translate4to6, translate6to4 } from "../option-codec/nat.js";
import { fillIpv4Checksum, PacketInfo } from "../option-codec/packet.js";
import { insertPayloadPrefix } from "../option-codec/payload-surgery.js";
import { encodeProxyV1, proxyV1Length } from "../option-codec/proxy-v1.js";
import { encodeProxyV2, proxyV2Length } from "../option-codec/proxy-v2.js";
import { SPP_LENGTH, writeSppHeader } from "../option-codec/spp.js";
import { TcpField, TcpFlag } from "../option-codec/tcp.js";
import { TcpOptionCursor, TcpOptionKind } from "../option-codec/tcp-options.js";
import {
  type InsertPolicy,
  InsertResult,
  insertTcpOption,
  lowerMss,
  nopOutTcpOptions,
} from "../option-codec/tcp-surgery.js";
import { encodeToa, type ToaFormat, toaLength } from "../option-codec/toa.js";
import { insertUoaIpo, insertUoaOpp, writeUoaIpoProbe } from "../option-codec/uoa-surgery.js";
import type { GatewayConfig } from "./config.js";
import { ConnFlag, ConnState, ConnTable } from "./conn-table.js";
import { GatewayError } from "./errors.js";
import { unforwardable, unsupportedFlow } from "./flow-support.js";
import { PacketClass } from "./packet-class.js";
import type { ToaPolicy } from "./profiles.js";
import { newStats, Stat } from "./stats.js";

/** What happened to the carrier on the last packet toward the server. */
export const CarrierOutcome = {
  none: 0,
  inserted: 1,
  insertedAfterPruning: 2,
  /** The packet should have carried it but there was no room. */
  failed: 3,
} as const;
export type CarrierOutcome = (typeof CarrierOutcome)[keyof typeof CarrierOutcome];

export { GatewayError } from "./errors.js";

const DROP = -1;
const PROTO_TCP = IpProtocol.tcp;
const PROTO_UDP = IpProtocol.udp;
const TIMESTAMPS: readonly number[] = [TcpOptionKind.timestamps];

interface Lip {
  readonly addr: Uint8Array;
  /** One bit per port, per protocol: taken or not. */
  readonly tcpPorts: Uint8Array;
  readonly udpPorts: Uint8Array;
  cursor: number;
}

interface Service {
  readonly vip: Uint8Array;
  readonly vport: number;
  readonly proto: number;
  readonly family: 4 | 6;
  readonly servers: {
    addr: Uint8Array;
    port: number;
    family: 4 | 6;
    weight: number;
    current: number;
  }[];
  readonly wrr: boolean;
  rr: number;
}

/**
 * The FULLNAT gateway over byte arrays: takes a packet read from one side,
 * edits it in place into what goes out the other side, and returns its new
 * length (or -1 to drop it, with the reason counted). It knows nothing of
 * how packets arrive: the TUN loop and the tests call it the same way.
 */
export class Gateway {
  readonly conns: ConnTable;
  readonly stats: Float64Array;
  lastOutcome: CarrierOutcome = CarrierOutcome.none;
  /** A packet to send toward the server before the one just returned (UOA ipo probe). */
  readonly extra = new Uint8Array(128);
  extraLength = 0;
  /** The connection the last packet belonged to, or -1. */
  lastConn = -1;
  /** PacketClass bits of the last packet returned (0 for a drop). */
  lastClass = 0;
  /** For UDP toward the server: which datagram of its flow the last one was (1 = first). */
  lastIndex = 0;

  private readonly info = new PacketInfo();
  private readonly cursor = new TcpOptionCursor();
  private readonly extraInfo = new PacketInfo();
  private readonly services: Service[];
  private readonly lips4: Lip[];
  private readonly lips6: Lip[];
  private lipTurn = 0;
  private readonly toa: ToaPolicy | null;
  private readonly insertPolicy: InsertPolicy;
  private readonly staleKinds: readonly number[];
  private readonly scratch = new Uint8Array(512);
  /** ICMPv6 errors are at most 1280 bytes (RFC 4443 §2.4). */
  private readonly icmpScratch = new Uint8Array(1280);
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
    const lip = (addr: Uint8Array): Lip => ({
      addr,
      tcpPorts: new Uint8Array(8192),
      udpPorts: new Uint8Array(8192),
      cursor: config.portMin,
    });
    this.lips4 = config.lips4.map(lip);
    this.lips6 = config.lips6.map(lip);
    this.services = config.services.map((s) => {
      const family = familyOf(s.vip.addr);
      if (s.servers.length === 0)
        throw new GatewayError("BAD_CONFIG", "a service needs at least one real server");
      for (const r of s.servers) {
        const rf = familyOf(r.endpoint.addr);
        if (family === 4 && rf === 6) {
          throw new GatewayError(
            "BAD_CONFIG",
            "an IPv4 VIP cannot have IPv6 real servers (NAT46 is not supported)",
          );
        }
        const why = unsupportedFlow(config.profile, s.proto, family, rf);
        if (why !== null && unforwardable(why)) throw new GatewayError("BAD_CONFIG", why.message);
        if ((rf === 4 ? this.lips4 : this.lips6).length === 0) {
          throw new GatewayError(
            "BAD_CONFIG",
            `no IPv${rf} local address (LIP) for real server ${r.endpoint.port}`,
          );
        }
      }
      return {
        vip: s.vip.addr,
        vport: s.vip.port,
        proto: s.proto === "tcp" ? PROTO_TCP : PROTO_UDP,
        family,
        servers: s.servers.map((r) => ({
          addr: r.endpoint.addr,
          port: r.endpoint.port,
          family: familyOf(r.endpoint.addr),
          weight: r.weight,
          current: 0,
        })),
        wrr: s.scheduler === "wrr",
        rr: 0,
      };
    });
    const p = config.profile;
    this.toa = p.tcp?.carrier === "toa" ? p.tcp : null;
    const kinds: number[] = [];
    if (this.toa) {
      kinds.push(this.toa.v4.kind);
      if (this.toa.v6 && this.toa.v6.kind !== this.toa.v4.kind) kinds.push(this.toa.v6.kind);
    }
    this.staleKinds = kinds;
    this.insertPolicy = { mtu: config.mtu, prune: this.toa?.prune ?? false, staleKinds: kinds };
  }

  private count(s: Stat, n = 1): void {
    this.stats[s] = this.stats[s]! + n;
  }

  private drop(s: Stat): number {
    this.count(s);
    return DROP;
  }

  // ---- client -> server -------------------------------------------------

  /** A client -> VIP packet becomes LIP -> RS; returns its new length or -1. */
  fromClient(buf: Uint8Array, len: number, now: number): number {
    try {
      return this.clientPacket(buf, len, now);
    } catch (e) {
      // Options are walked only where needed (stripping, MSS, pruning): a bad
      // one found there drops the packet like any other malformed input.
      if (e instanceof CodecError) return this.drop(Stat.dropMalformed);
      throw e;
    }
  }

  private clientPacket(buf: Uint8Array, len: number, now: number): number {
    this.count(Stat.packetsFromClient);
    this.lastOutcome = CarrierOutcome.none;
    this.extraLength = 0;
    this.lastConn = -1;
    this.lastClass = 0;
    this.lastIndex = 0;
    const info = this.info;
    try {
      info.parse(buf, len);
    } catch (e) {
      if (e instanceof CodecError) return this.drop(Stat.dropMalformed);
      throw e;
    }
    if (info.isFragment) return this.drop(Stat.dropFragment);
    const proto = info.protocol;
    if (proto !== PROTO_TCP && proto !== PROTO_UDP) return this.drop(Stat.dropProtocol);
    const sIdx = this.findService(buf, info, proto);
    if (sIdx < 0) return this.drop(Stat.dropNoService);
    const conns = this.conns;
    const cport = readU16(buf, info.l4Offset);
    let c = conns.findByClient(proto, buf, info.srcOffset, info.addrLength, cport, sIdx);
    const flags = proto === PROTO_TCP ? buf[info.l4Offset + TcpField.flags]! : 0;
    const bareSyn = (flags & (TcpFlag.syn | TcpFlag.ack | TcpFlag.rst)) === TcpFlag.syn;
    if (c >= 0 && proto === PROTO_TCP && bareSyn && conns.state[c] === ConnState.closing) {
      // The client reuses its port for a new connection while the old one
      // lingers (TIME_WAIT-like): start afresh, as LVS does with conn_reuse.
      this.close(c);
      c = -1;
    }
    if (c < 0) {
      // A TCP connection starts with a SYN; anything else belongs to none.
      if (
        proto === PROTO_TCP &&
        (flags & (TcpFlag.syn | TcpFlag.ack | TcpFlag.rst)) !== TcpFlag.syn
      ) {
        return this.drop(Stat.dropNoConnection);
      }
      // Check the options before taking a slot and a port for a SYN whose
      // options would make it undeliverable anyway.
      if (proto === PROTO_TCP) {
        const o = info.l4Offset;
        this.cursor.reset(buf, o + 20, o + info.tcpHeaderLength);
        while (this.cursor.next()) {}
      }
      c = this.open(buf, info, proto, cport, sIdx);
      if (c < 0) return DROP;
    }
    this.lastConn = c;
    const svc = this.services[conns.service[c]!]!;
    const rs = svc.servers[conns.server[c]!]!;
    const lip = (rs.family === 4 ? this.lips4 : this.lips6)[conns.lip[c]!]!;
    const isTcp = proto === PROTO_TCP;
    let cls: number;
    if (isTcp) {
      cls = tcpClass(flags, info.length > info.payloadOffset);
      const cf = conns.flags[c]!;
      if (
        (flags & (TcpFlag.ack | TcpFlag.syn | TcpFlag.rst)) === TcpFlag.ack &&
        (cf & (ConnFlag.serverIsnSeen | ConnFlag.clientAcked)) === ConnFlag.serverIsnSeen
      ) {
        cls |= PacketClass.handshakeAck;
        conns.flags[c] = cf | ConnFlag.clientAcked;
      }
      this.clientTcpState(c, flags, now);
      if (this.toa) {
        // A client must never choose the address the server sees.
        if (!this.toa.keepClientToa)
          this.count(Stat.clientToaStripped, nopOutTcpOptions(buf, info, this.staleKinds));
        if (this.toa.synTimestampsToNops && flags & TcpFlag.syn)
          nopOutTcpOptions(buf, info, TIMESTAMPS);
      }
    } else {
      conns.state[c] = ConnState.udp;
      conns.expires[c] = now + this.config.timeouts.udp;
      conns.datagrams[c] = conns.datagrams[c]! + 1;
      cls = PacketClass.udp;
      this.lastIndex = conns.datagrams[c]!;
    }
    if (info.family !== rs.family && !translate6to4(buf, info, lip.addr, 0, rs.addr, 0)) {
      return this.drop(Stat.dropTooBig);
    }
    rewriteAddresses(buf, info, lip.addr, 0, conns.lport[c]!, rs.addr, 0, rs.port);
    if (isTcp) {
      const delta = conns.streamDelta[c]!;
      if (delta !== 0) shiftSeq(buf, info, TcpField.seq, delta);
      if (this.toa) {
        if (this.shouldCarryToa(buf, info, c, flags)) this.insertToa(buf, info, c);
      } else if (!(conns.flags[c]! & ConnFlag.prefixSent) && info.length > info.payloadOffset) {
        if (this.insertPrefix(buf, info, c, svc)) {
          conns.flags[c] = conns.flags[c]! | ConnFlag.prefixSent;
        }
      }
    } else {
      this.carryUdp(buf, info, c, svc);
    }
    const o = this.lastOutcome as CarrierOutcome;
    if (o === CarrierOutcome.inserted || o === CarrierOutcome.insertedAfterPruning)
      cls |= PacketClass.toa;
    this.lastClass = cls;
    this.count(Stat.packetsToServer);
    this.count(Stat.bytesToServer, info.length);
    return info.length;
  }

  private findService(buf: Uint8Array, info: PacketInfo, proto: number): number {
    const dport = readU16(buf, info.l4Offset + 2);
    const n = info.addrLength;
    for (let i = 0; i < this.services.length; i++) {
      const s = this.services[i]!;
      if (s.proto !== proto || s.vport !== dport || s.vip.length !== n) continue;
      let same = true;
      for (let j = 0; j < n; j++) {
        if (s.vip[j] !== buf[info.dstOffset + j]) {
          same = false;
          break;
        }
      }
      if (same) return i;
    }
    return -1;
  }

  private schedule(s: Service): number {
    const servers = s.servers;
    if (!s.wrr) {
      const i = s.rr % servers.length;
      s.rr = i + 1;
      return i;
    }
    // Smooth weighted round-robin: even spread, exact proportions.
    let best = 0;
    let total = 0;
    for (let i = 0; i < servers.length; i++) {
      const r = servers[i]!;
      r.current += r.weight;
      total += r.weight;
      if (r.current > servers[best]!.current) best = i;
    }
    servers[best]!.current -= total;
    return best;
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
    const r = this.schedule(svc);
    const rs = svc.servers[r]!;
    // The TOA follows the client's family (also over NAT64): the profile must have one.
    if (info.family === 6 && this.toa && !this.toa.v6) return this.drop(Stat.dropNoCarrierFamily);
    const lips = rs.family === 4 ? this.lips4 : this.lips6;
    for (let tries = 0; tries < lips.length; tries++) {
      const li = this.lipTurn++ % lips.length;
      const port = this.takePort(lips[li]!, proto);
      if (port < 0) continue;
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
        this.freePort(lips[li]!, proto, port);
        return this.drop(Stat.dropTableFull);
      }
      this.count(Stat.connectionsCreated);
      this.stats[Stat.connectionsActive] = conns.size;
      return c;
    }
    return this.drop(Stat.dropPortsExhausted);
  }

  private takePort(lip: Lip, proto: number): number {
    const bits = proto === PROTO_TCP ? lip.tcpPorts : lip.udpPorts;
    const { portMin, portMax } = this.config;
    const span = portMax - portMin + 1;
    let p = lip.cursor;
    for (let i = 0; i < span; i++) {
      if (p > portMax) p = portMin;
      if ((bits[p >> 3]! & (1 << (p & 7))) === 0) {
        bits[p >> 3] = bits[p >> 3]! | (1 << (p & 7));
        lip.cursor = p + 1;
        return p;
      }
      p++;
    }
    return -1;
  }

  private freePort(lip: Lip, proto: number, port: number): void {
    const bits = proto === PROTO_TCP ? lip.tcpPorts : lip.udpPorts;
    bits[port >> 3] = bits[port >> 3]! & ~(1 << (port & 7));
  }

  private clientTcpState(c: number, flags: number, now: number): void {
    const conns = this.conns;
    const t = this.config.timeouts;
    if (flags & TcpFlag.rst) {
      conns.state[c] = ConnState.closing;
      conns.expires[c] = now + t.tcpClose;
      return;
    }
    if (flags & TcpFlag.fin) conns.flags[c] = conns.flags[c]! | ConnFlag.clientFin;
    this.advance(c, now);
  }

  private advance(c: number, now: number): void {
    const conns = this.conns;
    const t = this.config.timeouts;
    const f = conns.flags[c]!;
    const st = conns.state[c]!;
    if (f & ConnFlag.clientFin && f & ConnFlag.serverFin) {
      conns.state[c] = ConnState.closing;
      conns.expires[c] = now + t.tcpClose;
    } else if (f & (ConnFlag.clientFin | ConnFlag.serverFin)) {
      conns.state[c] = ConnState.finWait;
      conns.expires[c] = now + t.tcpFin;
    } else if (st === ConnState.synSent) {
      conns.expires[c] = now + t.tcpSyn;
    } else if (st === ConnState.synReceived || st === ConnState.established) {
      conns.state[c] = ConnState.established;
      conns.expires[c] = now + t.tcpEstablished;
    }
  }

  private shouldCarryToa(buf: Uint8Array, info: PacketInfo, c: number, f: number): boolean {
    const carry = this.toa!.carry;
    if (f & TcpFlag.rst) return false;
    if (f & TcpFlag.syn) return !(f & TcpFlag.ack) && carry.syn;
    if (carry.every) return true;
    if (!(f & TcpFlag.ack) || !(this.conns.flags[c]! & ConnFlag.serverIsnSeen)) return false;
    // Compared by 16-bit halves: a 32-bit value returned by a call that V8
    // did not inline is boxed, which would allocate on every packet.
    const isn = this.conns.serverIsnPlus1[c]!;
    const at = info.l4Offset + TcpField.ack;
    if (readU16(buf, at) !== isn >>> 16 || readU16(buf, at + 2) !== (isn & 0xffff)) return false;
    if (f & TcpFlag.fin) return carry.fin;
    const hasData = info.length > info.payloadOffset;
    return hasData ? carry.dataUntilAcked : carry.handshakeAck || carry.dataUntilAcked;
  }

  private toaFormat(c: number): ToaFormat {
    const toa = this.toa!;
    return this.conns.clientFamily[c] === 4 ? toa.v4 : toa.v6!;
  }

  private insertToa(buf: Uint8Array, info: PacketInfo, c: number): void {
    const conns = this.conns;
    const family = conns.clientFamily[c] === 4 ? 4 : 6;
    const n = writeToa(
      this.toaFormat(c),
      this.scratch,
      conns.clientAddr,
      c * 16,
      family,
      conns.clientPort[c]!,
    );
    const r = insertTcpOption(buf, info, this.scratch, 0, n, this.insertPolicy);
    if (r === InsertResult.inserted) {
      this.lastOutcome = CarrierOutcome.inserted;
      this.count(Stat.carriersInserted);
    } else if (r === InsertResult.insertedAfterPruning) {
      this.lastOutcome = CarrierOutcome.insertedAfterPruning;
      this.count(Stat.carriersInserted);
      this.count(Stat.carriersPruned);
    } else {
      this.lastOutcome = CarrierOutcome.failed;
      this.count(Stat.carriersFailed);
    }
  }

  /** PROXY v1/v2 or SPP in front of the payload; once per flow, so it may allocate. */
  private insertPrefix(buf: Uint8Array, info: PacketInfo, c: number, svc: Service): boolean {
    const conns = this.conns;
    const family = conns.clientFamily[c] === 4 ? 4 : 6;
    const client = {
      addr: conns.clientAddr.slice(c * 16, c * 16 + (family === 4 ? 4 : 16)),
      port: conns.clientPort[c]!,
    };
    const vip = { addr: svc.vip, port: svc.vport };
    const kind =
      info.protocol === PROTO_TCP
        ? this.config.profile.tcp?.carrier
        : this.config.profile.udp?.carrier;
    let n = 0;
    if (kind === "proxy-v1") {
      const repr = {
        protocol: family === 4 ? "TCP4" : "TCP6",
        source: client,
        destination: vip,
      } as const;
      n = proxyV1Length(repr);
      encodeProxyV1(repr, this.scratch, 0);
    } else if (kind === "proxy-v2") {
      const repr = {
        command: "proxy",
        transport: info.protocol === PROTO_TCP ? "stream" : "dgram",
        source: client,
        destination: vip,
        tlvs: [],
      } as const;
      n = proxyV2Length(repr);
      encodeProxyV2(repr, this.scratch, 0);
    } else {
      return false;
    }
    return this.prefix(buf, info, c, n);
  }

  private prefix(buf: Uint8Array, info: PacketInfo, c: number, n: number): boolean {
    if (insertPayloadPrefix(buf, info, this.scratch, 0, n, this.config.mtu)) {
      if (info.protocol === PROTO_TCP) this.conns.streamDelta[c] = n;
      this.lastOutcome = CarrierOutcome.inserted;
      this.count(Stat.carriersInserted);
      return true;
    }
    this.lastOutcome = CarrierOutcome.failed;
    this.count(Stat.carriersFailed);
    return false;
  }

  private carryUdp(buf: Uint8Array, info: PacketInfo, c: number, svc: Service): void {
    const u = this.config.profile.udp;
    if (!u) return;
    const conns = this.conns;
    const n = conns.datagrams[c]!;
    const clen = conns.clientFamily[c] === 4 ? 4 : 16;
    const caddr = conns.clientAddr;
    const cport = conns.clientPort[c]!;
    if (u.carrier === "uoa") {
      if (n > u.maxTrail) return;
      // ipo carries a 4-byte address only; the constructor refuses such
      // services, this keeps a v6 client from ever being cut to 4 bytes.
      if (u.mode === "ipo" && clen !== 4) return;
      const mtu = this.config.mtu;
      const ok =
        u.mode === "opp"
          ? insertUoaOpp(buf, info, caddr, c * 16, clen, cport, mtu)
          : insertUoaIpo(buf, info, caddr, c * 16, cport, mtu);
      if (ok) {
        this.lastOutcome = CarrierOutcome.inserted;
        this.count(Stat.carriersInserted);
      } else if (u.mode === "ipo") {
        // DPVS sends the option alone in an empty datagram just before.
        this.extraLength = writeUoaIpoProbe(
          buf,
          info,
          caddr,
          c * 16,
          cport,
          this.extra,
          this.extraInfo,
        );
        this.lastOutcome = CarrierOutcome.inserted;
        this.count(Stat.uoaProbes);
        this.count(Stat.carriersInserted);
      } else {
        this.lastOutcome = CarrierOutcome.failed;
        this.count(Stat.carriersFailed);
      }
    } else if (u.carrier === "spp") {
      const vlen = svc.vip.length === 4 ? 4 : 16;
      writeSppHeader(this.scratch, 0, caddr, c * 16, clen, cport, svc.vip, 0, vlen, svc.vport);
      this.prefix(buf, info, c, SPP_LENGTH);
    } else if (n === 1) {
      this.insertPrefix(buf, info, c, svc);
    }
  }

  // ---- server -> client -------------------------------------------------

  /** An RS -> LIP packet becomes VIP -> client; returns its new length or -1. */
  fromServer(buf: Uint8Array, len: number, now: number): number {
    try {
      return this.serverPacket(buf, len, now);
    } catch (e) {
      if (e instanceof CodecError) return this.drop(Stat.dropMalformed);
      throw e;
    }
  }

  private serverPacket(buf: Uint8Array, len: number, now: number): number {
    this.count(Stat.packetsFromServer);
    this.lastConn = -1;
    this.lastClass = 0;
    this.lastIndex = 0;
    const info = this.info;
    try {
      info.parse(buf, len);
    } catch (e) {
      if (e instanceof CodecError) return this.drop(Stat.dropMalformed);
      throw e;
    }
    if (info.isFragment) return this.drop(Stat.dropFragment);
    const proto = info.protocol;
    if (proto === IpProtocol.icmp || proto === IpProtocol.icmpv6)
      return this.icmpFromServer(buf, info);
    if (proto !== PROTO_TCP && proto !== PROTO_UDP) return this.drop(Stat.dropProtocol);
    const lips = info.family === 4 ? this.lips4 : this.lips6;
    const li = findAddr(lips, buf, info.dstOffset, info.addrLength);
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
    this.lastConn = c;
    if (proto === PROTO_TCP) {
      const f = buf[info.l4Offset + TcpField.flags]!;
      this.lastClass = tcpClass(f, info.length > info.payloadOffset);
      if (f & TcpFlag.syn && f & TcpFlag.ack) {
        conns.serverIsnPlus1[c] = (readU32(buf, info.l4Offset + TcpField.seq) + 1) | 0;
        conns.flags[c] = conns.flags[c]! | ConnFlag.serverIsnSeen;
        if (conns.state[c] === ConnState.synSent) conns.state[c] = ConnState.synReceived;
        if (this.toa?.lowerMss) {
          const family = conns.clientFamily[c] === 4 ? 4 : 6;
          lowerMss(buf, info, toaLength(this.toaFormat(c), family));
        }
      }
      if (f & TcpFlag.rst) {
        conns.state[c] = ConnState.closing;
        conns.expires[c] = now + this.config.timeouts.tcpClose;
      } else {
        if (f & TcpFlag.fin) conns.flags[c] = conns.flags[c]! | ConnFlag.serverFin;
        this.advance(c, now);
      }
      const delta = conns.streamDelta[c]!;
      if (delta !== 0 && f & TcpFlag.ack) shiftSeq(buf, info, TcpField.ack, -delta);
    } else {
      conns.expires[c] = now + this.config.timeouts.udp;
      this.lastClass = PacketClass.udp;
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
    this.count(Stat.packetsToClient);
    this.count(Stat.bytesToClient, info.length);
    return info.length;
  }

  /**
   * An ICMP error about a packet the gateway sent to a server (port
   * unreachable, fragmentation needed, ...): the quoted LIP -> RS packet
   * becomes client -> VIP, the outer header VIP -> client, and a reported
   * MTU is lowered by the TOA the gateway adds. For NAT64 flows the ICMPv4
   * error becomes an ICMPv6 one (RFC 7915 §4.2).
   */
  private icmpFromServer(buf: Uint8Array, info: PacketInfo): number {
    if (!isIcmpError(buf, info)) return this.drop(Stat.dropIcmp);
    const q = info.l4Offset + ICMP_ERROR_HEADER;
    const end = info.length;
    let qProto: number;
    let qSrc: number;
    let qDst: number;
    let qL4: number;
    if (info.family === 4) {
      if (q + 20 > end || buf[q]! >> 4 !== 4) return this.drop(Stat.dropIcmp);
      qProto = buf[q + 9]!;
      qSrc = q + 12;
      qDst = q + 16;
      qL4 = q + (buf[q]! & 0x0f) * 4;
    } else {
      if (q + 40 > end || buf[q]! >> 4 !== 6) return this.drop(Stat.dropIcmp);
      qProto = buf[q + 6]!;
      qSrc = q + 8;
      qDst = q + 24;
      qL4 = q + 40;
    }
    if (qProto === IpProtocol.uoaOpp && qL4 + 4 <= end) {
      // The quote is one of our UOA opp datagrams: its UDP header follows the private one.
      qL4 += readU16(buf, qL4 + 2);
      qProto = PROTO_UDP;
    }
    if ((qProto !== PROTO_TCP && qProto !== PROTO_UDP) || qL4 + 8 > end) {
      return this.drop(Stat.dropIcmp);
    }
    const n = info.addrLength;
    const li = findAddr(info.family === 4 ? this.lips4 : this.lips6, buf, qSrc, n);
    if (li < 0) return this.drop(Stat.dropIcmp);
    const conns = this.conns;
    const c = conns.findByServer(qProto, info.family, li, readU16(buf, qL4));
    if (c < 0) return this.drop(Stat.dropNoConnection);
    if (conns.clientFamily[c] !== info.family) {
      return this.icmp4to6(buf, info, c, qProto, q, qL4);
    }
    this.lastConn = c;
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
    const csAt = qL4 + (qProto === PROTO_TCP ? TcpField.checksum : 6);
    if (csAt + 2 <= end) {
      const old = readU16(buf, csAt);
      if (!(qProto === PROTO_UDP && old === 0)) writeU16(buf, csAt, adjust(old, oldSum, newSum));
    }
    if (info.family === 4) {
      writeU16(buf, q + 10, 0);
      writeU16(buf, q + 10, finish(sumBytes(buf, q, qL4 - q)));
    }
    const mtuAt = icmpMtuOffset(buf, info);
    // Only TCP segments grow by a fixed carrier (the TOA); a UOA rides on a
    // few datagrams only, so UDP errors pass the MTU on unchanged.
    if (mtuAt >= 0 && this.toa && qProto === PROTO_TCP) {
      const family = conns.clientFamily[c] === 4 ? 4 : 6;
      const room = toaLength(this.toaFormat(c), family);
      if (info.family === 4) writeU16(buf, mtuAt, Math.max(68, readU16(buf, mtuAt) - room));
      else writeU32(buf, mtuAt, Math.max(1280, readU32(buf, mtuAt) - room));
    }
    for (let i = 0; i < n; i++) {
      buf[info.srcOffset + i] = svc.vip[i]!;
      buf[info.dstOffset + i] = conns.clientAddr[c * 16 + i]!;
    }
    fillIpv4Checksum(buf, info);
    fillIcmpChecksum(buf, info);
    this.count(Stat.icmpErrorsTranslated);
    this.count(Stat.packetsToClient);
    this.count(Stat.bytesToClient, info.length);
    return info.length;
  }

  /**
   * RFC 7915 §4.2 for the errors a NAT64 client can act on: unreachable
   * (net, host, port, administratively), fragmentation needed (as packet
   * too big, MTU + 20, less the TOA), time exceeded. The quote becomes
   * client -> VIP over IPv6; the packet grows by 40 bytes (two headers).
   */
  private icmp4to6(
    buf: Uint8Array,
    info: PacketInfo,
    c: number,
    qProto: number,
    q: number,
    qL4: number,
  ): number {
    const t = info.l4Offset;
    const type4 = buf[t]!;
    const code4 = buf[t + 1]!;
    let type6: number;
    let code6 = 0;
    let mtu = 0;
    if (type4 === Icmp4.destUnreachable) {
      if (code4 === Icmp4Code.fragmentationNeeded) {
        type6 = Icmp6.packetTooBig;
        const room = this.toa && qProto === PROTO_TCP ? toaLength(this.toaFormat(c), 6) : 0;
        mtu = Math.max(1280, readU16(buf, t + 6) + 20 - room);
      } else if (code4 === 3) {
        type6 = Icmp6.destUnreachable;
        code6 = 4;
      } else if (
        code4 === 0 ||
        code4 === 1 ||
        code4 === 5 ||
        code4 === 6 ||
        code4 === 7 ||
        code4 === 8 ||
        code4 === 11 ||
        code4 === 12
      ) {
        type6 = Icmp6.destUnreachable;
      } else if (code4 === 9 || code4 === 10 || code4 === 13 || code4 === 15) {
        type6 = Icmp6.destUnreachable;
        code6 = 1;
      } else {
        return this.drop(Stat.dropIcmp);
      }
    } else if (type4 === Icmp4.timeExceeded) {
      type6 = Icmp6.timeExceeded;
      code6 = code4;
    } else {
      return this.drop(Stat.dropIcmp);
    }
    const conns = this.conns;
    const svc = this.services[conns.service[c]!]!;
    const out = this.icmpScratch;
    const quoteLen = Math.min(info.length - qL4, out.length - 88);
    const total = 40 + 8 + 40 + quoteLen;
    // Outer IPv6 header: VIP -> client.
    out.fill(0, 0, 88);
    out[0] = 0x60;
    writeU16(out, 4, total - 40);
    out[6] = IpProtocol.icmpv6;
    out[7] = 64;
    out.set(svc.vip, 8);
    for (let i = 0; i < 16; i++) out[24 + i] = conns.clientAddr[c * 16 + i]!;
    // ICMPv6 header.
    out[40] = type6;
    out[41] = code6;
    writeU32(out, 44, mtu);
    // The quoted packet as the client sent it: client -> VIP over IPv6.
    out[48] = 0x60;
    writeU16(out, 52, Math.max(0, readU16(buf, q + 2) - (qL4 - q)));
    out[54] = qProto;
    out[55] = buf[q + 8]!;
    for (let i = 0; i < 16; i++) out[56 + i] = conns.clientAddr[c * 16 + i]!;
    out.set(svc.vip, 72);
    for (let i = 0; i < quoteLen; i++) out[88 + i] = buf[qL4 + i]!;
    const oldSum = sumBytes(buf, q + 12, 8) + readU16(out, 88) + readU16(out, 90);
    writeU16(out, 88, conns.clientPort[c]!);
    writeU16(out, 90, svc.vport);
    const newSum = sumBytes(out, 56, 32) + conns.clientPort[c]! + svc.vport;
    const csAt = 88 + (qProto === PROTO_TCP ? TcpField.checksum : 6);
    if (csAt + 2 <= 88 + quoteLen) {
      const old = readU16(out, csAt);
      const cs = adjust(old, oldSum, newSum);
      // A v4 UDP checksum of 0 (none) is not allowed over IPv6: leave it; the quote is informative.
      if (!(qProto === PROTO_UDP && old === 0)) writeU16(out, csAt, cs);
    }
    if (total > buf.length) return this.drop(Stat.dropTooBig);
    for (let i = 0; i < total; i++) buf[i] = out[i]!;
    info.parse(buf, total);
    fillIcmpChecksum(buf, info);
    this.count(Stat.icmpErrorsTranslated);
    this.count(Stat.packetsToClient);
    this.count(Stat.bytesToClient, total);
    return total;
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
      this.count(Stat.connectionsExpired, removed);
      this.stats[Stat.connectionsActive] = conns.size;
    }
    return removed;
  }

  private close(c: number): void {
    const conns = this.conns;
    const lips = conns.serverFamily[c] === 4 ? this.lips4 : this.lips6;
    this.freePort(lips[conns.lip[c]!]!, conns.proto[c]!, conns.lport[c]!);
    conns.remove(c);
  }
}

/** The classes a TCP segment has by its flags and length alone. */
function tcpClass(flags: number, hasData: boolean): number {
  let c = hasData ? PacketClass.data : 0;
  if (flags & TcpFlag.syn) c |= flags & TcpFlag.ack ? PacketClass.synAck : PacketClass.syn;
  if (flags & TcpFlag.fin) c |= PacketClass.fin;
  if (flags & TcpFlag.rst) c |= PacketClass.rst;
  return c;
}

function findAddr(lips: readonly Lip[], buf: Uint8Array, off: number, len: number): number {
  for (let i = 0; i < lips.length; i++) if (sameBytes(lips[i]!.addr, buf, off, len)) return i;
  return -1;
}

function sameBytes(a: Uint8Array, buf: Uint8Array, off: number, len: number): boolean {
  if (a.length !== len) return false;
  for (let i = 0; i < len; i++) if (a[i] !== buf[off + i]) return false;
  return true;
}

/** Writes the TOA for a client held in the table; no Endpoint object per packet. */
function writeToa(
  f: ToaFormat,
  out: Uint8Array,
  addr: Uint8Array,
  off: number,
  family: 4 | 6,
  port: number,
): number {
  // encodeToa wants an address array of the right length: reuse two views.
  const view = family === 4 ? toaAddr4 : toaAddr16;
  for (let i = 0; i < view.length; i++) view[i] = addr[off + i]!;
  toaRepr.addr = view;
  toaRepr.port = port;
  return encodeToa(f, toaRepr, out, 0);
}
const toaAddr4 = new Uint8Array(4);
const toaAddr16 = new Uint8Array(16);
const toaRepr: { addr: Uint8Array; port: number } = { addr: toaAddr4, port: 0 };

function shiftSeq(buf: Uint8Array, info: PacketInfo, field: number, delta: number): void {
  const at = info.l4Offset + field;
  const old = readU32(buf, at);
  const v = (old + delta) >>> 0;
  writeU32(buf, at, v);
  const c = info.l4Offset + TcpField.checksum;
  const cs = readU16(buf, c);
  const n = adjust(cs, (old >>> 16) + (old & 0xffff), (v >>> 16) + (v & 0xffff));
  buf[c] = n >> 8;
  buf[c + 1] = n & 0xff;
}
