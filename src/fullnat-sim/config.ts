import type { Endpoint, IpAddress } from "../option-codec/address.js";
import type { Profile } from "./profiles.js";

export interface RealServer {
  readonly endpoint: Endpoint;
  readonly weight: number;
}

export interface ServiceConfig {
  readonly vip: Endpoint;
  readonly proto: "tcp" | "udp";
  readonly servers: readonly RealServer[];
  /** rr: each server in turn; wrr: smooth weighted round-robin (nginx's). */
  readonly scheduler: "rr" | "wrr";
}

/** Milliseconds a connection lives without packets, by state. */
export interface Timeouts {
  readonly tcpSyn: number;
  readonly tcpEstablished: number;
  readonly tcpFin: number;
  readonly tcpClose: number;
  readonly udp: number;
}

export interface GatewayConfig {
  readonly profile: Profile;
  readonly services: readonly ServiceConfig[];
  /** Local addresses toward IPv4 and IPv6 servers (the LIP pool). */
  readonly lips4: readonly IpAddress[];
  readonly lips6: readonly IpAddress[];
  /** Ports the gateway takes on each LIP. */
  readonly portMin: number;
  readonly portMax: number;
  /** Path MTU toward the server: packets that would exceed it lose their carrier. */
  readonly mtu: number;
  readonly maxConnections: number;
  readonly timeouts: Timeouts;
}

// LVS/DPVS-like defaults, shortened where a test bench gains nothing from waiting.
export const DEFAULT_TIMEOUTS: Timeouts = {
  tcpSyn: 30_000,
  tcpEstablished: 900_000,
  tcpFin: 120_000,
  tcpClose: 10_000,
  udp: 300_000,
};

export const DEFAULT_PORTS = { min: 1025, max: 65535 } as const;
