import { type Endpoint, familyOf } from "../option-codec/address.js";
import { readU32, writeU32 } from "../option-codec/bytes.js";
import { adjust } from "../option-codec/checksum.js";
import { IpProtocol } from "../option-codec/ipv4.js";
import { rewriteAddresses, translate4to6, translate6to4 } from "../option-codec/nat.js";
import { PacketInfo } from "../option-codec/packet.js";
import { insertPayloadPrefix } from "../option-codec/payload-surgery.js";
import { encodeProxyV1, proxyV1Length } from "../option-codec/proxy-v1.js";
import { encodeProxyV2, proxyV2Length } from "../option-codec/proxy-v2.js";
import { encodeSpp, SPP_LENGTH } from "../option-codec/spp.js";
import { TcpField, TcpFlag } from "../option-codec/tcp.js";
import { TcpOptionKind } from "../option-codec/tcp-options.js";
import {
  type InsertPolicy,
  InsertResult,
  insertTcpOption,
  lowerMss,
  nopOutTcpOptions,
} from "../option-codec/tcp-surgery.js";
import { encodeToa, type ToaFormat, toaLength } from "../option-codec/toa.js";
import { insertUoaIpo, insertUoaOpp } from "../option-codec/uoa-surgery.js";
import type { Profile, ToaPolicy } from "./profiles.js";

/** The four endpoints of one FULLNAT flow. */
export interface FlowEndpoints {
  readonly client: Endpoint;
  readonly vip: Endpoint;
  /** The gateway's local address and port toward the server (LIP). */
  readonly lip: Endpoint;
  readonly rs: Endpoint;
}

export class FlowError extends Error {
  override readonly name = "FlowError";
  constructor(
    readonly code: "FAMILY_MISMATCH" | "NO_CARRIER" | "UNSUPPORTED",
    message: string,
  ) {
    super(message);
  }
}

/** What happened to the carrier on the last packet sent toward the server. */
export const CarrierOutcome = {
  none: 0,
  inserted: 1,
  insertedAfterPruning: 2,
  /** The packet should have carried it but there was no room. */
  failed: 3,
} as const;
export type CarrierOutcome = (typeof CarrierOutcome)[keyof typeof CarrierOutcome];

const SEQ = 0x100000000;
const TIMESTAMPS: readonly number[] = [TcpOptionKind.timestamps];

/**
 * One connection's translation, both ways: NAT (v4, v6, NAT64), the
 * profile's carrier on the packets it names, MSS lowering, stripping of
 * client-sent TOAs. Packets are edited in place in buffers with room to grow.
 * The gateway's connection table will hold one of these per flow.
 */
export class FlowTranslator {
  readonly protocol: "tcp" | "udp";
  lastOutcome: CarrierOutcome = CarrierOutcome.none;
  /** Server ISN + 1, once the SYN-ACK has been seen. */
  /** Kept as int32 (V8 small integers): a uint32 above 2^30 would be boxed per packet. */
  private serverIsnPlus1 = 0;
  private serverIsnSeen = false;
  private datagrams = 0;
  /** Bytes inserted into the TCP stream (PROXY headers): seq/ack offset. */
  private streamDelta = 0;
  private prefixSent = false;
  private readonly info = new PacketInfo();
  private readonly scratch = new Uint8Array(256);
  private readonly toaFormat: ToaFormat | null;
  private readonly toaLen: number;
  private readonly prefix: Uint8Array | null;
  private readonly nat64: boolean;
  /** Kinds a client might forge, and the insert policy: built once, not per packet. */
  private readonly staleKinds: readonly number[];
  private readonly insertPolicy: InsertPolicy;

  constructor(
    readonly profile: Profile,
    protocol: "tcp" | "udp",
    readonly ep: FlowEndpoints,
    readonly mtu = 1500,
  ) {
    this.protocol = protocol;
    const cf = familyOf(ep.client.addr);
    if (familyOf(ep.vip.addr) !== cf) {
      throw new FlowError("FAMILY_MISMATCH", "the client and the VIP must be of the same family");
    }
    if (familyOf(ep.lip.addr) !== familyOf(ep.rs.addr)) {
      throw new FlowError(
        "FAMILY_MISMATCH",
        "the LIP and the real server must be of the same family",
      );
    }
    const rf = familyOf(ep.rs.addr);
    if (cf === 4 && rf === 6)
      throw new FlowError(
        "UNSUPPORTED",
        "an IPv4 client to an IPv6 server (NAT46) is not supported",
      );
    this.nat64 = cf === 6 && rf === 4;
    const policy = protocol === "tcp" ? profile.tcp : profile.udp;
    if (!policy)
      throw new FlowError(
        "NO_CARRIER",
        `profile ${profile.name} has no ${protocol.toUpperCase()} carrier`,
      );
    this.toaFormat = null;
    this.toaLen = 0;
    this.prefix = null;
    if (protocol === "tcp" && profile.tcp?.carrier === "toa") {
      const f = cf === 4 ? profile.tcp.v4 : profile.tcp.v6;
      if (!f)
        throw new FlowError("NO_CARRIER", `profile ${profile.name} has no TOA for IPv6 clients`);
      this.toaFormat = f;
      this.toaLen = encodeToa(f, { addr: ep.client.addr, port: ep.client.port }, this.scratch, 0);
    }
    if (
      profile.udp?.carrier === "uoa" &&
      protocol === "udp" &&
      profile.udp.mode === "ipo" &&
      (cf !== 4 || rf !== 4)
    ) {
      throw new FlowError("UNSUPPORTED", "UOA ipo mode is IPv4 only on both sides; use --uoa opp");
    }
    const toa = this.toaPolicy;
    const kinds = toa ? [toa.v4.kind] : [];
    if (toa?.v6 && toa.v6.kind !== toa.v4.kind) kinds.push(toa.v6.kind);
    this.staleKinds = kinds;
    this.insertPolicy = { mtu, prune: toa?.prune ?? false, staleKinds: kinds };
    const kind = policy.carrier;
    if (kind === "proxy-v1" || kind === "proxy-v2" || kind === "spp")
      this.prefix = this.buildPrefix(kind);
  }

  private buildPrefix(kind: "proxy-v1" | "proxy-v2" | "spp"): Uint8Array {
    const { client, vip } = this.ep;
    if (kind === "spp") {
      const out = new Uint8Array(SPP_LENGTH);
      encodeSpp({ client, proxy: vip }, out, 0);
      return out;
    }
    if (kind === "proxy-v1") {
      const repr = {
        protocol: client.addr.length === 4 ? "TCP4" : "TCP6",
        source: client,
        destination: vip,
      } as const;
      const out = new Uint8Array(proxyV1Length(repr));
      encodeProxyV1(repr, out, 0);
      return out;
    }
    const repr = {
      command: "proxy",
      transport: this.protocol === "tcp" ? "stream" : "dgram",
      source: client,
      destination: vip,
      tlvs: [],
    } as const;
    const out = new Uint8Array(proxyV2Length(repr));
    encodeProxyV2(repr, out, 0);
    return out;
  }

  private get toaPolicy(): ToaPolicy | null {
    return this.profile.tcp?.carrier === "toa" ? this.profile.tcp : null;
  }

  /** Client -> VIP packet in `buf[0..len)` becomes LIP -> RS; returns the new length, -1 to drop. */
  toServer(buf: Uint8Array, len: number): number {
    const info = this.info.parse(buf, len);
    this.lastOutcome = CarrierOutcome.none;
    const { lip, rs } = this.ep;
    const toa = this.toaPolicy;
    const isTcp = info.protocol === IpProtocol.tcp;
    if (isTcp && toa && this.toaFormat) {
      // A client must never be able to choose the address the server sees.
      nopOutTcpOptions(buf, info, this.staleKinds);
      if (toa.synTimestampsToNops && this.flags(buf) & TcpFlag.syn) {
        nopOutTcpOptions(buf, info, TIMESTAMPS);
      }
    }
    if (this.nat64 && !translate6to4(buf, info, lip.addr, 0, rs.addr, 0)) return -1;
    rewriteAddresses(buf, info, lip.addr, 0, lip.port, rs.addr, 0, rs.port);
    if (isTcp) {
      if (this.streamDelta) this.shiftSeq(buf, info, TcpField.seq, this.streamDelta);
      if (toa && this.shouldCarryToa(buf, info)) this.insertToa(buf, info);
      else if (this.prefix && !this.prefixSent && info.length > info.payloadOffset) {
        this.insertPrefix(buf, info);
        this.prefixSent = true;
        this.streamDelta = this.prefix.length;
      }
    } else if (info.protocol === IpProtocol.udp) {
      this.datagrams++;
      this.carryUdp(buf, info);
    }
    return info.length;
  }

  /** RS -> LIP packet becomes VIP -> client; returns the new length. */
  toClient(buf: Uint8Array, len: number): number {
    const info = this.info.parse(buf, len);
    const { client, vip } = this.ep;
    if (info.protocol === IpProtocol.tcp) {
      const f = this.flags(buf);
      if (f & TcpFlag.syn && f & TcpFlag.ack) {
        this.serverIsnPlus1 = (readU32(buf, info.l4Offset + TcpField.seq) + 1) | 0;
        this.serverIsnSeen = true;
        const toa = this.toaPolicy;
        if (toa?.lowerMss && this.toaLen) lowerMss(buf, info, this.toaLen);
      }
      if (this.streamDelta && f & TcpFlag.ack)
        this.shiftSeq(buf, info, TcpField.ack, -this.streamDelta);
    }
    if (this.nat64) {
      if (!translate4to6(buf, info, vip.addr, 0, client.addr, 0)) return -1;
    }
    rewriteAddresses(buf, info, vip.addr, 0, vip.port, client.addr, 0, client.port);
    return info.length;
  }

  private flags(buf: Uint8Array): number {
    return buf[this.info.l4Offset + TcpField.flags]!;
  }

  private shouldCarryToa(buf: Uint8Array, info: PacketInfo): boolean {
    const c = this.toaPolicy!.carry;
    const f = this.flags(buf);
    if (f & TcpFlag.rst) return false;
    if (f & TcpFlag.syn) return !(f & TcpFlag.ack) && c.syn;
    if (c.every) return true;
    if (!(f & TcpFlag.ack) || !this.serverIsnSeen) return false;
    if ((readU32(buf, info.l4Offset + TcpField.ack) | 0) !== this.serverIsnPlus1) return false;
    if (f & TcpFlag.fin) return c.fin;
    const hasData = info.length > info.payloadOffset;
    return hasData ? c.dataUntilAcked : c.handshakeAck || c.dataUntilAcked;
  }

  private insertToa(buf: Uint8Array, info: PacketInfo): void {
    const r = insertTcpOption(buf, info, this.scratch, 0, this.toaLen, this.insertPolicy);
    this.lastOutcome =
      r === InsertResult.inserted
        ? CarrierOutcome.inserted
        : r === InsertResult.insertedAfterPruning
          ? CarrierOutcome.insertedAfterPruning
          : CarrierOutcome.failed;
  }

  private insertPrefix(buf: Uint8Array, info: PacketInfo): void {
    const p = this.prefix!;
    this.lastOutcome = insertPayloadPrefix(buf, info, p, 0, p.length, this.mtu)
      ? CarrierOutcome.inserted
      : CarrierOutcome.failed;
  }

  private carryUdp(buf: Uint8Array, info: PacketInfo): void {
    const u = this.profile.udp;
    if (!u) return;
    if (u.carrier === "uoa") {
      if (this.datagrams > u.maxTrail) return;
      const { addr, port } = this.ep.client;
      const ok =
        u.mode === "opp"
          ? insertUoaOpp(buf, info, addr, 0, addr.length === 4 ? 4 : 16, port, this.mtu)
          : insertUoaIpo(buf, info, addr, 0, port, this.mtu);
      this.lastOutcome = ok ? CarrierOutcome.inserted : CarrierOutcome.failed;
    } else if (u.carrier === "spp" || this.datagrams === 1) {
      this.insertPrefix(buf, info);
    }
  }

  private shiftSeq(buf: Uint8Array, info: PacketInfo, field: number, delta: number): void {
    const at = info.l4Offset + field;
    const old = readU32(buf, at);
    const v = (old + delta + SEQ) % SEQ;
    writeU32(buf, at, v);
    const c = info.l4Offset + TcpField.checksum;
    const cs = (buf[c]! << 8) | buf[c + 1]!;
    const n = adjust(cs, (old >>> 16) + (old & 0xffff), (v >>> 16) + (v & 0xffff));
    buf[c] = n >> 8;
    buf[c + 1] = n & 0xff;
  }

  /** Length of the TOA this flow inserts (0 without TOA). */
  get toaLength(): number {
    return this.toaFormat ? toaLength(this.toaFormat, familyOf(this.ep.client.addr)) : 0;
  }
}
