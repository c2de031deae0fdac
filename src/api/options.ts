import type { DecoderSettings } from "../decoder/maps.js";
import { DEFAULT_SETTINGS } from "../decoder/maps.js";
import {
  DEFAULT_PORTS,
  DEFAULT_TIMEOUTS,
  type GatewayConfig,
  type ServiceConfig,
  type Timeouts,
} from "../fullnat-sim/config.js";
import { GatewayError } from "../fullnat-sim/errors.js";
import { type FaultConfig, parseFaultConfig } from "../fullnat-sim/faults.js";
import { unforwardable, unsupportedFlow } from "../fullnat-sim/flow-support.js";
import {
  isProfileName,
  PROFILE_NAMES,
  type Profile,
  ProfileError,
  type ProfileName,
  type ProfileSettings,
  resolveProfile,
  type ToaCarry,
} from "../fullnat-sim/profiles.js";
import {
  type Endpoint,
  familyOf,
  formatEndpoint,
  formatIp,
  parseEndpoint,
} from "../option-codec/address.js";
import { CodecError } from "../option-codec/errors.js";
import { TOA_LAYOUTS, type ToaLayout } from "../option-codec/toa.js";
import {
  BUILTIN_RS,
  defaultLips4,
  defaultLips6,
  defaultServices,
  inPlan,
  isLip,
  planRanges,
} from "../runtime/defaults.js";
import { RS_NETNS, type RsNetns } from "../tun/topology.js";

export type { RsNetns };

import { badOption } from "./errors.js";

/**
 * The options of an instance, as `toasim up` takes them (flags, a config
 * file) and as the API takes them (an object). Every value is checked here
 * and a bad one is a ToasimError naming its path in the options
 * (`settings.toaKind`, `services[1]`). Values may also be given as the
 * strings a flag or a scenario file holds ("off", "5", "syn,fin"), so
 * every way in means the same.
 */

/** Which TCP packets carry the TOA (`--carry`). */
export const CARRY_NAMES = {
  syn: "syn",
  "handshake-ack": "handshakeAck",
  data: "dataUntilAcked",
  fin: "fin",
  every: "every",
} as const satisfies Record<string, keyof ToaCarry>;
export type CarryName = keyof typeof CARRY_NAMES;

/** The gateway's settings: what a profile leaves open, and switches for reproducing bugs. */
export interface GatewaySettings {
  /** UDP: where the UOA goes, `opp` (its own protocol) or `ipo` (IPv4 options). */
  readonly uoa?: "opp" | "ipo";
  /** UDP: how many first datagrams of a flow carry the UOA. */
  readonly maxTrail?: number;
  /** The TOA option kind (v4 clients, and v6 unless toaKindV6). */
  readonly toaKind?: number;
  readonly toaKindV6?: number;
  readonly toaLayout?: ToaLayout;
  /** Byte order of ttm_peer's af field. */
  readonly afOrder?: "host" | "network";
  /** The TCP packets that carry the TOA. */
  readonly carry?: readonly CarryName[];
  /** Lower the MSS in SYN-ACKs by the TOA's length (false: a bug to reproduce). */
  readonly mssClamp?: boolean;
  /** Make room for the TOA by removing options, as DPVS does (false: a bug). */
  readonly prune?: boolean;
  /** Remove TOAs clients put in themselves (false: a bug). */
  readonly stripClientToa?: boolean;
}

export const SETTING_NAMES = [
  "uoa",
  "maxTrail",
  "toaKind",
  "toaKindV6",
  "toaLayout",
  "afOrder",
  "carry",
  "mssClamp",
  "prune",
  "stripClientToa",
] as const satisfies readonly (keyof GatewaySettings)[];

/** A virtual service: `"tcp:203.0.113.10:80=192.0.2.10:8080*2,192.0.2.11:8080"`, or this object. */
export interface ServiceSpec {
  readonly proto: "tcp" | "udp";
  /** `203.0.113.10:80` or `[2001:db8:f::10]:80`. */
  readonly vip: string;
  /** `192.0.2.10:8080`, or `{address, weight}` (weights count with the wrr scheduler). */
  readonly servers: readonly (string | { readonly address: string; readonly weight?: number })[];
}

/**
 * Fault injection: rules as objects (docs/faults.md) or as the one-word
 * form of `--fault` (`"to-server:handshake-ack:drop,count=1"`), the links'
 * MTU, the seed of probability rules.
 */
export interface FaultsSpec {
  readonly rules?: readonly (string | Readonly<Record<string, unknown>>)[];
  readonly mtu?: { readonly client?: number; readonly server?: number };
  readonly seed?: number;
}

export type DecoderMode = "auto" | "ebpf" | "none";

export interface DecoderOptions {
  /** auto (the default): the eBPF decoder unless a TOA/UOA module is loaded or it cannot run here. */
  readonly mode?: DecoderMode;
  /** Gateway source ranges whose carriers are believed, or "any". */
  readonly trusted?: readonly string[] | "any";
  /** Seconds a UDP flow's client is kept. */
  readonly uoaTimeoutSec?: number;
}

export interface UpOptions {
  /** dpvs (the default), lvs, tencent, ksyun-ttm, noa, bytedance, aliyun-cdn, ucloud, custom, proxy-v1, proxy-v2, spp. */
  readonly profile?: ProfileName;
  readonly settings?: GatewaySettings;
  /** Without: the default services the profile can carry (docs/cli.md, toasim up). */
  readonly services?: readonly (string | ServiceSpec)[];
  /** rr (the default) or wrr. */
  readonly scheduler?: "rr" | "wrr";
  /** Path MTU toward the server (default 1500). */
  readonly mtu?: number;
  /** Connection table limit (default 1,000,000). */
  readonly maxConnections?: number;
  /**
   * Seconds a connection lives without packets, by state (defaults: syn 30,
   * established 900, fin 120, close 10, udp 300). Shorter ones reproduce
   * what a gateway does to an idle flow without waiting minutes.
   */
  readonly timeouts?: TimeoutOptions;
  readonly faults?: FaultsSpec | null;
  readonly decoder?: DecoderMode | DecoderOptions;
  /**
   * Where the servers live: "toasim" (the default), a network namespace of
   * the instance's own; or "root", the machine's root namespace, for
   * decoders that hook only there. "root" works only inside a toasim vm
   * guest (a host's root namespace is not toasim's to change), one instance
   * at a time.
   */
  readonly rsNetns?: RsNetns;
  /**
   * TUN offloads: TCP crosses the gateway as super-packets of up to 64 KB,
   * cut into wire segments by the kernel (or in software while faults,
   * captures or scripted clients look at single packets). "off" moves
   * every packet alone, as a reproduction may need. Default "on" (or the
   * environment's TOASIM_OFFLOAD).
   */
  readonly offload?: "on" | "off" | boolean;
}

export interface TimeoutOptions {
  readonly syn?: number;
  readonly established?: number;
  readonly fin?: number;
  readonly close?: number;
  readonly udp?: number;
}

/** TimeoutOptions' keys, and the gateway's Timeouts field each sets. */
const TIMEOUT_KEYS = {
  syn: "tcpSyn",
  established: "tcpEstablished",
  fin: "tcpFin",
  close: "tcpClose",
  udp: "udp",
} as const satisfies Record<keyof TimeoutOptions, keyof Timeouts>;

/** The timeouts option, checked: an object, or the text form "udp=2,syn=5". */
export function timeoutsOf(raw: unknown): Timeouts {
  if (raw === undefined) return DEFAULT_TIMEOUTS;
  let o = raw;
  if (typeof raw === "string") {
    const pairs: [string, string][] = [];
    for (const item of raw.split(",").map((x) => x.trim())) {
      const m = /^([a-z]+)=(.*)$/.exec(item);
      if (m === null) badOption("timeouts", `"${item}" is not STATE=SECONDS (e.g. udp=2)`);
      pairs.push([m[1]!, m[2]!]);
    }
    o = Object.fromEntries(pairs);
  }
  if (!isObject(o)) badOption("timeouts", "an object of seconds by state, or STATE=SECONDS,...");
  const out: { -readonly [K in keyof Timeouts]: number } = { ...DEFAULT_TIMEOUTS };
  const known = Object.keys(TIMEOUT_KEYS).join(", ");
  for (const [k, v] of Object.entries(o)) {
    if (!Object.hasOwn(TIMEOUT_KEYS, k))
      badOption(`timeouts.${k}`, `unknown state (known: ${known})`);
    out[TIMEOUT_KEYS[k as keyof TimeoutOptions]] = int(v, `timeouts.${k}`, 1, 86_400) * 1000;
  }
  return out;
}

/** An instance's options, checked and turned into what the runtime runs. */
export interface ResolvedUp {
  readonly config: GatewayConfig;
  /** RS addresses the server namespace needs on lo besides the built-in ones. */
  readonly extraRs: readonly string[];
  readonly faults: FaultConfig | null;
  readonly decoder: { readonly mode: DecoderMode; readonly settings: DecoderSettings };
  readonly rsNetns: RsNetns;
  /** null: not said (the runtime's default). */
  readonly offload: boolean | null;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function int(v: unknown, where: string, min: number, max: number): number {
  let n = v;
  if (typeof v === "string") {
    if (!/^(0|[1-9]\d*|0x[0-9a-fA-F]+)$/.test(v)) badOption(where, `"${v}" is not a number`);
    n = Number(v);
  }
  if (typeof n !== "number" || !Number.isInteger(n))
    badOption(where, `${JSON.stringify(v)} is not an integer`);
  if (n < min || n > max) badOption(where, `${n} is outside ${min}..${max}`);
  return n;
}

function choice<T extends string>(v: unknown, where: string, choices: readonly T[]): T {
  if (typeof v === "string" && (choices as readonly string[]).includes(v)) return v as T;
  return badOption(where, `${JSON.stringify(v)} is not one of ${choices.join(", ")}`);
}

function onOff(v: unknown, where: string): boolean {
  if (typeof v === "boolean") return v;
  return choice(v, where, ["on", "off"] as const) === "on";
}

function list<T extends string>(v: unknown, where: string, choices: readonly T[]): T[] {
  const items =
    typeof v === "string"
      ? v
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "")
      : v;
  if (!Array.isArray(items)) badOption(where, "a list (or a comma-separated string)");
  if (items.length === 0) badOption(where, "empty list");
  return items.map((x: unknown, i) => choice(x, `${where}[${i}]`, choices));
}

/** The settings as the profile layer takes them. */
export function profileSettings(raw: unknown, where = "settings"): ProfileSettings {
  if (raw === undefined) return {};
  if (!isObject(raw)) badOption(where, "an object of gateway settings");
  for (const k of Object.keys(raw)) {
    if (!(SETTING_NAMES as readonly string[]).includes(k))
      badOption(`${where}.${k}`, `unknown setting (known: ${SETTING_NAMES.join(", ")})`);
  }
  const s: { -readonly [K in keyof ProfileSettings]: ProfileSettings[K] } = {};
  const at = (k: string) => `${where}.${k}`;
  const v = (k: (typeof SETTING_NAMES)[number]) => raw[k];
  if (v("toaKind") !== undefined) s.toaKind = int(v("toaKind"), at("toaKind"), 2, 255);
  if (v("toaKindV6") !== undefined) s.toaKindV6 = int(v("toaKindV6"), at("toaKindV6"), 2, 255);
  if (v("toaLayout") !== undefined)
    s.toaLayout = choice(v("toaLayout"), at("toaLayout"), TOA_LAYOUTS);
  if (v("afOrder") !== undefined)
    s.afOrder = choice(v("afOrder"), at("afOrder"), ["host", "network"] as const);
  if (v("carry") !== undefined) {
    const names = list(v("carry"), at("carry"), Object.keys(CARRY_NAMES) as CarryName[]);
    s.carry = names.map((n) => CARRY_NAMES[n]);
  }
  if (v("uoa") !== undefined) s.uoaMode = choice(v("uoa"), at("uoa"), ["opp", "ipo"] as const);
  if (v("maxTrail") !== undefined) s.maxTrail = int(v("maxTrail"), at("maxTrail"), 0, 1_000_000);
  if (v("mssClamp") !== undefined) s.lowerMss = onOff(v("mssClamp"), at("mssClamp"));
  if (v("prune") !== undefined) s.prune = onOff(v("prune"), at("prune"));
  if (v("stripClientToa") !== undefined)
    s.keepClientToa = !onOff(v("stripClientToa"), at("stripClientToa"));
  return s;
}

/** A profile by name, with settings applied. */
export function profileOf(name: unknown, settings: unknown): Profile {
  if (typeof name !== "string" || !isProfileName(name))
    badOption(
      "profile",
      `unknown profile ${JSON.stringify(name)} (one of ${PROFILE_NAMES.join(", ")})`,
    );
  const s = profileSettings(settings);
  try {
    return resolveProfile(name, s);
  } catch (e) {
    if (e instanceof ProfileError) badOption("settings", e.message, e);
    throw e;
  }
}

function endpoint(text: unknown, where: string): Endpoint {
  if (typeof text !== "string") badOption(where, "an ADDR:PORT string");
  try {
    return parseEndpoint(text);
  } catch (e) {
    if (e instanceof CodecError) badOption(where, `"${text}" is not ADDR:PORT or [V6ADDR]:PORT`, e);
    throw e;
  }
}

/** `PROTO:VIP=RS[*WEIGHT][,RS[*WEIGHT]...]` as a ServiceSpec. */
export function parseServiceText(text: string, where: string): ServiceSpec {
  const m = /^(tcp|udp):([^=]+)=(.+)$/.exec(text);
  if (!m) badOption(where, `"${text}" is not PROTO:VIP=RS[*W][,RS[*W]...]`);
  return {
    proto: m[1] as "tcp" | "udp",
    vip: m[2]!,
    servers: m[3]!.split(",").map((part) => {
      const [address = "", w] = part.split("*");
      return w === undefined ? address : { address, weight: int(w, where, 1, 1000) };
    }),
  };
}

function service(raw: unknown, where: string, scheduler: "rr" | "wrr"): ServiceConfig {
  const spec = typeof raw === "string" ? parseServiceText(raw, where) : raw;
  if (!isObject(spec)) badOption(where, 'a "PROTO:VIP=RS,..." string or {proto, vip, servers}');
  for (const k of Object.keys(spec)) {
    if (!["proto", "vip", "servers"].includes(k)) badOption(`${where}.${k}`, "unknown key");
  }
  const proto = choice(spec["proto"], `${where}.proto`, ["tcp", "udp"] as const);
  const vip = endpoint(spec["vip"], `${where}.vip`);
  const rawServers = spec["servers"];
  if (!Array.isArray(rawServers) || rawServers.length === 0)
    badOption(`${where}.servers`, "a non-empty list of real servers");
  const servers = rawServers.map((r: unknown, i) => {
    const at = `${where}.servers[${i}]`;
    if (typeof r === "string") return { endpoint: endpoint(r, at), weight: 1 };
    if (!isObject(r)) badOption(at, 'an ADDR:PORT string or {"address", "weight"}');
    return {
      endpoint: endpoint(r["address"], `${at}.address`),
      weight: r["weight"] === undefined ? 1 : int(r["weight"], `${at}.weight`, 1, 1000),
    };
  });
  return { vip, proto, servers, scheduler };
}

/**
 * The topology routes only the plan's documentation ranges (VIPs in its VIP
 * ranges, servers in its server ranges outside the LIP pool). Anything else
 * could never be reached, so it is refused here, as is a flow the profile
 * cannot carry at all.
 */
function checkService(s: ServiceConfig, where: string, profile: Profile): void {
  if (!inPlan("vip", s.vip.addr))
    badOption(where, `VIP ${formatEndpoint(s.vip)} is outside ${planRanges("vip")}`);
  for (const r of s.servers) {
    const e = r.endpoint;
    if (!inPlan("rs", e.addr))
      badOption(where, `real server ${formatEndpoint(e)} is outside ${planRanges("rs")}`);
    if (isLip(formatIp(e.addr)))
      badOption(where, `real server ${formatEndpoint(e)} is inside the gateway's LIP pool`);
    const why = unsupportedFlow(profile, s.proto, familyOf(s.vip.addr), familyOf(e.addr));
    if (why !== null && unforwardable(why)) badOption(where, why.message);
  }
}

/** The default services, less those the profile cannot carry at all. */
export function defaultServicesFor(profile: Profile): ServiceConfig[] {
  return defaultServices().filter((s) => {
    const rf = familyOf(s.servers[0]!.endpoint.addr);
    return unsupportedFlow(profile, s.proto, familyOf(s.vip.addr), rf) === null;
  });
}

/** RS addresses the server namespace must have on lo besides the built-in ones. */
function extraRsAddresses(services: readonly ServiceConfig[]): string[] {
  const out = new Set<string>();
  for (const s of services) {
    for (const r of s.servers) {
      const text = formatIp(r.endpoint.addr);
      if (!(BUILTIN_RS as readonly string[]).includes(text)) out.add(text);
    }
  }
  return [...out];
}

/** The faults as the gateway runs them; null when none of any kind is asked for. */
export function faultConfig(raw: unknown, where = "faults"): FaultConfig | null {
  if (raw === undefined || raw === null) return null;
  let config: FaultConfig;
  try {
    config = parseFaultConfig(raw, where);
  } catch (e) {
    if (e instanceof GatewayError) {
      // parseFaultConfig names the path in its message: "faults.rules[1].count: ...".
      const m = /^([^:]+): (.*)$/s.exec(e.message);
      badOption(m?.[1] ?? where, m?.[2] ?? e.message, e);
    }
    throw e;
  }
  const none = config.rules.length === 0 && config.mtu.client === 0 && config.mtu.server === 0;
  return none ? null : config;
}

/** The decoder option (mode, trusted ranges, UOA timeout), checked. */
export function decoderOptions(raw: unknown): ResolvedUp["decoder"] {
  if (raw === undefined) return { mode: "auto", settings: DEFAULT_SETTINGS };
  const o = typeof raw === "string" ? { mode: raw } : raw;
  if (!isObject(o))
    badOption("decoder", '"auto", "ebpf", "none" or {mode, trusted, uoaTimeoutSec}');
  for (const k of Object.keys(o)) {
    if (!["mode", "trusted", "uoaTimeoutSec"].includes(k))
      badOption(`decoder.${k}`, "unknown key (mode, trusted, uoaTimeoutSec)");
  }
  const mode =
    o["mode"] === undefined
      ? "auto"
      : choice(o["mode"], typeof raw === "string" ? "decoder" : "decoder.mode", [
          "auto",
          "ebpf",
          "none",
        ] as const);
  let trusted: DecoderSettings["trusted"] = DEFAULT_SETTINGS.trusted;
  const t = o["trusted"];
  if (t !== undefined) {
    const items = typeof t === "string" ? t.split(",").map((s) => s.trim()) : t;
    if (!Array.isArray(items) || items.some((x) => typeof x !== "string"))
      badOption("decoder.trusted", 'a list of CIDR ranges, or "any"');
    const clean = (items as string[]).filter((s) => s !== "");
    if (clean.length === 0) badOption("decoder.trusted", "empty list");
    trusted = clean.includes("any") ? "any" : clean;
  }
  const uoaTimeoutSec =
    o["uoaTimeoutSec"] === undefined
      ? DEFAULT_SETTINGS.uoaTimeoutSec
      : int(o["uoaTimeoutSec"], "decoder.uoaTimeoutSec", 1, 86_400);
  return { mode, settings: { ...DEFAULT_SETTINGS, trusted, uoaTimeoutSec } };
}

const UP_KEYS = [
  "profile",
  "settings",
  "services",
  "scheduler",
  "mtu",
  "maxConnections",
  "timeouts",
  "faults",
  "decoder",
  "rsNetns",
  "offload",
] as const satisfies readonly (keyof UpOptions)[];

/** Checks an instance's options; nothing on the machine is looked at or changed. */
export function resolveUpOptions(o: UpOptions = {}): ResolvedUp {
  return resolveUpInput(o as unknown);
}

/**
 * The same for options whose values may still be the text of flags, a
 * config file or a scenario ({"mtu": "1500", "settings": {"prune": "off"}}).
 */
export function resolveUpInput(raw: unknown): ResolvedUp {
  if (!isObject(raw)) badOption("options", "an object");
  for (const k of Object.keys(raw)) {
    if (!(UP_KEYS as readonly string[]).includes(k))
      badOption(k, `unknown option (known: ${UP_KEYS.join(", ")})`);
  }
  const o = raw as { readonly [K in (typeof UP_KEYS)[number]]?: unknown };
  const profile = profileOf(o.profile ?? "dpvs", o.settings);
  const scheduler = choice(o.scheduler ?? "rr", "scheduler", ["rr", "wrr"] as const);
  if (o.services !== undefined && !Array.isArray(o.services))
    badOption("services", "a list of services");
  const services =
    Array.isArray(o.services) && o.services.length > 0
      ? o.services.map((s: unknown, i) => service(s, `services[${i}]`, scheduler))
      : defaultServicesFor(profile);
  if (services.length === 0)
    badOption("profile", `profile ${profile.name} can carry none of the default services`);
  services.forEach((s, i) => {
    checkService(s, `services[${i}]`, profile);
  });
  const config: GatewayConfig = {
    profile,
    services,
    lips4: defaultLips4(),
    lips6: defaultLips6(),
    portMin: DEFAULT_PORTS.min,
    portMax: DEFAULT_PORTS.max,
    mtu: int(o.mtu ?? 1500, "mtu", 576, 65535),
    maxConnections: int(o.maxConnections ?? 1_000_000, "maxConnections", 1, 10_000_000),
    timeouts: timeoutsOf(o.timeouts),
  };
  return {
    config,
    extraRs: extraRsAddresses(services),
    faults: faultConfig(o.faults),
    decoder: decoderOptions(o.decoder),
    rsNetns: choice(o.rsNetns ?? "toasim", "rsNetns", RS_NETNS),
    offload: o.offload === undefined ? null : onOff(o.offload, "offload"),
  };
}

/** A service as the API reports it. */
export interface ServiceInfo {
  readonly proto: "tcp" | "udp";
  readonly vip: string;
  readonly servers: readonly string[];
}

export function serviceInfo(s: ServiceConfig): ServiceInfo {
  return {
    proto: s.proto,
    vip: formatEndpoint(s.vip),
    servers: s.servers.map((r) => formatEndpoint(r.endpoint)),
  };
}
