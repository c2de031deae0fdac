import { readFileSync } from "node:fs";
import type { ServiceConfig } from "../fullnat-sim/config.js";
import { unsupportedFlow } from "../fullnat-sim/gateway.js";
import type { Profile } from "../fullnat-sim/profiles.js";
import type { Endpoint } from "../option-codec/address.js";
import { formatEndpoint } from "../option-codec/address.js";
import { BUILTIN_RS, defaultServices } from "../runtime/defaults.js";
import { CliError } from "./errors.js";
import { endpointFlag, intFlag } from "./parse-flags.js";

/** `PROTO:VIP=RS[*WEIGHT][,RS[*WEIGHT]...]`, e.g. `tcp:203.0.113.10:80=192.0.2.10:8080*3,192.0.2.11:8080`. */
export function parseService(flag: string, text: string, scheduler: "rr" | "wrr"): ServiceConfig {
  const m = /^(tcp|udp):([^=]+)=(.+)$/.exec(text);
  if (!m) throw new CliError("BAD_FLAG", flag, `"${text}" is not PROTO:VIP=RS[*W][,RS[*W]...]`);
  const vip = endpointFlag(flag, m[2]!);
  const servers = m[3]!.split(",").map((part) => {
    const [ep, w] = part.split("*");
    return {
      endpoint: endpointFlag(flag, ep!),
      weight: w === undefined ? 1 : intFlag(flag, w, 1, 1000),
    };
  });
  return { vip, proto: m[1] as "tcp" | "udp", servers, scheduler };
}

function inRange(e: Endpoint, v4Prefix: number[], v6Prefix: number[]): boolean {
  const p = e.addr.length === 4 ? v4Prefix : v6Prefix;
  return p.every((b, i) => e.addr[i] === b);
}

/**
 * The topology routes only documentation ranges: VIPs in 203.0.113.0/24 or
 * 2001:db8:f::/64, servers in 192.0.2.0/24 or 2001:db8:5::/64 outside the
 * LIP pool. Anything else could never be reached, so it is refused here.
 */
export function checkService(flag: string, s: ServiceConfig, profile: Profile): void {
  if (!inRange(s.vip, [203, 0, 113], [0x20, 0x01, 0x0d, 0xb8, 0, 0x0f, 0, 0, 0, 0, 0, 0])) {
    throw new CliError(
      "BAD_FLAG",
      flag,
      `VIP ${formatEndpoint(s.vip)} is outside 203.0.113.0/24 and 2001:db8:f::/64`,
    );
  }
  for (const r of s.servers) {
    const e = r.endpoint;
    if (!inRange(e, [192, 0, 2], [0x20, 0x01, 0x0d, 0xb8, 0, 0x05, 0, 0, 0, 0, 0, 0])) {
      throw new CliError(
        "BAD_FLAG",
        flag,
        `real server ${formatEndpoint(e)} is outside 192.0.2.0/24 and 2001:db8:5::/64`,
      );
    }
    const last = e.addr.length === 4 ? e.addr[3]! : (e.addr[14]! << 8) | e.addr[15]!;
    const lo = e.addr.length === 4 ? 100 : 0x100;
    const isPoolV6 = e.addr.length === 16 && e.addr.slice(6, 14).every((b) => b === 0);
    const poolEnd = e.addr.length === 4 ? 131 : 0x131;
    if ((e.addr.length === 4 || isPoolV6) && last >= lo && last <= poolEnd) {
      throw new CliError(
        "BAD_FLAG",
        flag,
        `real server ${formatEndpoint(e)} is inside the gateway's LIP pool`,
      );
    }
    const why = unsupportedFlow(
      profile,
      s.proto,
      s.vip.addr.length === 4 ? 4 : 6,
      e.addr.length === 4 ? 4 : 6,
    );
    if (why?.includes("NAT46") || why?.includes("ipo"))
      throw new CliError("BAD_COMBINATION", flag, why);
  }
}

/** Default services, less those the profile cannot carry at all. */
export function defaultServicesFor(profile: Profile): ServiceConfig[] {
  return defaultServices().filter((s) => {
    const rf = s.servers[0]!.endpoint.addr.length === 4 ? 4 : 6;
    return unsupportedFlow(profile, s.proto, s.vip.addr.length === 4 ? 4 : 6, rf) === null;
  });
}

/** RS addresses the server namespace must have on lo besides the built-in ones. */
export function extraRsAddresses(services: readonly ServiceConfig[]): string[] {
  const out = new Set<string>();
  for (const s of services) {
    for (const r of s.servers) {
      const text = formatEndpoint(r.endpoint).replace(/^\[|\]?:\d+$/g, "");
      if (!(BUILTIN_RS as readonly string[]).includes(text)) out.add(text);
    }
  }
  return [...out];
}

interface ConfigFile {
  profile?: string;
  settings?: Record<string, string>;
  scheduler?: "rr" | "wrr";
  services?: string[];
  mtu?: number;
  /** Checked by faultsFrom: {"rules": [...], "mtu": {...}, "seed": N}. */
  faults?: unknown;
}

/** A JSON config file: the same words as the flags ({"profile", "services": [SPEC...], ...}). */
export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new CliError("IO", "--config", `cannot read ${path}: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CliError("BAD_FLAG", "--config", `${path} is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new CliError("BAD_FLAG", "--config", `${path}: expected a JSON object`);
  }
  const o = v as Record<string, unknown>;
  const allowed = ["profile", "settings", "scheduler", "services", "mtu", "faults"];
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k))
      throw new CliError(
        "BAD_FLAG",
        "--config",
        `${path}: unknown key "${k}" (known: ${allowed.join(", ")})`,
      );
  }
  if (o["profile"] !== undefined && typeof o["profile"] !== "string") {
    throw new CliError("BAD_FLAG", "--config", `${path}: "profile" must be a string`);
  }
  if (
    o["services"] !== undefined &&
    !(Array.isArray(o["services"]) && o["services"].every((x) => typeof x === "string"))
  ) {
    throw new CliError(
      "BAD_FLAG",
      "--config",
      `${path}: "services" must be a list of PROTO:VIP=RS strings`,
    );
  }
  if (o["mtu"] !== undefined && typeof o["mtu"] !== "number") {
    throw new CliError("BAD_FLAG", "--config", `${path}: "mtu" must be a number`);
  }
  if (
    o["settings"] !== undefined &&
    (typeof o["settings"] !== "object" || o["settings"] === null)
  ) {
    throw new CliError(
      "BAD_FLAG",
      "--config",
      `${path}: "settings" must be an object of flag values`,
    );
  }
  return o as ConfigFile;
}
