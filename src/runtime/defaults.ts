import {
  DEFAULT_PORTS,
  DEFAULT_TIMEOUTS,
  type GatewayConfig,
  type ServiceConfig,
} from "../fullnat-sim/config.js";
import type { Profile } from "../fullnat-sim/profiles.js";
import {
  formatIp,
  type IpAddress,
  inPrefix,
  type Prefix,
  parseEndpoint,
  parseIp,
  parsePrefix,
} from "../option-codec/address.js";
import type { TopologyPlan } from "../tun/topology.js";
import { RuntimeError, RuntimeErrorCode } from "./errors.js";

/**
 * The address plan (docs/architecture.md), the one place its addresses are
 * written: documentation ranges only (RFC 5737, RFC 3849). The topology
 * routes them, the defaults below serve them, the API and CLI check
 * addresses against them and print them in help.
 */
export const ADDRESS_PLAN = {
  /** The client namespace's own addresses, its default sources. */
  client4: "198.51.100.7",
  client6: "2001:db8:c::7",
  clientRange4: "198.51.100.0/24",
  clientRange6: "2001:db8:c::/64",
  /** The default services' VIPs; 2001:db8:f::64 fronts IPv4 servers (NAT64). */
  vip4: "203.0.113.10",
  vip6: "2001:db8:f::10",
  vipNat64: "2001:db8:f::64",
  vipRange4: "203.0.113.0/24",
  vipRange6: "2001:db8:f::/64",
  /** On lo of every server side. */
  rs4: "192.0.2.10",
  rs6: "2001:db8:5::10",
  rsRange4: "192.0.2.0/24",
  rsRange6: "2001:db8:5::/64",
  /** LIP pools: 192.0.2.100-131 and 2001:db8:5::100-131 (the last group read as decimal text). */
  lipPrefix4: "192.0.2.",
  lipPrefix6: "2001:db8:5::",
  lipFirst: 100,
  lipCount: 32,
} as const satisfies TopologyPlan & Record<string, string | number>;

const A = ADDRESS_PLAN;
const lipTexts = (prefix: string): string[] =>
  Array.from({ length: A.lipCount }, (_, i) => `${prefix}${A.lipFirst + i}`);

/** The LIP pools as text, in the order the gateway takes them. */
export const LIPS = { 4: lipTexts(A.lipPrefix4), 6: lipTexts(A.lipPrefix6) } as const;

export function defaultLips4(): IpAddress[] {
  return LIPS[4].map(parseIp);
}

export function defaultLips6(): IpAddress[] {
  return LIPS[6].map(parseIp);
}

/** Every LIP in canonical text, once. */
const LIP_SET: ReadonlySet<string> = new Set(
  [...LIPS[4], ...LIPS[6]].map((l) => formatIp(parseIp(l))),
);

/** Whether an address (any text form) is one of the LIPs. */
export function isLip(text: string): boolean {
  try {
    return LIP_SET.has(formatIp(parseIp(text)));
  } catch {
    return false;
  }
}

export const PLAN_RANGES = {
  client: [parsePrefix(A.clientRange4), parsePrefix(A.clientRange6)],
  vip: [parsePrefix(A.vipRange4), parsePrefix(A.vipRange6)],
  rs: [parsePrefix(A.rsRange4), parsePrefix(A.rsRange6)],
} as const satisfies Record<string, readonly Prefix[]>;

/** Whether an address is inside a part of the plan (its IPv4 or its IPv6 range). */
export const inPlan = (part: keyof typeof PLAN_RANGES, a: IpAddress): boolean =>
  PLAN_RANGES[part].some((p) => inPrefix(a, p));

/** "198.51.100.0/24 and 2001:db8:c::/64": a part's ranges, for messages. */
export const planRanges = (part: keyof typeof PLAN_RANGES): string =>
  PLAN_RANGES[part].map((p) => `${formatIp(p.addr)}/${p.length}`).join(" and ");

const svc = (proto: "tcp" | "udp", vip: string, rs: string): ServiceConfig => ({
  vip: parseEndpoint(vip),
  proto,
  servers: [{ endpoint: parseEndpoint(rs), weight: 1 }],
  scheduler: "rr",
});

/**
 * Without --service: HTTP and DNS-like UDP services for v4 -> v4,
 * v6 -> v6 and NAT64 (v6 VIP 2001:db8:f::64 in front of v4 servers).
 */
export function defaultServices(): ServiceConfig[] {
  return [
    svc("tcp", `${A.vip4}:80`, `${A.rs4}:8080`),
    svc("tcp", `[${A.vip6}]:80`, `[${A.rs6}]:8080`),
    svc("tcp", `[${A.vipNat64}]:80`, `${A.rs4}:8080`),
    svc("udp", `${A.vip4}:53`, `${A.rs4}:5353`),
    svc("udp", `[${A.vip6}]:53`, `[${A.rs6}]:5353`),
    svc("udp", `[${A.vipNat64}]:53`, `${A.rs4}:5353`),
  ];
}

/** The default services, LIP pools, ports and timeouts, path MTU 1500. */
export function defaultGatewayConfig(profile: Profile, maxConnections: number): GatewayConfig {
  return {
    profile,
    services: defaultServices(),
    lips4: defaultLips4(),
    lips6: defaultLips6(),
    portMin: DEFAULT_PORTS.min,
    portMax: DEFAULT_PORTS.max,
    mtu: 1500,
    maxConnections,
    timeouts: DEFAULT_TIMEOUTS,
  };
}

/** The RS addresses every server namespace has on lo. */
export const BUILTIN_RS = [A.rs4, A.rs6] as const;

/**
 * TUN offloads when an instance's options do not say: on, unless the
 * environment's TOASIM_OFFLOAD is "off" (how the e2e tier runs everything
 * packet at a time; docs/testing.md).
 */
export function defaultOffload(): boolean {
  const v = process.env["TOASIM_OFFLOAD"];
  if (v === undefined || v === "" || v === "on") return true;
  if (v === "off") return false;
  throw new RuntimeError(
    RuntimeErrorCode.badEnvironment,
    `TOASIM_OFFLOAD=${JSON.stringify(v)}: use on or off`,
  );
}
