import {
  DEFAULT_PORTS,
  DEFAULT_TIMEOUTS,
  type GatewayConfig,
  type ServiceConfig,
} from "../fullnat-sim/config.js";
import type { Profile } from "../fullnat-sim/profiles.js";
import { type IpAddress, parseEndpoint, parseIp } from "../option-codec/address.js";

// The documentation addresses of the address plan (docs/architecture.md), in one place.

/** LIP pools: 192.0.2.100-131 and 2001:db8:5::100-131. */
export function defaultLips4(): IpAddress[] {
  return Array.from({ length: 32 }, (_, i) => parseIp(`192.0.2.${100 + i}`));
}

export function defaultLips6(): IpAddress[] {
  return Array.from({ length: 32 }, (_, i) => parseIp(`2001:db8:5::${100 + i}`));
}

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
    svc("tcp", "203.0.113.10:80", "192.0.2.10:8080"),
    svc("tcp", "[2001:db8:f::10]:80", "[2001:db8:5::10]:8080"),
    svc("tcp", "[2001:db8:f::64]:80", "192.0.2.10:8080"),
    svc("udp", "203.0.113.10:53", "192.0.2.10:5353"),
    svc("udp", "[2001:db8:f::10]:53", "[2001:db8:5::10]:5353"),
    svc("udp", "[2001:db8:f::64]:53", "192.0.2.10:5353"),
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
export const BUILTIN_RS = ["192.0.2.10", "2001:db8:5::10"] as const;
