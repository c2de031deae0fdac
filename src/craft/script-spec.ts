import { GatewayError } from "../fullnat-sim/errors.js";
import {
  type Endpoint,
  familyOf,
  formatIp,
  type IpAddress,
  parseEndpoint,
  parseIp,
} from "../option-codec/address.js";
import { readU32 } from "../option-codec/bytes.js";
import { CodecError } from "../option-codec/errors.js";
import type { ScriptSpec } from "./scripted-clients.js";
import { LINUX_SEGMENT, LINUX_SYN, parseSegmentOptions } from "./segment-options.js";

/**
 * A scripted-client run from its plain form (a scenario's "scripted"
 * action, `toasim client run`'s flags, the control socket):
 *   {"target": "[2001:db8:f::10]:80", "from": "2001:db8:c:5c::1",
 *    "sources": 10000, "connections": 100000, "concurrency": 256,
 *    "rate": 0, "request": "hello\n", "syn": [...], "ack": [...],
 *    "segment": [...], "dataOnAck": false, "timeoutMs": 10000,
 *    "expectPeer": true, "portBase": 20000}
 * Sources stay inside the client ranges (198.51.100.0/24,
 * 2001:db8:c::/48): documentation addresses only.
 */

export const SCRIPT_DEFAULTS = {
  from4: "198.51.100.128",
  from6: "2001:db8:c:5c::1",
  portBase: 20000,
  concurrency: 256,
  timeoutMs: 10_000,
  request: "toasim scripted client\n",
} as const;

const KEYS = new Set([
  "target",
  "from",
  "sources",
  "connections",
  "concurrency",
  "rate",
  "request",
  "syn",
  "ack",
  "segment",
  "dataOnAck",
  "timeoutMs",
  "expectPeer",
  "portBase",
]);

function bad(where: string, message: string): never {
  throw new GatewayError("BAD_CONFIG", `${where}: ${message}`);
}

function int(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    bad(where, `${JSON.stringify(v)} is not an integer from ${min} to ${max}`);
  return v;
}

function bool(v: unknown, where: string): boolean {
  if (typeof v !== "boolean") bad(where, `${JSON.stringify(v)} is not true or false`);
  return v;
}

function words(v: unknown, where: string, dflt: readonly string[]): readonly unknown[] {
  if (v === undefined) return dflt;
  if (!Array.isArray(v)) bad(where, 'a list of option words, e.g. ["mss:1460", "ts"]');
  return v;
}

export function parseScriptSpec(raw: unknown, where = "scripted"): ScriptSpec {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) bad(where, "an object");
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!KEYS.has(k)) bad(`${where}.${k}`, "unknown key");
  if (typeof r["target"] !== "string") bad(`${where}.target`, "the VIP, ADDR:PORT or [V6]:PORT");
  let target: Endpoint;
  try {
    target = parseEndpoint(r["target"]);
  } catch (e) {
    if (e instanceof CodecError)
      bad(`${where}.target`, `${JSON.stringify(r["target"])} is not ADDR:PORT or [V6]:PORT`);
    throw e;
  }
  const family = familyOf(target.addr);
  const fromText = r["from"] ?? (family === 4 ? SCRIPT_DEFAULTS.from4 : SCRIPT_DEFAULTS.from6);
  if (typeof fromText !== "string") bad(`${where}.from`, "the first source address");
  let base: IpAddress;
  try {
    base = parseIp(fromText);
  } catch (e) {
    if (e instanceof CodecError)
      bad(`${where}.from`, `${JSON.stringify(fromText)} is not an IP address`);
    throw e;
  }
  if (familyOf(base) !== family)
    bad(`${where}.from`, `${fromText} is not of the target's family (IPv${family})`);
  const sources = int(r["sources"] ?? 1, `${where}.sources`, 1, 1_000_000);
  checkRange(base, sources, `${where}.from`);
  const connections = int(r["connections"] ?? sources, `${where}.connections`, 1, 10_000_000);
  const portBase = int(r["portBase"] ?? SCRIPT_DEFAULTS.portBase, `${where}.portBase`, 1024, 65535);
  const perSource = Math.ceil(connections / sources);
  if (portBase + perSource - 1 > 65535) {
    bad(
      `${where}.connections`,
      `${connections} connections from ${sources} sources need ${perSource} ports each from ${portBase}; use more sources`,
    );
  }
  const request = r["request"] ?? SCRIPT_DEFAULTS.request;
  if (typeof request !== "string" || request.length === 0 || request.length > 1200)
    bad(`${where}.request`, "a string of 1 to 1200 characters");
  const enc = new TextEncoder().encode(request);
  const seg = parseSegmentOptions(words(r["segment"], `${where}.segment`, []), `${where}.segment`);
  return {
    target,
    base,
    count: sources,
    portBase,
    connections,
    concurrency: int(
      r["concurrency"] ?? SCRIPT_DEFAULTS.concurrency,
      `${where}.concurrency`,
      1,
      65536,
    ),
    rate: int(r["rate"] ?? 0, `${where}.rate`, 0, 10_000_000),
    request: enc,
    synOptions: parseSegmentOptions(
      words(r["syn"], `${where}.syn`, ["mss:1460", "sack-perm", "nop", "ws:7"]),
      `${where}.syn`,
    ),
    ackOptions:
      r["ack"] === undefined
        ? seg
        : parseSegmentOptions(words(r["ack"], `${where}.ack`, []), `${where}.ack`),
    segmentOptions: seg,
    dataOnAck: bool(r["dataOnAck"] ?? false, `${where}.dataOnAck`),
    timeoutMs: int(r["timeoutMs"] ?? SCRIPT_DEFAULTS.timeoutMs, `${where}.timeoutMs`, 100, 600_000),
    expectPeer: bool(r["expectPeer"] ?? true, `${where}.expectPeer`),
  };
}

/** Option words of a Linux client with timestamps, for `syn`/`segment`. */
export const LINUX_OPTIONS = { syn: LINUX_SYN, segment: LINUX_SEGMENT } as const;

/** All sources inside 198.51.100.0/24 or 2001:db8:c::/48. */
function checkRange(base: IpAddress, count: number, where: string): void {
  const last = readU32(base, base.length - 4) + count - 1;
  if (base.length === 4) {
    const ok =
      base[0] === 198 &&
      base[1] === 51 &&
      base[2] === 100 &&
      last <= readU32(Uint8Array.of(198, 51, 100, 255), 0);
    if (!ok)
      bad(where, `${count} sources from ${formatIp(base)} leave 198.51.100.0/24, the client range`);
    return;
  }
  const prefix = [0x20, 0x01, 0x0d, 0xb8, 0, 0x0c];
  if (!prefix.every((b, i) => base[i] === b) || last > 0xffffffff) {
    bad(where, `${count} sources from ${formatIp(base)} leave 2001:db8:c::/48, the client range`);
  }
}
