import type { Command } from "commander";
import { PACKET_CLASS_NAMES } from "../fullnat-sim/packet-class.js";
import { CliError } from "./errors.js";
import { helpList } from "./help-text.js";

// `--fault SPEC`: one rule in one word, the same rule a scenario file or a
// config file writes as an object (the API reads both forms).

export interface FaultFlags {
  fault?: string[];
  linkMtu?: string;
  faultSeed?: string;
}

/** The rule syntax of --fault, wrapped to `width`. */
export function faultSpecHelp(width: number): string {
  return [
    "Fault rules (--fault, repeatable):",
    "  DIRECTION:CLASS[+CLASS...]:ACTION[=ARG][,KEY=VALUE...]",
    helpList(
      "Where",
      [
        ["DIRECTION", "to-server, to-client, both"],
        [
          "CLASS",
          `any, ${Object.keys(PACKET_CLASS_NAMES).join(", ")} (a packet must have every class listed; toa: it carries the client address the gateway inserted, TOA, UOA or PROXY/SPP header)`,
        ],
        [
          "ACTION",
          "drop | duplicate[=COPIES] | delay=MS | reorder[=AFTER][,maxMs=MS] | corrupt=FIELD[,set=N|xor=N|add=N][,checksum=fix|keep] | truncate=BYTES | truncate,by=BYTES [,lengths=fix|keep]",
        ],
        [
          "FIELD",
          "ip.tos ip.id ip.ttl tcp.sport tcp.dport tcp.seq tcp.ack tcp.offset tcp.flags tcp.window tcp.checksum tcp.urgent udp.sport udp.dport udp.length udp.checksum, tcp-option:KIND:BYTE, ip-option:KIND:BYTE, payload:N, byte:N (from the IP header)",
        ],
        [
          "KEYS",
          "skip=N (let N matching packets pass first), count=N (act on N), probability=P (seeded by --fault-seed), first=N (UDP: the first N of a flow)",
        ],
        [
          "--link-mtu",
          "client=N,server=N drops longer packets on that link, as a router with DF set would (toasim sends no ICMP for them, as DPVS does not)",
        ],
      ],
      width,
    ),
  ].join("\n");
}

export function addFaultOptions(cmd: Command): Command {
  return cmd
    .option("--fault <spec...>", "a fault rule (see below), repeatable")
    .option("--link-mtu <sides>", "client=N,server=N: the links' MTU, longer packets dropped")
    .option("--fault-seed <n>", "seed for probability= rules (default 1)");
}

/** `client=1400,server=1280` as the plain mtu object. */
function linkMtu(text: string): Record<string, number> {
  const o: Record<string, number> = {};
  for (const kv of text.split(",")) {
    const m = /^(client|server)=(\d+)$/.exec(kv.trim());
    if (!m) throw new CliError("BAD_FLAG", "--link-mtu", `"${kv}" is not client=N or server=N`);
    o[m[1]!] = Number(m[2]);
  }
  return o;
}

/**
 * The faults the flags ask for, on top of `file` (the "faults" object of a
 * config or rules file): the file's rules first, then the flags'. Undefined
 * when no fault flag was given (the file's faults stand as they are).
 */
export function faultsOf(f: FaultFlags, file: unknown): Record<string, unknown> | undefined {
  if (f.fault === undefined && f.linkMtu === undefined && f.faultSeed === undefined)
    return undefined;
  const base =
    typeof file === "object" && file !== null && !Array.isArray(file)
      ? (file as Record<string, unknown>)
      : {};
  const plain: Record<string, unknown> = { ...base };
  if (f.fault !== undefined) {
    const fileRules = Array.isArray(base["rules"]) ? base["rules"] : [];
    plain["rules"] = [...fileRules, ...f.fault];
  }
  if (f.linkMtu !== undefined) plain["mtu"] = linkMtu(f.linkMtu);
  if (f.faultSeed !== undefined) {
    if (!/^\d+$/.test(f.faultSeed))
      throw new CliError("BAD_FLAG", "--fault-seed", `"${f.faultSeed}" is not a number`);
    plain["seed"] = Number(f.faultSeed);
  }
  return plain;
}

/** How many of the rules in `faults` came from a file (their errors blame the file). */
export function fileRuleCount(file: unknown): number {
  const rules = (file as { rules?: unknown } | undefined)?.rules;
  return Array.isArray(rules) ? rules.length : 0;
}
