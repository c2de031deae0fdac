import { familyOf } from "../option-codec/address.js";
import { readU16 } from "../option-codec/bytes.js";
import { IpProtocol } from "../option-codec/ipv4.js";
import type { PacketInfo } from "../option-codec/packet.js";
import type { GatewayConfig } from "./config.js";
import { GatewayError } from "./errors.js";
import { unforwardable, unsupportedFlow } from "./flow-support.js";

export interface RealServerSlot {
  readonly addr: Uint8Array;
  readonly port: number;
  readonly family: 4 | 6;
  readonly weight: number;
  /** Smooth weighted round-robin's running weight. */
  current: number;
}

/** A virtual service as the packet path uses it: bytes to compare, a scheduler's state. */
export interface Service {
  readonly vip: Uint8Array;
  readonly vport: number;
  readonly proto: number;
  readonly family: 4 | 6;
  readonly servers: RealServerSlot[];
  readonly wrr: boolean;
  rr: number;
}

/**
 * The configured services, checked: each has a real server, none asks for
 * NAT46 or a flow its profile cannot carry, and every server's family has
 * a LIP to reach it from (`lips(family)` counts them).
 */
export function buildServices(config: GatewayConfig, lips: (family: 4 | 6) => number): Service[] {
  return config.services.map((s) => {
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
      if (lips(rf) === 0) {
        throw new GatewayError(
          "BAD_CONFIG",
          `no IPv${rf} local address (LIP) for real server ${r.endpoint.port}`,
        );
      }
    }
    return {
      vip: s.vip.addr,
      vport: s.vip.port,
      proto: s.proto === "tcp" ? IpProtocol.tcp : IpProtocol.udp,
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
}

/** The service a client packet is for (its destination address and port), or -1. */
export function findService(
  services: readonly Service[],
  buf: Uint8Array,
  info: PacketInfo,
  proto: number,
): number {
  const dport = readU16(buf, info.l4Offset + 2);
  const n = info.addrLength;
  for (let i = 0; i < services.length; i++) {
    const s = services[i]!;
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

/** The real server for a new flow: each in turn (rr) or by weight (wrr). */
export function schedule(s: Service): number {
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
