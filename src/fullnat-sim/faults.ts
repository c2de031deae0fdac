import { GatewayError } from "./errors.js";
import { faultSpecToRule } from "./fault-spec.js";
import { PACKET_CLASS_NAMES, type PacketClassName } from "./packet-class.js";

/**
 * Fault rules: what the gateway does wrong on purpose, per direction and
 * per packet class, to reproduce what breaks between a gateway and a
 * server. This file holds their checked form and the parser of their plain
 * form (scenario files, `toasim up --config`, `--fault`); fault-stage.ts
 * applies them.
 */

/** Which way a packet goes: toward the real server, or back to the client. */
export const Toward = { server: 1, client: 2 } as const;

/** A header field a corrupt rule can change: where it is and how wide. */
export const FAULT_FIELDS = {
  "ip.tos": { layer: "ip4", offset: 1, width: 1 },
  "ip.id": { layer: "ip4", offset: 4, width: 2 },
  "ip.ttl": { layer: "ip", offset: -1, width: 1 },
  "tcp.sport": { layer: "tcp", offset: 0, width: 2 },
  "tcp.dport": { layer: "tcp", offset: 2, width: 2 },
  "tcp.seq": { layer: "tcp", offset: 4, width: 4 },
  "tcp.ack": { layer: "tcp", offset: 8, width: 4 },
  "tcp.offset": { layer: "tcp", offset: 12, width: 1 },
  "tcp.flags": { layer: "tcp", offset: 13, width: 1 },
  "tcp.window": { layer: "tcp", offset: 14, width: 2 },
  "tcp.checksum": { layer: "tcp", offset: 16, width: 2 },
  "tcp.urgent": { layer: "tcp", offset: 18, width: 2 },
  "udp.sport": { layer: "udp", offset: 0, width: 2 },
  "udp.dport": { layer: "udp", offset: 2, width: 2 },
  "udp.length": { layer: "udp", offset: 4, width: 2 },
  "udp.checksum": { layer: "udp", offset: 6, width: 2 },
} as const;
export type FaultField = keyof typeof FAULT_FIELDS;

/** Where a corrupt rule writes. Option targets find the first option of `kind`; byte 0 is the kind byte. */
export type CorruptTarget =
  | { readonly at: "field"; readonly field: FaultField }
  | { readonly at: "tcp-option"; readonly kind: number; readonly byte: number }
  | { readonly at: "ip-option"; readonly kind: number; readonly byte: number }
  | { readonly at: "payload"; readonly byte: number }
  | { readonly at: "byte"; readonly byte: number };

export type FaultAction =
  | { readonly kind: "drop" }
  | { readonly kind: "duplicate"; readonly copies: number }
  | { readonly kind: "delay"; readonly ms: number }
  /** Held until `after` later packets the same way went out (or `maxMs` passed). */
  | { readonly kind: "reorder"; readonly after: number; readonly maxMs: number }
  | {
      readonly kind: "corrupt";
      readonly target: CorruptTarget;
      readonly op: "set" | "xor" | "add";
      readonly value: number;
      /** fix: checksums recomputed, so the receiver takes the packet; keep: left stale. */
      readonly checksum: "fix" | "keep";
    }
  | {
      readonly kind: "truncate";
      /** The packet is cut to `to` bytes, or by `by` bytes (one of them is 0). */
      readonly to: number;
      readonly by: number;
      /** fix: IP/UDP lengths and checksums made to match; keep: headers still claim the old length. */
      readonly lengths: "fix" | "keep";
    };

export interface FaultRule {
  /** Toward bits. */
  readonly toward: number;
  /** PacketClass bits the packet must all have; 0: any packet. */
  readonly classes: number;
  /** UDP toward the server: only the first N datagrams of each flow; 0: any. */
  readonly first: number;
  /** Matching packets let through before the rule acts. */
  readonly skip: number;
  /** How many matching packets it acts on (Infinity: all). */
  readonly count: number;
  /** Chance it acts on a matching packet, drawn from the seeded generator. */
  readonly probability: number;
  readonly action: FaultAction;
}

export interface FaultConfig {
  readonly rules: readonly FaultRule[];
  /** Link MTU toward each side: longer packets are dropped (0: none). */
  readonly mtu: { readonly client: number; readonly server: number };
  /** Seed of the generator behind `probability`, for runs that repeat exactly. */
  readonly seed: number;
}

export const NO_FAULTS: FaultConfig = { rules: [], mtu: { client: 0, server: 0 }, seed: 1 };

/** Each action and the keys that belong to it alone. */
const ACTION_KEYS = {
  drop: [],
  duplicate: ["copies"],
  delay: ["ms"],
  reorder: ["after", "maxMs"],
  corrupt: ["field", "set", "xor", "add", "checksum"],
  truncate: ["to", "by", "lengths"],
} as const satisfies Record<string, readonly string[]>;
type ActionKind = keyof typeof ACTION_KEYS;
const ACTIONS = Object.keys(ACTION_KEYS) as ActionKind[];
const ACTION_ONLY: readonly string[] = Object.values(ACTION_KEYS).flat();
const RULE_KEYS = new Set([
  ...["direction", "class", "first", "skip", "count", "probability", "action", "comment"],
  ...ACTION_ONLY,
]);

function bad(where: string, message: string): never {
  throw new GatewayError("BAD_FAULT", `${where}: ${message}`);
}

function integer(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    bad(where, `${JSON.stringify(v)} is not an integer from ${min} to ${max}`);
  }
  return v;
}

function oneOf<T extends string>(v: unknown, where: string, allowed: readonly T[]): T {
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    bad(where, `${JSON.stringify(v)} is not one of ${allowed.join(", ")}`);
  }
  return v as T;
}

/**
 * A rule from its plain form, e.g. `{"direction": "to-server", "class":
 * "handshake-ack", "action": "drop", "count": 1}`. `where` names it in
 * errors (`faults[2]`); every error says which key is wrong and why.
 */
export function parseFaultRule(raw: unknown, where: string): FaultRule {
  if (typeof raw === "string") return parseFaultRule(faultSpecToRule(raw, where), where);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    bad(where, "a fault rule is an object, or a string DIRECTION:CLASS:ACTION[,KEY=VALUE...]");
  }
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!RULE_KEYS.has(k)) bad(`${where}.${k}`, "unknown key");
  }
  const dir = oneOf(r["direction"] ?? "to-server", `${where}.direction`, [
    "to-server",
    "to-client",
    "both",
  ]);
  const toward = dir === "to-server" ? Toward.server : dir === "to-client" ? Toward.client : 3;
  let classes = 0;
  const cls = r["class"] ?? "any";
  const names = Array.isArray(cls) ? cls : [cls];
  names.forEach((n, i) => {
    const w = Array.isArray(cls) ? `${where}.class[${i}]` : `${where}.class`;
    if (n === "any") return;
    const name = oneOf(n, w, [...Object.keys(PACKET_CLASS_NAMES), "any"]) as PacketClassName;
    classes |= PACKET_CLASS_NAMES[name];
  });
  const first = integer(r["first"] ?? 0, `${where}.first`, 0, 1_000_000);
  if (first > 0 && !(toward & Toward.server)) {
    bad(`${where}.first`, "counts datagrams toward the server; use direction to-server");
  }
  const skip = integer(r["skip"] ?? 0, `${where}.skip`, 0, 1e9);
  const count =
    r["count"] === undefined
      ? Number.POSITIVE_INFINITY
      : integer(r["count"], `${where}.count`, 1, 1e9);
  const p = r["probability"] ?? 1;
  if (typeof p !== "number" || !(p > 0 && p <= 1)) {
    bad(`${where}.probability`, `${JSON.stringify(p)} is not a number in (0, 1]`);
  }
  const kind = oneOf(r["action"], `${where}.action`, ACTIONS);
  const own: readonly string[] = ACTION_KEYS[kind];
  for (const k of ACTION_ONLY) {
    if (r[k] !== undefined && !own.includes(k))
      bad(`${where}.${k}`, `does not apply to action ${kind}`);
  }
  return {
    toward,
    classes,
    first,
    skip,
    count,
    probability: p,
    action: parseAction(kind, r, where),
  };
}

function parseAction(kind: ActionKind, r: Record<string, unknown>, where: string): FaultAction {
  switch (kind) {
    case "drop":
      return { kind };
    case "duplicate":
      return { kind, copies: integer(r["copies"] ?? 1, `${where}.copies`, 1, 100) };
    case "delay":
      return { kind, ms: integer(r["ms"], `${where}.ms`, 1, 600_000) };
    case "reorder":
      return {
        kind,
        after: integer(r["after"] ?? 1, `${where}.after`, 1, 1000),
        maxMs: integer(r["maxMs"] ?? 1000, `${where}.maxMs`, 1, 600_000),
      };
    case "corrupt": {
      const target = parseTarget(r["field"], `${where}.field`);
      const ops = (["set", "xor", "add"] as const).filter((k) => r[k] !== undefined);
      if (ops.length > 1) bad(where, "give one of set, xor, add");
      const op = ops[0] ?? "xor";
      const width = target.at === "field" ? FAULT_FIELDS[target.field].width : 1;
      const max = width === 4 ? 0xffffffff : width === 2 ? 0xffff : 0xff;
      const value = integer(r[op] ?? max, `${where}.${op}`, 0, max);
      const isChecksum = target.at === "field" && target.field.endsWith(".checksum");
      const checksum = oneOf(r["checksum"] ?? (isChecksum ? "keep" : "fix"), `${where}.checksum`, [
        "fix",
        "keep",
      ]);
      if (isChecksum && checksum === "fix") {
        bad(`${where}.checksum`, "fix would undo a corrupted checksum field; use keep");
      }
      return { kind, target, op, value, checksum };
    }
    case "truncate": {
      if ((r["to"] === undefined) === (r["by"] === undefined)) bad(where, "give one of to, by");
      const to = r["to"] === undefined ? 0 : integer(r["to"], `${where}.to`, 1, 65535);
      const by = r["by"] === undefined ? 0 : integer(r["by"], `${where}.by`, 1, 65535);
      const lengths = oneOf(r["lengths"] ?? "keep", `${where}.lengths`, ["fix", "keep"]);
      return { kind, to, by, lengths };
    }
  }
}

/**
 * `tcp.seq` (FAULT_FIELDS), `tcp-option:KIND:BYTE`, `ip-option:KIND:BYTE`,
 * `payload:BYTE`, `byte:OFFSET` (from the start of the IP header).
 */
export function parseTarget(v: unknown, where: string): CorruptTarget {
  if (typeof v !== "string") bad(where, "names what to corrupt, e.g. tcp.seq or tcp-option:254:2");
  if (v in FAULT_FIELDS) return { at: "field", field: v as FaultField };
  const parts = v.split(":");
  const num = (s: string | undefined, max: number, what: string): number => {
    if (s === undefined || !/^\d+$/.test(s) || Number(s) > max) {
      bad(where, `${JSON.stringify(v)}: ${what} must be an integer from 0 to ${max}`);
    }
    return Number(s);
  };
  const [at] = parts;
  if ((at === "tcp-option" || at === "ip-option") && parts.length === 3) {
    return { at, kind: num(parts[1], 255, "the option kind"), byte: num(parts[2], 39, "the byte") };
  }
  if ((at === "payload" || at === "byte") && parts.length === 2) {
    return { at, byte: num(parts[1], 65534, "the offset") };
  }
  return bad(
    where,
    `${JSON.stringify(v)} is not ${Object.keys(FAULT_FIELDS).join(", ")}, tcp-option:KIND:BYTE, ip-option:KIND:BYTE, payload:N or byte:N`,
  );
}

/**
 * The whole fault configuration from its plain form:
 * `{"rules": [...], "mtu": {"server": 1400}, "seed": 7}`.
 */
export function parseFaultConfig(raw: unknown, where = "faults"): FaultConfig {
  if (raw === undefined) return NO_FAULTS;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    bad(where, 'an object: {"rules": [...], "mtu": {...}, "seed": N}');
  }
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (k !== "rules" && k !== "mtu" && k !== "seed") bad(`${where}.${k}`, "unknown key");
  }
  const rulesRaw = r["rules"] ?? [];
  if (!Array.isArray(rulesRaw)) bad(`${where}.rules`, "a list of fault rules");
  const rules = rulesRaw.map((x, i) => parseFaultRule(x, `${where}.rules[${i}]`));
  return {
    rules,
    mtu: parseMtu(r["mtu"], `${where}.mtu`),
    seed: integer(r["seed"] ?? 1, `${where}.seed`, 0, 0xffffffff),
  };
}

function parseMtu(raw: unknown, where: string): FaultConfig["mtu"] {
  if (raw === undefined) return { client: 0, server: 0 };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    bad(where, 'an object: {"client": N, "server": N}');
  }
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (k !== "client" && k !== "server") bad(`${where}.${k}`, "unknown key (client, server)");
  }
  // 68: the smallest MTU IPv4 allows (IPv6 wants 1280, but a v4-only test may go lower).
  const side = (v: unknown, w: string) => (v === undefined ? 0 : integer(v, w, 68, 65535));
  return {
    client: side(r["client"], `${where}.client`),
    server: side(r["server"], `${where}.server`),
  };
}
