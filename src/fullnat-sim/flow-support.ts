import type { GatewayConfig } from "./config.js";

/** Why a profile cannot carry a flow: the stable codes callers branch on. */
export const FlowRefusal = {
  /** The profile has no carrier for the protocol (a PROXY profile and UDP). */
  noCarrier: "NO_CARRIER",
  /** An IPv4 client to an IPv6 server. */
  nat46: "NAT46",
  /** A TOA profile with no IPv6 form, and an IPv6 client. */
  noToaV6: "NO_TOA_V6",
  /** UOA in IPv4 options with an IPv6 side. */
  ipoNotV4: "IPO_NOT_V4",
} as const;
export type FlowRefusal = (typeof FlowRefusal)[keyof typeof FlowRefusal];

export interface Unsupported {
  readonly code: FlowRefusal;
  readonly message: string;
}

/**
 * Why a profile cannot carry a client of this family over this protocol,
 * or null if it can: for commands to refuse up front what the gateway
 * would otherwise drop packet by packet.
 */
export function unsupportedFlow(
  profile: GatewayConfig["profile"],
  proto: "tcp" | "udp",
  clientFamily: 4 | 6,
  serverFamily: 4 | 6,
): Unsupported | null {
  const policy = proto === "tcp" ? profile.tcp : profile.udp;
  if (!policy)
    return refusal(
      FlowRefusal.noCarrier,
      `profile ${profile.name} has no ${proto.toUpperCase()} carrier`,
    );
  if (clientFamily === 4 && serverFamily === 6)
    return refusal(
      FlowRefusal.nat46,
      "an IPv4 client cannot reach an IPv6 server (NAT46 is not supported)",
    );
  if (policy.carrier === "toa" && clientFamily === 6 && !policy.v6)
    return refusal(FlowRefusal.noToaV6, `profile ${profile.name} has no TOA for IPv6 clients`);
  if (
    policy.carrier === "uoa" &&
    policy.mode === "ipo" &&
    (clientFamily !== 4 || serverFamily !== 4)
  )
    return refusal(FlowRefusal.ipoNotV4, "UOA ipo mode is IPv4 only on both sides; use opp");
  return null;
}

/** A flow no gateway could forward, whatever carries the client: refused in the config. */
export function unforwardable(u: Unsupported | null): boolean {
  return u?.code === FlowRefusal.nat46 || u?.code === FlowRefusal.ipoNotV4;
}

const refusal = (code: FlowRefusal, message: string): Unsupported => ({ code, message });
