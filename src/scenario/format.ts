import { readFileSync } from "node:fs";
import { PROFILE_NAMES } from "../fullnat-sim/profiles.js";
import { ScenarioError } from "./errors.js";

/**
 * The scenario file: JSON (scenarios/scenario.schema.json describes it for
 * editors; this parser is what decides, and every error names the path of
 * the bad value). A scenario sets up a gateway and a server, plays steps
 * (real clients, scripted clients, faults switched on and off, a gateway
 * restart), and checks expectations on what the server saw and on the
 * counters. Its `bug` part is the same run with the gateway's fault
 * switched on: its own expectations describe the symptom, and `breaks`
 * lists the healthy expectations that must then fail.
 */

export type Reader = "node" | "python" | "c";

export interface TcpStep {
  readonly kind: "tcp";
  readonly to: string;
  readonly send: string;
  readonly as: string | null;
  /** Wait this long after connecting before sending (a connection held open). */
  readonly pauseMs: number;
  readonly timeoutS: number;
}

export interface UdpStep {
  readonly kind: "udp";
  readonly to: string;
  readonly send: string;
  readonly count: number;
  /** Client sockets (flows), each sending `count` datagrams. */
  readonly flows: number;
  readonly as: string | null;
  readonly timeoutS: number;
}

export type Step = (
  | TcpStep
  | UdpStep
  | { readonly kind: "scripted"; readonly spec: Record<string, unknown> }
  | { readonly kind: "faults"; readonly faults: unknown }
  | { readonly kind: "restart" }
  | { readonly kind: "sleep"; readonly ms: number }
) & {
  /** Run it without waiting; later steps go on at once (joined before the expectations). */
  readonly background: boolean;
};

export type Expectation =
  | {
      readonly kind: "peer";
      readonly step: number;
      /** client: the step's own source; gateway: a LIP; none: no report came back; else an address. */
      readonly peer: string;
      readonly text: string;
    }
  | {
      readonly kind: "report";
      readonly step: number;
      readonly path: string;
      readonly equals: unknown;
      readonly text: string;
    }
  | {
      readonly kind: "reports";
      readonly step: number;
      readonly min: number;
      readonly max: number;
      readonly text: string;
    }
  | {
      readonly kind: "scripted";
      readonly step: number;
      /** all: every connection matched; none: every one completed and none matched; N: at least N matched. */
      readonly matched: "all" | "none" | number;
      readonly text: string;
    }
  | {
      readonly kind: "send-errors";
      readonly step: number;
      /** An errno name (EPERM) the client's sendto calls failed with. */
      readonly errno: string;
      readonly min: number;
      readonly max: number;
      readonly text: string;
    }
  | {
      readonly kind: "counter";
      /** gateway.NAME, toa.NAME or uoa.NAME: the change over the run. */
      readonly counter: string;
      readonly min: number;
      readonly max: number;
      readonly text: string;
    };

/**
 * Connection tracking in the client namespace. nf_conntrack_max is one
 * value for the whole machine (read-only inside a namespace), so the full
 * table is an nftables rule: a packet that would add an entry once `table`
 * flows are tracked is dropped where conntrack drops it when its table is
 * full (a sendto then fails with EPERM). `notrack`: the service ports
 * whose traffic a raw-table NOTRACK rule keeps out of the table.
 */
export interface Conntrack {
  readonly table: number;
  readonly notrack: readonly number[];
}

export interface Variant {
  readonly profile: string;
  readonly settings: Readonly<Record<string, string>>;
  readonly faults: unknown;
  readonly decoder: "yes" | "none";
  readonly sysctl: Readonly<Record<string, string>>;
  /** null: the client namespace tracks nothing. */
  readonly conntrack: Conntrack | null;
  readonly expect: readonly Expectation[];
}

export interface Scenario {
  readonly file: string;
  readonly name: string;
  readonly symptom: string;
  readonly fix: string;
  readonly services: readonly string[];
  readonly reader: Reader;
  readonly tcp: readonly string[];
  readonly udp: readonly string[];
  readonly steps: readonly Step[];
  readonly healthy: Variant;
  /** The gateway's fault switched on, or null when the scenario has none. */
  readonly bug: (Variant & { readonly breaks: readonly number[] }) | null;
}

type Obj = Record<string, unknown>;

function bad(where: string, message: string): never {
  throw new ScenarioError("BAD_SCENARIO", `${where}: ${message}`);
}

function obj(v: unknown, where: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) bad(where, "must be an object");
  return v as Obj;
}

function keys(o: Obj, where: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) bad(`${where}.${k}`, `unknown key (known: ${allowed.join(", ")})`);
  }
}

function str(v: unknown, where: string, dflt?: string): string {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== "string" || v === "") bad(where, "must be a non-empty string");
  return v;
}

function int(v: unknown, where: string, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    bad(where, `${JSON.stringify(v)} is not an integer from ${min} to ${max}`);
  return v;
}

function strings(v: unknown, where: string, dflt: readonly string[]): readonly string[] {
  if (v === undefined) return dflt;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
    bad(where, "must be a list of strings");
  return v as string[];
}

function stringMap(v: unknown, where: string): Record<string, string> {
  if (v === undefined) return {};
  const o = obj(v, where);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(o)) {
    if (typeof x !== "string" && typeof x !== "number")
      bad(`${where}.${k}`, "must be a string or a number");
    out[k] = String(x);
  }
  return out;
}

const TOP = [
  "$schema",
  "name",
  "symptom",
  "fix",
  "profile",
  "settings",
  "services",
  "decoder",
  "server",
  "rs",
  "client",
  "faults",
  "steps",
  "expect",
  "bug",
];
const STEP_KINDS = ["tcp", "udp", "scripted", "faults", "restart", "sleep"] as const;

export function readScenario(file: string): Scenario {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ScenarioError("IO", `cannot read ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ScenarioError("BAD_SCENARIO", `${file}: not JSON: ${(e as Error).message}`);
  }
  return parseScenario(raw, file);
}

export function parseScenario(raw: unknown, file: string): Scenario {
  const o = obj(raw, file);
  keys(o, file, TOP);
  const name = str(o["name"], `${file}: name`);
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name))
    bad(`${file}: name`, "lower-case letters, digits and dashes");
  const server = obj(o["server"] ?? {}, `${file}: server`);
  keys(server, `${file}: server`, ["reader", "tcp", "udp"]);
  const reader = str(server["reader"], `${file}: server.reader`, "node");
  if (!["node", "python", "c"].includes(reader))
    bad(`${file}: server.reader`, `"${reader}" is not node, python or c`);
  const stepsRaw = o["steps"];
  if (!Array.isArray(stepsRaw) || stepsRaw.length === 0)
    bad(`${file}: steps`, "must be a non-empty list");
  const steps = stepsRaw.map((s, i) => parseStep(s, `${file}: steps[${i}]`));
  const healthy = parseVariant(o, file, steps, null);
  let bug: Scenario["bug"] = null;
  if (o["bug"] !== undefined) {
    const b = obj(o["bug"], `${file}: bug`);
    keys(b, `${file}: bug`, [
      "profile",
      "settings",
      "faults",
      "decoder",
      "rs",
      "client",
      "expect",
      "breaks",
    ]);
    const v = parseVariant(b, `${file}: bug`, steps, healthy);
    const breaks = b["breaks"] ?? [];
    if (
      !Array.isArray(breaks) ||
      !breaks.every((x) => Number.isInteger(x) && x >= 0 && x < healthy.expect.length)
    )
      bad(`${file}: bug.breaks`, `must list indexes of expect (0 to ${healthy.expect.length - 1})`);
    bug = { ...v, breaks: breaks as number[] };
  }
  return {
    file,
    name,
    symptom: str(o["symptom"], `${file}: symptom`),
    fix: typeof o["fix"] === "string" ? o["fix"] : "",
    services: strings(o["services"], `${file}: services`, []),
    reader: reader as Reader,
    tcp: strings(server["tcp"], `${file}: server.tcp`, ["[::]:8080"]),
    udp: strings(server["udp"], `${file}: server.udp`, []),
    steps,
    healthy,
    bug,
  };
}

/** The parts a bug variant may change; what it leaves out it takes from `base`. */
function parseVariant(
  o: Obj,
  where: string,
  steps: readonly Step[],
  base: Variant | null,
): Variant {
  const profile =
    o["profile"] === undefined && base ? base.profile : str(o["profile"], `${where}.profile`);
  if (!(PROFILE_NAMES as readonly string[]).includes(profile))
    bad(`${where}.profile`, `"${profile}" is not one of ${PROFILE_NAMES.join(", ")}`);
  const decoder =
    o["decoder"] === undefined ? (base?.decoder ?? "yes") : str(o["decoder"], `${where}.decoder`);
  if (decoder !== "yes" && decoder !== "none")
    bad(`${where}.decoder`, `"${decoder}" is not yes or none`);
  const rs = obj(o["rs"] ?? {}, `${where}.rs`);
  keys(rs, `${where}.rs`, ["sysctl"]);
  const sysctl =
    o["rs"] === undefined && base ? base.sysctl : stringMap(rs["sysctl"], `${where}.rs.sysctl`);
  for (const k of Object.keys(sysctl)) {
    if (!/^net\.[a-z0-9_.]+$/.test(k))
      bad(`${where}.rs.sysctl.${k}`, "only net.* settings of the server namespace");
  }
  const conntrack =
    o["client"] === undefined && base ? base.conntrack : parseClient(o["client"], where);
  const expectRaw = o["expect"];
  if (!Array.isArray(expectRaw) || expectRaw.length === 0)
    bad(`${where}.expect`, "must be a non-empty list");
  return {
    profile,
    settings:
      o["settings"] === undefined && base
        ? base.settings
        : stringMap(o["settings"], `${where}.settings`),
    faults: o["faults"] === undefined && base ? base.faults : o["faults"],
    decoder,
    sysctl,
    conntrack,
    expect: expectRaw.map((e, i) => parseExpectation(e, `${where}.expect[${i}]`, steps)),
  };
}

function parseClient(raw: unknown, where: string): Conntrack | null {
  const c = obj(raw ?? {}, `${where}.client`);
  keys(c, `${where}.client`, ["conntrack"]);
  if (c["conntrack"] === undefined) return null;
  const w = `${where}.client.conntrack`;
  const t = obj(c["conntrack"], w);
  keys(t, w, ["table", "notrack"]);
  if (t["table"] === undefined) bad(`${w}.table`, "is required (how many flows the table holds)");
  const notrack = t["notrack"] ?? [];
  if (
    !Array.isArray(notrack) ||
    !notrack.every((p) => Number.isInteger(p) && (p as number) >= 1 && (p as number) <= 65535)
  )
    bad(`${w}.notrack`, "must be a list of ports (1 to 65535)");
  return { table: int(t["table"], `${w}.table`, 0, 1, 1_000_000), notrack: notrack as number[] };
}

function parseStep(raw: unknown, where: string): Step {
  const o = obj(raw, where);
  const kind = STEP_KINDS.find((k) => k in o);
  if (kind === undefined) bad(where, `needs one of ${STEP_KINDS.join(", ")}`);
  keys(o, where, [kind, "background", "comment"]);
  const background = o["background"] === undefined ? false : o["background"] === true;
  const v = o[kind];
  const w = `${where}.${kind}`;
  switch (kind) {
    case "tcp": {
      const t = obj(v, w);
      keys(t, w, ["to", "send", "repeat", "as", "pauseMs", "timeoutS"]);
      const repeat = int(t["repeat"], `${w}.repeat`, 1, 1, 1_000_000);
      return {
        kind,
        background,
        to: str(t["to"], `${w}.to`),
        send: str(t["send"], `${w}.send`, "hello\n").repeat(repeat),
        as: typeof t["as"] === "string" ? t["as"] : null,
        pauseMs: int(t["pauseMs"], `${w}.pauseMs`, 0, 0, 60_000),
        timeoutS: int(t["timeoutS"], `${w}.timeoutS`, 5, 1, 120),
      };
    }
    case "udp": {
      const t = obj(v, w);
      keys(t, w, ["to", "send", "count", "flows", "as", "timeoutS"]);
      return {
        kind,
        background,
        to: str(t["to"], `${w}.to`),
        send: str(t["send"], `${w}.send`, "hello"),
        count: int(t["count"], `${w}.count`, 1, 1, 10_000),
        flows: int(t["flows"], `${w}.flows`, 1, 1, 1_000),
        as: typeof t["as"] === "string" ? t["as"] : null,
        timeoutS: int(t["timeoutS"], `${w}.timeoutS`, 3, 1, 120),
      };
    }
    case "scripted":
      return { kind, background, spec: obj(v, w) };
    case "faults":
      return { kind, background, faults: v };
    case "restart":
      if (v !== true) bad(w, "must be true");
      return { kind, background };
    case "sleep":
      return { kind, background, ms: int(v, w, 0, 1, 600_000) };
  }
}

function parseExpectation(raw: unknown, where: string, steps: readonly Step[]): Expectation {
  const o = obj(raw, where);
  const text = typeof o["say"] === "string" ? o["say"] : "";
  const step = (): number => {
    const i = int(o["step"], `${where}.step`, -1, 0, steps.length - 1);
    if (i < 0) bad(`${where}.step`, "must name a step by its index");
    return i;
  };
  const bounds = (): { min: number; max: number } => {
    if (o["equals"] !== undefined) {
      const n = int(o["equals"], `${where}.equals`, 0, 0, Number.MAX_SAFE_INTEGER);
      return { min: n, max: n };
    }
    return {
      min: int(o["min"], `${where}.min`, 0, 0, Number.MAX_SAFE_INTEGER),
      max: int(o["max"], `${where}.max`, Number.MAX_SAFE_INTEGER, 0, Number.MAX_SAFE_INTEGER),
    };
  };
  if ("peer" in o) {
    keys(o, where, ["step", "peer", "say"]);
    const i = step();
    const k = steps[i]!.kind;
    if (k !== "tcp" && k !== "udp")
      bad(`${where}.step`, `step ${i} is a ${k} step; peer checks tcp and udp steps`);
    return { kind: "peer", step: i, peer: str(o["peer"], `${where}.peer`), text };
  }
  if ("report" in o) {
    keys(o, where, ["step", "report", "equals", "say"]);
    return {
      kind: "report",
      step: step(),
      path: str(o["report"], `${where}.report`),
      equals: o["equals"],
      text,
    };
  }
  if ("reports" in o) {
    keys(o, where, ["step", "reports", "say"]);
    const r = obj(o["reports"], `${where}.reports`);
    keys(r, `${where}.reports`, ["min", "max", "equals"]);
    let b: { min: number; max: number };
    if (r["equals"] !== undefined) {
      const n = int(r["equals"], `${where}.reports.equals`, 0, 0, 1e9);
      b = { min: n, max: n };
    } else {
      b = {
        min: int(r["min"], `${where}.reports.min`, 0, 0, 1e9),
        max: int(r["max"], `${where}.reports.max`, 1e9, 0, 1e9),
      };
    }
    return { kind: "reports", step: step(), ...b, text };
  }
  if ("scripted" in o) {
    keys(o, where, ["step", "scripted", "say"]);
    const i = step();
    if (steps[i]!.kind !== "scripted") bad(`${where}.step`, `step ${i} is not a scripted step`);
    const m = o["scripted"];
    if (m !== "all" && m !== "none" && !(typeof m === "number" && Number.isInteger(m) && m >= 0))
      bad(`${where}.scripted`, 'must be "all", "none" or how many connections must match');
    return { kind: "scripted", step: i, matched: m as "all" | "none" | number, text };
  }
  if ("sendErrors" in o) {
    keys(o, where, ["step", "sendErrors", "min", "max", "equals", "say"]);
    const i = step();
    if (steps[i]!.kind !== "udp") bad(`${where}.step`, `step ${i} is not a udp step`);
    const errno = str(o["sendErrors"], `${where}.sendErrors`);
    if (!/^E[A-Z0-9]+$/.test(errno)) bad(`${where}.sendErrors`, `"${errno}" is not an errno name`);
    return { kind: "send-errors", step: i, errno, ...bounds(), text };
  }
  if ("counter" in o) {
    keys(o, where, ["counter", "min", "max", "equals", "say"]);
    const c = str(o["counter"], `${where}.counter`);
    if (!/^(gateway|toa|uoa)\.[A-Za-z0-9_]+$/.test(c))
      bad(`${where}.counter`, `"${c}" is not gateway.NAME, toa.NAME or uoa.NAME`);
    return { kind: "counter", counter: c, ...bounds(), text };
  }
  return bad(where, "needs one of peer, report, reports, scripted, sendErrors, counter");
}
