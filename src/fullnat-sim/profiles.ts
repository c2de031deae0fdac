import { type ToaFormat, ToaLayout } from "../option-codec/toa.js";
import { UOA_DEFAULT_MAX_TRAIL } from "../option-codec/uoa.js";

/**
 * What each gateway sends to the server, from docs/dialects.md. A profile says
 * which carrier holds the client address and on which packets; values that
 * docs/dialects.md marks unconfirmed can be overridden by settings (see
 * applySettings), never only by editing this table.
 */

/** Which client-to-server TCP packets carry the TOA. */
export interface ToaCarry {
  /** The client's SYN. */
  readonly syn: boolean;
  /** The handshake-completing ACK (no payload, ack = server ISN + 1). */
  readonly handshakeAck: boolean;
  /** Data segments while ack = server ISN + 1 (DPVS: until the client acks server data). */
  readonly dataUntilAcked: boolean;
  /** FIN segments while ack = server ISN + 1. */
  readonly fin: boolean;
  /** Every non-RST packet, whatever its ack (for misbehaving gateways). */
  readonly every: boolean;
}

export interface ToaPolicy {
  readonly carrier: "toa";
  readonly v4: ToaFormat;
  /** Format for IPv6 clients (v6->v6 and NAT64), or null if the gateway has none. */
  readonly v6: ToaFormat | null;
  readonly carry: ToaCarry;
  /** Lower the MSS in the server's SYN-ACK by the TOA length. */
  readonly lowerMss: boolean;
  /** Replace timestamps in the client's SYN by NOPs (DPVS). */
  readonly synTimestampsToNops: boolean;
  /** DPVS pruning when the option does not fit; otherwise count a failure. */
  readonly prune: boolean;
  /** Pass TOAs the client put in its own packets (a gateway bug: every gateway strips them). */
  readonly keepClientToa?: boolean;
}

export interface ProxyPolicy {
  readonly carrier: "proxy-v1" | "proxy-v2";
}

export type TcpPolicy = ToaPolicy | ProxyPolicy;

export type UoaMode = "opp" | "ipo";

export interface UoaPolicy {
  readonly carrier: "uoa";
  readonly mode: UoaMode;
  /** The first N datagrams of a flow carry the option; 0 disables. */
  readonly maxTrail: number;
}

export interface SppPolicy {
  readonly carrier: "spp";
}

export interface ProxyV2UdpPolicy {
  readonly carrier: "proxy-v2";
}

export type UdpPolicy = UoaPolicy | SppPolicy | ProxyV2UdpPolicy;

export interface Profile {
  readonly name: ProfileName;
  readonly summary: string;
  readonly tcp: TcpPolicy | null;
  readonly udp: UdpPolicy | null;
}

const handshakeAckOnly: ToaCarry = {
  syn: false,
  handshakeAck: true,
  dataUntilAcked: false,
  fin: false,
  every: false,
};
const portAddr = (kind: number): ToaFormat => ({ kind, layout: ToaLayout.portAddr });
const dpvsUdp: UoaPolicy = { carrier: "uoa", mode: "opp", maxTrail: UOA_DEFAULT_MAX_TRAIL };

export const PROFILE_NAMES = [
  "dpvs",
  "lvs",
  "tencent",
  "ksyun-ttm",
  "noa",
  "bytedance",
  "aliyun-cdn",
  "ucloud",
  "custom",
  "proxy-v1",
  "proxy-v2",
  "spp",
] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

export const PROFILES: { readonly [N in ProfileName]: Profile & { readonly name: N } } = {
  dpvs: {
    name: "dpvs",
    summary:
      "iQIYI DPVS (and Huawei ELB 2.x): kind 254 until the client acks server data, FIN included",
    tcp: {
      carrier: "toa",
      v4: portAddr(254),
      v6: portAddr(254),
      carry: { syn: false, handshakeAck: true, dataUntilAcked: true, fin: true, every: false },
      lowerMss: true,
      synTimestampsToNops: true,
      prune: true,
    },
    udp: dpvsUdp,
  },
  lvs: {
    name: "lvs",
    summary:
      "Alibaba LVS FULLNAT: 254 (v4) / 253 (v6) on the SYN and while ack = server ISN + 1, not FIN",
    tcp: {
      carrier: "toa",
      v4: portAddr(254),
      v6: portAddr(253),
      carry: { syn: true, handshakeAck: true, dataUntilAcked: true, fin: false, every: false },
      lowerMss: true,
      synTimestampsToNops: false,
      prune: false,
    },
    udp: null,
  },
  tencent: {
    name: "tencent",
    summary:
      "Tencent CLB / Anti-DDoS / EdgeOne L4: kind 200 (v4) / 253 (v6) on the handshake ACK (kinds unconfirmed)",
    tcp: {
      carrier: "toa",
      v4: portAddr(200),
      v6: portAddr(253),
      carry: handshakeAckOnly,
      lowerMss: true,
      synTimestampsToNops: false,
      prune: false,
    },
    udp: null,
  },
  "ksyun-ttm": {
    name: "ksyun-ttm",
    summary:
      "Kingsoft kgwttm: struct ttm_peer on the handshake ACK (kind and af byte order unconfirmed)",
    tcp: {
      carrier: "toa",
      v4: { kind: 254, layout: ToaLayout.ttm, afOrder: "host" },
      v6: { kind: 254, layout: ToaLayout.ttm, afOrder: "host" },
      carry: handshakeAckOnly,
      lowerMss: true,
      synTimestampsToNops: false,
      prune: false,
    },
    udp: null,
  },
  noa: {
    name: "noa",
    summary: "gateway read by libnoa: wire format unconfirmed, DPVS layout on the handshake ACK",
    tcp: {
      carrier: "toa",
      v4: portAddr(254),
      v6: portAddr(254),
      carry: handshakeAckOnly,
      lowerMss: true,
      synTimestampsToNops: false,
      prune: false,
    },
    udp: dpvsUdp,
  },
  bytedance: {
    name: "bytedance",
    summary:
      "ByteDance: kind 254, 8 bytes (v4) or 20 (v6) on the handshake ACK; --toa-layout port-addr-vaddr for the 16-byte form",
    tcp: {
      carrier: "toa",
      v4: portAddr(254),
      v6: portAddr(254),
      carry: handshakeAckOnly,
      lowerMss: true,
      synTimestampsToNops: false,
      prune: false,
    },
    udp: null,
  },
  "aliyun-cdn": {
    name: "aliyun-cdn",
    summary: "Aliyun CDN: kind 28, version + address, no port, on the SYN only",
    tcp: {
      carrier: "toa",
      v4: { kind: 28, layout: ToaLayout.versionAddr },
      v6: { kind: 28, layout: ToaLayout.versionAddr },
      carry: { syn: true, handshakeAck: false, dataUntilAcked: false, fin: false, every: false },
      lowerMss: false,
      synTimestampsToNops: false,
      prune: false,
    },
    udp: null,
  },
  ucloud: {
    name: "ucloud",
    summary:
      "UCloud: kind 200 (or 254/253 by --toa-kind), 8 bytes, IPv4 clients only, on the handshake ACK",
    tcp: {
      carrier: "toa",
      v4: portAddr(200),
      v6: null,
      carry: handshakeAckOnly,
      lowerMss: true,
      synTimestampsToNops: false,
      prune: false,
    },
    udp: null,
  },
  custom: {
    name: "custom",
    summary:
      "any kind, layout and set of packets from settings, to reproduce a misbehaving gateway",
    tcp: {
      carrier: "toa",
      v4: portAddr(254),
      v6: portAddr(254),
      carry: handshakeAckOnly,
      lowerMss: true,
      synTimestampsToNops: false,
      prune: false,
    },
    udp: dpvsUdp,
  },
  "proxy-v1": {
    name: "proxy-v1",
    summary: "PROXY protocol v1 text line in front of the first client payload (TCP)",
    tcp: { carrier: "proxy-v1" },
    udp: null,
  },
  "proxy-v2": {
    name: "proxy-v2",
    summary:
      "PROXY protocol v2 header in front of the first client payload (TCP) or first datagram (UDP)",
    tcp: { carrier: "proxy-v2" },
    udp: { carrier: "proxy-v2" },
  },
  spp: {
    name: "spp",
    summary: "Tencent EdgeOne / Cloudflare Spectrum SPP header in front of every UDP datagram",
    tcp: null,
    udp: { carrier: "spp" },
  },
};

export function isProfileName(s: string): s is ProfileName {
  return (PROFILE_NAMES as readonly string[]).includes(s);
}

/** Overrides for the unconfirmed parts and for `custom`. */
export interface ProfileSettings {
  readonly toaKind?: number;
  readonly toaKindV6?: number;
  readonly toaLayout?: ToaFormat["layout"];
  readonly afOrder?: "host" | "network";
  readonly carry?: readonly (keyof ToaCarry)[];
  readonly uoaMode?: UoaMode;
  readonly maxTrail?: number;
  /** Gateway behaviours a bug report may need switched off. */
  readonly lowerMss?: boolean;
  readonly prune?: boolean;
  readonly keepClientToa?: boolean;
}

export class ProfileError extends Error {
  override readonly name = "ProfileError";
  constructor(
    readonly code: "BAD_SETTING" | "NO_CARRIER",
    message: string,
  ) {
    super(message);
  }
}

export function resolveProfile(name: ProfileName, s: ProfileSettings = {}): Profile {
  const base: Profile = PROFILES[name];
  let tcp = base.tcp;
  if (tcp && tcp.carrier === "toa") {
    const withSettings = (f: ToaFormat, kind: number | undefined): ToaFormat => ({
      kind: kind ?? f.kind,
      layout: s.toaLayout ?? f.layout,
      ...((s.afOrder ?? f.afOrder) ? { afOrder: s.afOrder ?? f.afOrder ?? "host" } : {}),
    });
    const carry = s.carry
      ? {
          syn: s.carry.includes("syn"),
          handshakeAck: s.carry.includes("handshakeAck"),
          dataUntilAcked: s.carry.includes("dataUntilAcked"),
          fin: s.carry.includes("fin"),
          every: s.carry.includes("every"),
        }
      : tcp.carry;
    tcp = {
      ...tcp,
      v4: withSettings(tcp.v4, s.toaKind),
      v6: tcp.v6 ? withSettings(tcp.v6, s.toaKindV6 ?? s.toaKind) : null,
      carry,
      lowerMss: s.lowerMss ?? tcp.lowerMss,
      prune: s.prune ?? tcp.prune,
      ...(s.keepClientToa !== undefined ? { keepClientToa: s.keepClientToa } : {}),
    };
  } else if (
    s.toaKind !== undefined ||
    s.toaLayout !== undefined ||
    s.carry !== undefined ||
    s.lowerMss !== undefined ||
    s.prune !== undefined ||
    s.keepClientToa !== undefined
  ) {
    throw new ProfileError(
      "BAD_SETTING",
      `profile ${name} carries no TOA, so TOA settings do not apply`,
    );
  }
  let udp = base.udp;
  if (udp && udp.carrier === "uoa") {
    udp = { ...udp, mode: s.uoaMode ?? udp.mode, maxTrail: s.maxTrail ?? udp.maxTrail };
  } else if (s.uoaMode !== undefined || s.maxTrail !== undefined) {
    throw new ProfileError(
      "BAD_SETTING",
      `profile ${name} has no UOA, so UOA settings do not apply`,
    );
  }
  return { ...base, tcp, udp };
}
