import type { Command } from "commander";
import { GatewayError } from "../fullnat-sim/errors.js";
import { type FaultConfig, parseFaultConfig } from "../fullnat-sim/faults.js";
import { PACKET_CLASS_NAMES } from "../fullnat-sim/packet-class.js";
import { CliError } from "./errors.js";

// `--fault SPEC`: one rule in one word, the same rule a scenario file or a
// config file writes as an object.

export interface FaultFlags {
  fault?: string[];
  linkMtu?: string;
  faultSeed?: string;
}

/** The shorthand argument of each action (`delay=200` is `delay, ms=200`). */
const SHORTHAND = {
  duplicate: "copies",
  delay: "ms",
  reorder: "after",
  corrupt: "field",
  truncate: "to",
} as const;

export const FAULT_SPEC_HELP =
  "Fault rules (--fault, repeatable): DIRECTION:CLASS[+CLASS...]:ACTION[=ARG][,KEY=VALUE...]\n" +
  "  DIRECTION  to-server, to-client, both\n" +
  `  CLASS      any, ${Object.keys(PACKET_CLASS_NAMES).join(", ")}\n` +
  "             (a packet must have every class listed; toa: carries the client address\n" +
  "             the gateway inserted, TOA, UOA or PROXY/SPP header)\n" +
  "  ACTION     drop | duplicate[=COPIES] | delay=MS | reorder[=AFTER][,maxMs=MS]\n" +
  "             | corrupt=FIELD[,set=N|xor=N|add=N][,checksum=fix|keep]\n" +
  "             | truncate=BYTES | truncate,by=BYTES [,lengths=fix|keep]\n" +
  "  FIELD      ip.tos ip.id ip.ttl tcp.sport tcp.dport tcp.seq tcp.ack tcp.offset\n" +
  "             tcp.flags tcp.window tcp.checksum tcp.urgent udp.sport udp.dport\n" +
  "             udp.length udp.checksum, tcp-option:KIND:BYTE, ip-option:KIND:BYTE,\n" +
  "             payload:N, byte:N (from the IP header)\n" +
  "  KEYS       skip=N (let N matching packets pass first), count=N (act on N),\n" +
  "             probability=P (seeded by --fault-seed), first=N (UDP: first N of a flow)\n" +
  "--link-mtu client=N,server=N drops longer packets on that link, as a router with\n" +
  "DF set would (toasim sends no ICMP for them, as DPVS does not).";

export function addFaultOptions(cmd: Command): Command {
  return cmd
    .option("--fault <spec...>", "a fault rule (see below), repeatable")
    .option("--link-mtu <sides>", "client=N,server=N: the links' MTU, longer packets dropped")
    .option("--fault-seed <n>", "seed for probability= rules", "1");
}

/** One `--fault` word as the plain rule object that parseFaultRule reads. */
export function faultSpecToRule(spec: string): Record<string, unknown> {
  const [head = "", ...keys] = spec.split(",");
  const parts = head.split(":");
  if (parts.length < 3) {
    throw new CliError(
      "BAD_FLAG",
      "--fault",
      `"${spec}" is not DIRECTION:CLASS:ACTION[=ARG][,KEY=VALUE...] (e.g. to-server:handshake-ack:drop,count=1)`,
    );
  }
  const [direction, cls] = parts as [string, string];
  const actionWord = parts.slice(2).join(":");
  const eq = actionWord.indexOf("=");
  const action = eq < 0 ? actionWord : actionWord.slice(0, eq);
  const rule: Record<string, unknown> = {
    direction,
    class: cls.includes("+") ? cls.split("+") : cls,
    action,
  };
  if (eq >= 0) {
    const key = SHORTHAND[action as keyof typeof SHORTHAND];
    if (key === undefined) {
      throw new CliError("BAD_FLAG", "--fault", `"${spec}": action ${action} takes no =ARG`);
    }
    rule[key] = value(actionWord.slice(eq + 1));
  }
  for (const kv of keys) {
    const i = kv.indexOf("=");
    if (i <= 0) throw new CliError("BAD_FLAG", "--fault", `"${spec}": "${kv}" is not KEY=VALUE`);
    rule[kv.slice(0, i)] = value(kv.slice(i + 1));
  }
  return rule;
}

function value(text: string): unknown {
  if (/^(0|[1-9]\d*)$/.test(text) || /^0x[0-9a-fA-F]+$/.test(text)) return Number(text);
  if (/^\d*\.\d+$/.test(text)) return Number(text);
  return text;
}

/** `client=1400,server=1280` as the plain mtu object. */
function linkMtu(text: string): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const kv of text.split(",")) {
    const m = /^(client|server)=(\d+)$/.exec(kv.trim());
    if (!m) {
      throw new CliError("BAD_FLAG", "--link-mtu", `"${kv}" is not client=N or server=N`);
    }
    o[m[1]!] = Number(m[2]);
  }
  return o;
}

/**
 * The fault configuration from the flags, on top of `file` (the "faults"
 * object of a config file): rules from both, flags last. Null when no
 * fault of any kind is asked for, so the gateway runs without the stage.
 */
export function faultsFrom(
  f: FaultFlags,
  file?: unknown,
  fileFlag = "--config",
): FaultConfig | null {
  const { plain, fileRules } = faultsPlain(f, file, fileFlag);
  let config: FaultConfig;
  try {
    config = parseFaultConfig(plain);
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    // Blame the flag the bad value came from.
    const rule = /^faults\.rules\[(\d+)\]/.exec(e.message);
    let flag = fileFlag;
    if (rule && Number(rule[1]) >= fileRules) flag = "--fault";
    else if (e.message.startsWith("faults.mtu") && f.linkMtu !== undefined) flag = "--link-mtu";
    else if (e.message.startsWith("faults.seed") && f.faultSeed !== undefined)
      flag = "--fault-seed";
    throw new CliError("BAD_FLAG", flag, e.message);
  }
  const none = config.rules.length === 0 && config.mtu.client === 0 && config.mtu.server === 0;
  return none ? null : config;
}

/**
 * The plain form of the faults the flags and `file` ask for (what a
 * running instance is sent), and how many of its rules came from `file`.
 */
export function faultsPlain(
  f: FaultFlags,
  file?: unknown,
  fileFlag = "--config",
): { plain: Record<string, unknown>; fileRules: number } {
  if (file !== undefined && (typeof file !== "object" || file === null || Array.isArray(file))) {
    throw new CliError("BAD_FLAG", fileFlag, 'faults must be an object {"rules": [...], ...}');
  }
  const plain: Record<string, unknown> = { ...(file as Record<string, unknown> | undefined) };
  const flagRules = (f.fault ?? []).map(faultSpecToRule);
  const fileRules = plain["rules"] ?? [];
  if (flagRules.length > 0) {
    if (!Array.isArray(fileRules)) {
      throw new CliError("BAD_FLAG", fileFlag, "faults.rules must be a list");
    }
    plain["rules"] = [...fileRules, ...flagRules];
  }
  if (f.linkMtu !== undefined) plain["mtu"] = linkMtu(f.linkMtu);
  if (f.faultSeed !== undefined && f.faultSeed !== "1") plain["seed"] = value(f.faultSeed);
  return { plain, fileRules: Array.isArray(fileRules) ? fileRules.length : 0 };
}
