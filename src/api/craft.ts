import { craftExchange } from "../craft/exchange.js";
import { FlowRefusal, unsupportedFlow } from "../fullnat-sim/flow-support.js";
import { CarrierOutcome } from "../fullnat-sim/gateway.js";
import type { ProfileName } from "../fullnat-sim/profiles.js";
import { type Endpoint, familyOf, formatEndpoint, parseEndpoint } from "../option-codec/address.js";
import { CodecError } from "../option-codec/errors.js";
import { ToaLayout } from "../option-codec/toa.js";
import { ADDRESS_PLAN, LIPS } from "../runtime/defaults.js";
import { PcapWriter } from "../tun/pcap-writer.js";
import { badOption, ToasimError, ToasimErrorCode } from "./errors.js";
import { type GatewaySettings, profileOf } from "./options.js";

const A = ADDRESS_PLAN;

/** The address plan of a running instance, with ports. */
export const CRAFT_DEFAULTS = {
  client4: `${A.client4}:40000`,
  vip4: `${A.vip4}:80`,
  vip6: `[${A.vip6}]:80`,
  rs4: `${A.rs4}:8080`,
  rs6: `[${A.rs6}]:8080`,
  lip4: `${LIPS[4][0]}:5000`,
  lip6: `[${LIPS[6][0]}]:5000`,
} as const;

export interface CraftOptions {
  readonly profile?: ProfileName;
  readonly settings?: GatewaySettings;
  readonly proto?: "tcp" | "udp";
  /** `198.51.100.7:40000` (the default) or `[2001:db8:c::7]:40000`. */
  readonly client?: string;
  /** Default: 203.0.113.10:80, or [2001:db8:f::10]:80 for an IPv6 client. */
  readonly vip?: string;
  /** Default: 192.0.2.10:8080, or [2001:db8:5::10]:8080 for an IPv6 client; a v4 server behind a v6 client is NAT64. */
  readonly rs?: string;
  /** The gateway's local address and port toward the server. */
  readonly lip?: string;
  /** Path MTU toward the server (default 1500). */
  readonly mtu?: number;
  /** UDP: datagrams the client sends (default 4). */
  readonly datagrams?: number;
}

export type CarrierMark = "carrier" | "carrier (options pruned)" | "carrier FAILED (no room)" | "";

export interface CraftedPacketInfo {
  /** Which side of the gateway the packet was on. */
  readonly side: "client" | "server";
  readonly direction: "to-server" | "to-client";
  /** What it is in the exchange: "SYN", "handshake ACK", "request"... */
  readonly note: string;
  readonly bytes: Uint8Array;
  readonly timeUs: number;
  /** Toward the server: whether the gateway put its carrier in it. */
  readonly carrier: CarrierMark;
}

export interface CraftResult {
  readonly profile: string;
  readonly proto: "tcp" | "udp";
  readonly client: string;
  readonly vip: string;
  readonly rs: string;
  readonly lip: string;
  /** Both sides, in time order. */
  readonly packets: readonly CraftedPacketInfo[];
}

function endpointOf(text: string, option: string): Endpoint {
  try {
    return parseEndpoint(text);
  } catch (e) {
    if (e instanceof CodecError)
      badOption(option, `"${text}" is not ADDR:PORT or [V6ADDR]:PORT`, e);
    throw e;
  }
}

function whole(v: unknown, option: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max)
    badOption(option, `${JSON.stringify(v)} is not a whole number from ${min} to ${max}`);
  return n;
}

/** The option to blame for a flow the profile cannot carry. */
const OPTION_FOR: Readonly<Record<FlowRefusal, (proto: string) => string>> = {
  [FlowRefusal.noCarrier]: (proto) => (proto === "udp" ? "proto" : "profile"),
  [FlowRefusal.ipoNotV4]: () => "settings.uoa",
  [FlowRefusal.noToaV6]: () => "profile",
  [FlowRefusal.nat46]: () => "rs",
};

const MARKS: { readonly [K in CarrierOutcome]?: CarrierMark } = {
  [CarrierOutcome.inserted]: "carrier",
  [CarrierOutcome.insertedAfterPruning]: "carrier (options pruned)",
  [CarrierOutcome.failed]: "carrier FAILED (no room)",
};

/**
 * One complete exchange as the gateway delivers it (TCP: handshake,
 * request, response, close; UDP: datagrams each way), without root and
 * without a network: what `toasim craft` writes to a pcap.
 */
export function craft(o: CraftOptions = {}): CraftResult {
  const profile = profileOf(o.profile ?? "dpvs", o.settings);
  const proto = o.proto ?? "tcp";
  if (proto !== "tcp" && proto !== "udp")
    badOption("proto", `${JSON.stringify(proto)} is not tcp or udp`);
  const mtu = whole(o.mtu, "mtu", 576, 65535, 1500);
  const datagrams = whole(o.datagrams, "datagrams", 1, 1000, 4);
  const D = CRAFT_DEFAULTS;
  const client = endpointOf(o.client ?? D.client4, "client");
  const v6 = familyOf(client.addr) === 6;
  const vip = endpointOf(o.vip ?? (v6 ? D.vip6 : D.vip4), "vip");
  const rs = endpointOf(o.rs ?? (v6 ? D.rs6 : D.rs4), "rs");
  const lip = endpointOf(o.lip ?? (familyOf(rs.addr) === 6 ? D.lip6 : D.lip4), "lip");
  if (familyOf(vip.addr) !== familyOf(client.addr))
    badOption(
      "vip",
      `an IPv${v6 ? 6 : 4} client needs an IPv${v6 ? 6 : 4} VIP (NAT64 translates only a v6 client to a v4 server; give a v4 rs for it)`,
    );
  if (!v6 && familyOf(rs.addr) === 6)
    badOption("rs", "an IPv4 client cannot reach an IPv6 server (NAT46 is not supported)");
  if (familyOf(lip.addr) !== familyOf(rs.addr))
    badOption("lip", "the local address must be of the real server's family");
  const s = o.settings;
  if (proto === "tcp" && (s?.uoa !== undefined || s?.maxTrail !== undefined))
    badOption(
      s?.uoa !== undefined ? "settings.uoa" : "settings.maxTrail",
      "applies to proto udp only",
    );
  if (profile.tcp?.carrier === "toa" && profile.tcp.v4.layout === ToaLayout.portAddrVaddr && v6)
    badOption("settings.toaLayout", "port-addr-vaddr carries IPv4 clients only");
  const why = unsupportedFlow(profile, proto, familyOf(client.addr), familyOf(rs.addr));
  if (why) badOption(OPTION_FOR[why.code](proto), why.message);
  let packets: ReturnType<typeof craftExchange>;
  try {
    packets = craftExchange({
      profile,
      protocol: proto,
      endpoints: { client, vip, lip, rs },
      mtu,
      datagrams,
    });
  } catch (e) {
    if (e instanceof CodecError)
      throw new ToasimError(ToasimErrorCode.badOption, e.message, null, { cause: e });
    throw e;
  }
  return {
    profile: profile.name,
    proto,
    client: formatEndpoint(client),
    vip: formatEndpoint(vip),
    rs: formatEndpoint(rs),
    lip: formatEndpoint(lip),
    packets: packets.map((p) => ({
      side: p.side,
      direction: p.direction,
      note: p.note,
      bytes: p.bytes,
      timeUs: p.timeUs,
      carrier: p.direction === "to-server" && p.side === "server" ? (MARKS[p.carrier] ?? "") : "",
    })),
  };
}

/**
 * Writes packets to a pcap (raw IP link type, for Wireshark and tshark);
 * returns how many. A file that cannot be written throws the system's error.
 */
export function writePcap(path: string, packets: readonly CraftedPacketInfo[]): number {
  const w = new PcapWriter(path);
  try {
    for (const p of packets) w.write(p.bytes, p.bytes.length, p.timeUs);
  } finally {
    w.close();
  }
  return packets.length;
}
