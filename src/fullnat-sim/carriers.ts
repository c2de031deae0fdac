import { IpProtocol } from "../option-codec/ipv4.js";
import { PacketInfo } from "../option-codec/packet.js";
import { insertPayloadPrefix } from "../option-codec/payload-surgery.js";
import { encodeProxyV1, proxyV1Length } from "../option-codec/proxy-v1.js";
import { encodeProxyV2, proxyV2Length } from "../option-codec/proxy-v2.js";
import { SPP_LENGTH, writeSppHeader } from "../option-codec/spp.js";
import { TcpFlag } from "../option-codec/tcp.js";
import { TcpOptionKind } from "../option-codec/tcp-options.js";
import {
  type InsertPolicy,
  InsertResult,
  insertTcpOption,
  nopOutTcpOptions,
} from "../option-codec/tcp-surgery.js";
import { encodeToa, type ToaFormat, toaLength } from "../option-codec/toa.js";
import { insertUoaIpo, insertUoaOpp, writeUoaIpoProbe } from "../option-codec/uoa-surgery.js";
import type { GatewayConfig } from "./config.js";
import { ConnFlag, type ConnTable } from "./conn-table.js";
import type { ToaPolicy } from "./profiles.js";
import type { Service } from "./services.js";
import { bump, Stat } from "./stats.js";
import { acksServerSyn } from "./tcp-state.js";
import { CarrierOutcome } from "./verdict.js";

const TIMESTAMPS: readonly number[] = [TcpOptionKind.timestamps];

/**
 * What the gateway adds to carry the client's address, as the profile
 * says: a TOA on the TCP segments of the precise rule (docs/dialects.md),
 * a PROXY or SPP prefix on the first data, a UOA on the first datagrams
 * (or a probe datagram before one it does not fit). Each call returns what
 * happened to the carrier and counts it.
 */
export class Carriers {
  readonly toa: ToaPolicy | null;
  /** A packet to send toward the server before the one just returned (UOA ipo probe). */
  readonly extra = new Uint8Array(128);
  extraLength = 0;
  private readonly extraInfo = new PacketInfo();
  private readonly scratch = new Uint8Array(512);
  /** Its mtu is the largest packet toward the server: the path's, or a super-packet's (setLimit). */
  private readonly insertPolicy: { -readonly [K in keyof InsertPolicy]: InsertPolicy[K] };
  /** TOA kinds a client must not send: the profile's own. */
  private readonly clientKinds: readonly number[];

  constructor(
    private readonly config: GatewayConfig,
    private readonly conns: ConnTable,
    private readonly stats: Float64Array,
  ) {
    const p = config.profile;
    this.toa = p.tcp?.carrier === "toa" ? p.tcp : null;
    const kinds: number[] = [];
    if (this.toa) {
      kinds.push(this.toa.v4.kind);
      if (this.toa.v6 && this.toa.v6.kind !== this.toa.v4.kind) kinds.push(this.toa.v6.kind);
    }
    this.clientKinds = kinds;
    this.insertPolicy = { mtu: config.mtu, prune: this.toa?.prune ?? false, staleKinds: kinds };
  }

  /**
   * The largest packet a carrier may make toward the server: the path MTU,
   * or for a TCP super-packet (TUN offloads) the IP length field's limit,
   * its wire segments being cut to the MTU after.
   */
  setLimit(bytes: number): void {
    this.insertPolicy.mtu = bytes;
  }

  /** A client's own segment, before NAT: its TOAs stripped, SYN timestamps removed, as the profile says. */
  cleanClientSegment(buf: Uint8Array, info: PacketInfo, flags: number): void {
    const toa = this.toa;
    if (toa === null) return;
    // A client must never choose the address the server sees.
    if (!toa.keepClientToa)
      bump(this.stats, Stat.clientToaStripped, nopOutTcpOptions(buf, info, this.clientKinds));
    if (toa.synTimestampsToNops && flags & TcpFlag.syn) nopOutTcpOptions(buf, info, TIMESTAMPS);
  }

  /** The bytes connection c's TOA takes in a segment (0 without a TOA). */
  toaRoom(c: number): number {
    return this.toa === null ? 0 : toaLength(this.toaFormat(c), this.clientFamily(c));
  }

  /** A TCP segment toward the server, after NAT: a TOA, or a PROXY prefix on the first data. */
  tcp(buf: Uint8Array, info: PacketInfo, c: number, flags: number, svc: Service): CarrierOutcome {
    if (this.toa !== null) {
      return this.carriesToa(buf, info, c, flags)
        ? this.insertToa(buf, info, c)
        : CarrierOutcome.none;
    }
    const conns = this.conns;
    if (conns.flags[c]! & ConnFlag.prefixSent || info.length <= info.payloadOffset)
      return CarrierOutcome.none;
    const o = this.proxyPrefix(buf, info, c, svc);
    if (o === CarrierOutcome.inserted) conns.flags[c] = conns.flags[c]! | ConnFlag.prefixSent;
    return o;
  }

  /** A datagram toward the server, after NAT: a UOA on the first ones, SPP on each, PROXY on the first. */
  udp(buf: Uint8Array, info: PacketInfo, c: number, svc: Service): CarrierOutcome {
    const u = this.config.profile.udp;
    if (!u) return CarrierOutcome.none;
    const conns = this.conns;
    const n = conns.datagrams[c]!;
    const clen = this.clientFamily(c) === 4 ? 4 : 16;
    const caddr = conns.clientAddr;
    const cport = conns.clientPort[c]!;
    if (u.carrier === "spp") {
      const vlen = svc.vip.length === 4 ? 4 : 16;
      writeSppHeader(this.scratch, 0, caddr, c * 16, clen, cport, svc.vip, 0, vlen, svc.vport);
      return this.prefix(buf, info, c, SPP_LENGTH);
    }
    if (u.carrier !== "uoa")
      return n === 1 ? this.proxyPrefix(buf, info, c, svc) : CarrierOutcome.none;
    if (n > u.maxTrail) return CarrierOutcome.none;
    // ipo carries a 4-byte address only; the services refuse such flows,
    // this keeps a v6 client from ever being cut to 4 bytes.
    if (u.mode === "ipo" && clen !== 4) return CarrierOutcome.none;
    const mtu = this.config.mtu;
    const ok =
      u.mode === "opp"
        ? insertUoaOpp(buf, info, caddr, c * 16, clen, cport, mtu)
        : insertUoaIpo(buf, info, caddr, c * 16, cport, mtu);
    if (ok) return this.counted(CarrierOutcome.inserted);
    if (u.mode === "opp") return this.counted(CarrierOutcome.failed);
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
    bump(this.stats, Stat.uoaProbes);
    return this.counted(CarrierOutcome.inserted);
  }

  /** The precise rule (docs/dialects.md): does this segment carry the TOA? */
  private carriesToa(buf: Uint8Array, info: PacketInfo, c: number, f: number): boolean {
    const carry = this.toa!.carry;
    if (f & TcpFlag.rst) return false;
    if (f & TcpFlag.syn) return !(f & TcpFlag.ack) && carry.syn;
    if (carry.every) return true;
    if (!(f & TcpFlag.ack) || !(this.conns.flags[c]! & ConnFlag.serverIsnSeen)) return false;
    if (!acksServerSyn(this.conns, c, buf, info)) return false;
    if (f & TcpFlag.fin) return carry.fin;
    const hasData = info.length > info.payloadOffset;
    return hasData ? carry.dataUntilAcked : carry.handshakeAck || carry.dataUntilAcked;
  }

  private clientFamily(c: number): 4 | 6 {
    return this.conns.clientFamily[c] === 4 ? 4 : 6;
  }

  private toaFormat(c: number): ToaFormat {
    const toa = this.toa!;
    return this.clientFamily(c) === 4 ? toa.v4 : toa.v6!;
  }

  private insertToa(buf: Uint8Array, info: PacketInfo, c: number): CarrierOutcome {
    const conns = this.conns;
    const n = writeToa(
      this.toaFormat(c),
      this.scratch,
      conns.clientAddr,
      c * 16,
      this.clientFamily(c),
      conns.clientPort[c]!,
    );
    const r = insertTcpOption(buf, info, this.scratch, 0, n, this.insertPolicy);
    if (r === InsertResult.inserted) return this.counted(CarrierOutcome.inserted);
    if (r === InsertResult.insertedAfterPruning) {
      bump(this.stats, Stat.carriersPruned);
      return this.counted(CarrierOutcome.insertedAfterPruning);
    }
    return this.counted(CarrierOutcome.failed);
  }

  /** PROXY v1/v2 in front of the payload; once per flow, so it may allocate. */
  private proxyPrefix(buf: Uint8Array, info: PacketInfo, c: number, svc: Service): CarrierOutcome {
    const conns = this.conns;
    const family = this.clientFamily(c);
    const client = {
      addr: conns.clientAddr.slice(c * 16, c * 16 + (family === 4 ? 4 : 16)),
      port: conns.clientPort[c]!,
    };
    const vip = { addr: svc.vip, port: svc.vport };
    const tcp = info.protocol === IpProtocol.tcp;
    const kind = tcp ? this.config.profile.tcp?.carrier : this.config.profile.udp?.carrier;
    let n: number;
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
        transport: tcp ? "stream" : "dgram",
        source: client,
        destination: vip,
        tlvs: [],
      } as const;
      n = proxyV2Length(repr);
      encodeProxyV2(repr, this.scratch, 0);
    } else {
      return CarrierOutcome.none;
    }
    return this.prefix(buf, info, c, n);
  }

  /** The `n` bytes in scratch in front of the payload; a TCP stream's later sequence numbers shift by n. */
  private prefix(buf: Uint8Array, info: PacketInfo, c: number, n: number): CarrierOutcome {
    if (!insertPayloadPrefix(buf, info, this.scratch, 0, n, this.insertPolicy.mtu))
      return this.counted(CarrierOutcome.failed);
    if (info.protocol === IpProtocol.tcp) this.conns.streamDelta[c] = n;
    return this.counted(CarrierOutcome.inserted);
  }

  private counted(o: CarrierOutcome): CarrierOutcome {
    bump(this.stats, o === CarrierOutcome.failed ? Stat.carriersFailed : Stat.carriersInserted);
    return o;
  }
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
