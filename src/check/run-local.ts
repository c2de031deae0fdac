import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { release } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { Capture, Instance } from "../api/instance.js";
import { profileOf, type RsNetns } from "../api/options.js";
import type { NsProcess } from "../api/process.js";
import { up } from "../api/up.js";
import { SCRIPT_DEFAULTS } from "../craft/script-spec.js";
import { unsupportedFlow } from "../fullnat-sim/flow-support.js";
import type { Profile, ProfileName } from "../fullnat-sim/profiles.js";
import { ToaLayout } from "../option-codec/toa.js";
import { shippedPath } from "../package-files.js";
import { CASES, type CheckCase } from "./cases.js";
import type { ClientJob, ClientLine } from "./client.js";
import { explain } from "./findings.js";
import { judge, readersFor } from "./judge.js";
import { type CaseResult, type Family, placementOf, type ReaderName } from "./result.js";

/**
 * Runs the battery on this machine: an instance per profile and gateway
 * setting, the Node reader server on its server side, each case's client,
 * captures of both sides, and a verdict per reader. Inside `toasim vm`
 * this is what runs on the guest's kernel, with the module loaded.
 */

export interface LocalCheckOptions {
  readonly profiles: readonly ProfileName[];
  /** Case ids (default: all). */
  readonly cases?: readonly string[];
  readonly families?: readonly Family[];
  /** Readers to judge (default: all that apply). */
  readonly readers?: readonly ReaderName[];
  /** The instance's decoder: auto (the eBPF decoder unless a module decodes), ebpf, none. */
  readonly decoder: "auto" | "ebpf" | "none";
  /** What decodes, when the caller knows better (a vendor module toasim cannot name). */
  readonly decoderName?: string;
  /** The loaded module being checked (its map timeout is read, and lowered when it may be). */
  readonly moduleName?: string;
  /** Where the server runs: toasim's server namespace (the default) or the root namespace (in a guest). */
  readonly rsNetns?: RsNetns;
  /** pcaps go to DIR/pcaps/KERNEL[-root]/CASE-PROFILE-FAMILY-{client,server}.pcap; paths are relative to DIR. */
  readonly outDir: string;
  /** Which pcaps are kept: those of cases that did not pass (default), all, none. */
  readonly keepPcaps?: "failed" | "all" | "none";
  readonly onProgress?: (line: string) => void;
}

export interface LocalCheck {
  readonly kernel: string;
  /** What decoded. */
  readonly decoder: string;
  readonly cases: CaseResult[];
}

const VIP = {
  tcp: { v4: ["203.0.113.10", 80], v6: ["2001:db8:f::10", 80], nat64: ["2001:db8:f::64", 80] },
  udp: { v4: ["203.0.113.10", 53], v6: ["2001:db8:f::10", 53], nat64: ["2001:db8:f::64", 53] },
} as const;

/** The eBPF decoder's UOA timeout in the timeout case (the module's own is lowered to it when it may be). */
const EBPF_UOA_TIMEOUT_S = 2;
/** A module's map timeout longer than this is too long to wait for: the case says how to shorten it. */
const LONGEST_WAIT_S = 10;

const CLIENT_PROGRAM = fileURLToPath(new URL("./client.js", import.meta.url));

/** Does `c` apply to `profile`, and for which families? */
export function familiesOf(c: CheckCase, profile: Profile, wanted: readonly Family[]): Family[] {
  if (c.proto === "tcp" && profile.tcp?.carrier !== "toa") return [];
  if (c.proto === "udp" && profile.udp?.carrier !== "uoa") return [];
  if (c.needs?.dataCarry && !(profile.tcp?.carrier === "toa" && profile.tcp.carry.dataUntilAcked))
    return [];
  return c.families.filter((f) => {
    if (!wanted.includes(f)) return false;
    const cf = f === "v4" ? 4 : 6;
    const rf = f === "v6" ? 6 : 4;
    return unsupportedFlow(profile, c.proto, cf, rf) === null;
  });
}

interface Run {
  readonly c: CheckCase;
  readonly profile: Profile;
  readonly family: Family;
}

/**
 * The client address of the Nth run: a fresh one each time, so no run sees
 * another's state (sockets bind 198.51.100.20-119, scripted clients, which
 * need no address configured, 198.51.100.130-229).
 */
function sourceFor(n: number, family: Family, scripted: boolean): string {
  const k = (scripted ? 130 : 20) + (n % 100);
  return family === "v4" ? `198.51.100.${k}` : `2001:db8:c::${k.toString(16)}`;
}

/** The battery once per placement, one after the other; the results together. */
export async function checkPlacements(
  placements: readonly RsNetns[],
  run: (p: RsNetns) => Promise<LocalCheck>,
): Promise<LocalCheck> {
  const runs: LocalCheck[] = [];
  for (const p of placements) runs.push(await run(p));
  const first = runs[0];
  if (first === undefined) throw new Error("no placement to check");
  return { ...first, cases: runs.flatMap((r) => r.cases) };
}

export async function checkHere(o: LocalCheckOptions): Promise<LocalCheck> {
  const say = o.onProgress ?? (() => {});
  const kernel = release();
  const wantedFamilies = o.families ?? ["v4", "v6", "nat64"];
  const cases = o.cases === undefined ? CASES : CASES.filter((c) => o.cases!.includes(c.id));
  // The two placements' runs of a case must not share files.
  const pcapDir = join(o.outDir, "pcaps", o.rsNetns === "root" ? `${kernel}-root` : kernel);
  mkdirSync(pcapDir, { recursive: true });
  // One instance per profile and gateway settings: the settings are fixed at start.
  const groups = new Map<string, Run[]>();
  for (const name of o.profiles) {
    for (const c of cases) {
      let profile: Profile;
      try {
        profile = profileOf(name, c.settings ?? {});
      } catch {
        continue; // The case's settings do not apply to this profile (no UOA to move, say).
      }
      for (const family of familiesOf(c, profile, wantedFamilies)) {
        const key = `${name} ${JSON.stringify(c.settings ?? {})} ${JSON.stringify(c.timeouts ?? {})}`;
        groups.set(key, [...(groups.get(key) ?? []), { c, profile, family }]);
      }
    }
  }
  const results: CaseResult[] = [];
  const earlier = new Map<string, string>();
  let decoderName = "none";
  let n = 0;
  for (const runs of groups.values()) {
    const first = runs[0]!;
    say(
      `${first.profile.name}${first.c.settings ? ` ${JSON.stringify(first.c.settings)}` : ""}: ${runs.length} case runs`,
    );
    const inst = await up({
      rsNetns: o.rsNetns ?? "toasim",
      profile: first.profile.name,
      settings: (first.c.settings ?? {}) as never,
      ...(first.c.timeouts ? { timeouts: first.c.timeouts } : {}),
      // The eBPF decoder's UOA entries live as briefly as the gateway's flows here.
      decoder: first.c.timeouts
        ? { mode: o.decoder, uoaTimeoutSec: EBPF_UOA_TIMEOUT_S }
        : o.decoder,
    });
    decoderName = o.decoderName ?? inst.decoder;
    let server: NsProcess | null = null;
    try {
      server = await startReader(inst, o.outDir);
      for (const run of runs) {
        n++;
        say(`  ${run.c.id} ${run.family}`);
        results.push(
          ...(await runOne(inst, decoderName, server, run, n, kernel, pcapDir, o, earlier)),
        );
      }
    } finally {
      await server?.stop();
      await inst.stop();
    }
  }
  if (o.keepPcaps === "none") rmSync(pcapDir, { recursive: true, force: true });
  return { kernel, decoder: decoderName, cases: explain(results) };
}

/** The Node reader server on the default services' addresses, in the decoder's cgroup. */
async function startReader(inst: Instance, dir: string): Promise<NsProcess> {
  const ready = join(dir, `reader-${inst.id}.ready`);
  const p = inst.spawn("rs", [
    process.execPath,
    shippedPath("examples", "node/reader-server.mjs"),
    "--tcp",
    "192.0.2.10:8080",
    "--tcp",
    "[2001:db8:5::10]:8080",
    "--udp",
    "192.0.2.10:5353",
    "--udp",
    "[2001:db8:5::10]:5353",
    "--ready",
    ready,
  ]);
  const { existsSync } = await import("node:fs");
  for (let i = 0; i < 100 && !existsSync(ready); i++) {
    if (p.exitStatus !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  rmSync(ready, { force: true });
  if (p.exitStatus !== null || p.stderr.trim() !== "")
    throw new Error(`the reader server did not start: ${p.stderr.trim()}`);
  return p;
}

async function runOne(
  inst: Instance,
  decoder: string,
  server: NsProcess,
  run: Run,
  n: number,
  kernel: string,
  pcapDir: string,
  o: LocalCheckOptions,
  earlier: Map<string, string>,
): Promise<CaseResult[]> {
  const { c, profile, family } = run;
  const scripted = c.client.kind === "scripted" || c.client.kind === "storm";
  const source = sourceFor(n, family, scripted);
  const [vip, port] = VIP[c.proto][family];
  const payload = `toasim-check ${n} ${c.id}`;
  const base = `${c.id}-${profile.name}-${family}`;
  const paths = {
    client: join(pcapDir, `${base}-client.pcap`),
    server: join(pcapDir, `${base}-server.pcap`),
  };
  const caps: Capture[] = [];
  const restore: (() => Promise<unknown>)[] = [];
  let lines: ClientLine[] = [];
  let harness: string | null = null;
  let skip: string | null = null;
  let mapTimeout: MapTimeout = { seconds: EBPF_UOA_TIMEOUT_S };
  try {
    for (const [k, v] of Object.entries(c.sysctl ?? {})) {
      const was = (await inst.exec("rs", ["sysctl", "-n", k])).stdout.trim();
      await inst.exec("rs", ["sysctl", "-q", "-w", `${k}=${v}`]);
      restore.push(() => inst.exec("rs", ["sysctl", "-q", "-w", `${k}=${was}`]));
    }
    const rules = [
      ...(c.faults ?? []),
      ...(c.client.kind === "uoa-storm" ? uoaStormRules(c, family) : []),
    ];
    if (rules.length > 0) {
      await inst.setFaults({ rules });
      restore.push(() => inst.clearFaults());
    }
    if (c.client.kind === "datagrams" && c.client.idleAfter !== undefined) {
      mapTimeout = decoderMapTimeout(o, restore);
      if ("skip" in mapTimeout) skip = mapTimeout.skip;
    }
    if (skip !== null) throw new Skip();
    caps.push(await inst.capture({ side: "client", path: paths.client }));
    caps.push(await inst.capture({ side: "server", path: paths.server }));
    if (c.client.kind === "storm") {
      lines = await storm(inst, server, c.client, kindOf(profile), family, payload, source);
    } else if (c.client.kind === "scripted") {
      const kind = String(kindOf(profile));
      const fill = (w: readonly string[] | undefined) => w?.map((x) => x.replace("{kind}", kind));
      await inst.runClients({
        target: family === "v4" ? `${vip}:${port}` : `[${vip}]:${port}`,
        from: source,
        connections: 1,
        request: `${payload}#0\n`,
        expectPeer: false,
        timeoutMs: 5000,
        ...(c.client.syn ? { syn: fill(c.client.syn) } : {}),
        ...(c.client.ack ? { ack: fill(c.client.ack) } : {}),
        ...(c.client.segment ? { segment: fill(c.client.segment) } : {}),
      });
      const report = await findReport(server, `${payload}#0`);
      lines = [
        {
          clientPort: SCRIPT_DEFAULTS.portBase,
          index: 0,
          report,
          ...(report ? {} : { error: "no report" }),
        },
      ];
    } else {
      const job: ClientJob = {
        proto: c.proto,
        source,
        vip,
        port,
        payload,
        timeoutMs: 3000,
        ...(c.client.kind === "socket" && c.client.finWithData ? { finWithData: true } : {}),
        ...(c.client.kind === "socket" && c.client.connections
          ? { connections: c.client.connections }
          : {}),
        ...(c.client.kind === "datagrams" ? { datagrams: c.client.count } : {}),
        ...(c.client.kind === "uoa-storm"
          ? { datagrams: c.client.perPattern, flows: c.client.patterns.length + 1 }
          : {}),
        ...(c.client.kind === "datagrams" && c.client.idleAfter !== undefined
          ? { idleAfter: c.client.idleAfter, idleMs: idle(c, mapTimeout) }
          : {}),
      };
      const r = await inst.exec("client", [process.execPath, CLIENT_PROGRAM, JSON.stringify(job)], {
        timeoutMs: 60_000,
      });
      if (r.code !== 0) {
        const why = r.stderr
          .trim()
          .split("\n")
          .filter((l) => /Error|error:/.test(l))
          .pop();
        harness = `the client program failed (exit ${r.code}): ${why ?? r.stderr.trim().split("\n").pop()}`;
      }
      lines = r.stdout
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => JSON.parse(l) as ClientLine);
      if (c.client.kind === "uoa-storm") lines = stormLines(c.client, lines);
    }
  } catch (e) {
    if (!(e instanceof Skip)) harness = e instanceof Error ? e.message : String(e);
  } finally {
    for (const cap of caps) await cap.stop();
    for (const undo of restore.reverse()) await undo().catch(() => {});
  }
  const noPort = profile.tcp?.carrier === "toa" && profile.tcp.v4.layout === ToaLayout.versionAddr;
  const readers = readersFor(c.proto, family).filter(
    (r) => o.readers === undefined || o.readers.includes(r),
  );
  const placement = placementOf(o.rsNetns);
  const out = readers.map((reader): CaseResult => {
    const v =
      skip !== null
        ? { result: "unsupported" as const, expected: "", got: "", diagnosis: skip }
        : harness !== null
          ? { result: "error" as const, expected: "", got: "", diagnosis: harness }
          : judge({ case: c, family, reader, client: source, noPort, decoder, lines, earlier });
    return {
      id: c.id,
      title: c.title,
      proto: c.proto,
      profile: profile.name,
      family,
      reader,
      kernel,
      placement,
      ...v,
      doc: c.doc,
      pcaps: {
        client: relative(o.outDir, paths.client),
        server: relative(o.outDir, paths.server),
      },
      faults: c.faults ?? [],
    };
  });
  earlier.set(source, c.id);
  const keep = o.keepPcaps ?? "failed";
  if (
    keep === "none" ||
    (keep === "failed" && out.every((x) => x.result === "pass" || x.result === "unsupported"))
  ) {
    rmSync(paths.client, { force: true });
    rmSync(paths.server, { force: true });
    return out.map((x) => ({ ...x, pcaps: null }));
  }
  return out;
}

/** The reader server's report of the connection that sent `payload` (its output may lag a little). */
async function findReport(
  server: NsProcess,
  payload: string,
): Promise<Record<string, unknown> | null> {
  return (await findReports(server, payload, 1))[0] ?? null;
}

/** The reports of the connections that sent `payload`: `want` of them, or what came in a second. */
async function findReports(
  server: NsProcess,
  payload: string,
  want: number,
): Promise<Record<string, unknown>[]> {
  let found: Record<string, unknown>[] = [];
  for (let i = 0; i < 20 && found.length < want; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 50));
    found = [];
    for (const line of server.stdout.split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        const r = JSON.parse(line) as Record<string, unknown>;
        if (String(r["payload"] ?? "").trim() === payload) found.push(r);
      } catch {
        // A line cut short is no report.
      }
    }
  }
  return found;
}

/** Thrown to leave a case that cannot run here (the reason is kept beside). */
class Skip extends Error {}

/** The TOA kind of the profile (254 for a profile without one: the storm's bytes need some kind). */
function kindOf(profile: Profile): number {
  return profile.tcp?.carrier === "toa" ? profile.tcp.v4.kind : 254;
}

type MapTimeout = { readonly seconds: number } | { readonly skip: string };

/**
 * How long the decoder keeps a UOA entry, for the timeout case: the eBPF
 * decoder's is set when the instance starts; a module's is lowered for
 * the case when it may be changed while loaded (restored after), used
 * when it is short, and otherwise the case says how to load it.
 */
function decoderMapTimeout(o: LocalCheckOptions, restore: (() => Promise<unknown>)[]): MapTimeout {
  if (o.moduleName === undefined) return { seconds: EBPF_UOA_TIMEOUT_S };
  const dir = `/sys/module/${o.moduleName}/parameters`;
  let params: string[] = [];
  try {
    params = readdirSync(dir).filter((p) => /uoa.*timeout/.test(p));
  } catch {
    // A module without parameters: its timeout is its own; wait as for ours.
  }
  const param = params[0];
  if (param === undefined) return { seconds: EBPF_UOA_TIMEOUT_S };
  const file = join(dir, param);
  const was = readFileSync(file, "utf8").trim();
  try {
    writeFileSync(file, String(EBPF_UOA_TIMEOUT_S));
    restore.push(async () => writeFileSync(file, was));
    return { seconds: EBPF_UOA_TIMEOUT_S };
  } catch {
    // Read-only while loaded (0444): use it if it is short enough to wait for.
  }
  const n = Number(was);
  if (Number.isInteger(n) && n <= LONGEST_WAIT_S) return { seconds: n };
  return {
    skip: `the module's ${param} is ${was} s and read-only while loaded: load it with ${param}=3 to check this case`,
  };
}

/** The quiet time of the timeout case: past the gateway's UDP timeout and the decoder's, with a margin. */
function idle(c: CheckCase, t: MapTimeout): number {
  const decoder = "seconds" in t ? t.seconds : 0;
  return Math.max(decoder, c.timeouts?.["udp"] ?? 0) * 1000 + 1500;
}

/** Where the storm's connections come from: addresses no other case uses. */
function stormSource(i: number, family: Family): string {
  return family === "v4" ? `198.51.100.${230 + i}` : `2001:db8:c::${(230 + i).toString(16)}`;
}

/**
 * The storm: for each broken TOA, connections from `perPattern` addresses
 * whose handshake ACK (after the gateway's TOA) and later segments (alone)
 * carry it; then one clean connection, which must still be served.
 */
async function storm(
  inst: Instance,
  server: NsProcess,
  play: Extract<CheckCase["client"], { kind: "storm" }>,
  kind: number,
  family: Family,
  payload: string,
  clean: string,
): Promise<ClientLine[]> {
  const [vip, port] = VIP.tcp[family];
  const target = family === "v4" ? `${vip}:${port}` : `[${vip}]:${port}`;
  const kindHex = kind.toString(16).padStart(2, "0");
  const sources = Array.from({ length: play.perPattern }, (_, i) => stormSource(i, family));
  const lines: ClientLine[] = [];
  for (const [p, pattern] of play.patterns.entries()) {
    const word = pattern.word.replace("{kindhex}", kindHex);
    const request = `${payload} storm ${p}`;
    // Each pattern on its own client ports: the same addresses come back.
    const portBase = STORM_PORT_BASE + p;
    await inst.runClients({
      target,
      from: sources[0]!,
      sources: play.perPattern,
      connections: play.perPattern,
      portBase,
      request: `${request}\n`,
      expectPeer: false,
      timeoutMs: 5000,
      ack: ["nop", "nop", word],
      segment: ["nop", "nop", word],
    });
    const reports = await findReports(server, request, play.perPattern);
    for (let i = 0; i < play.perPattern; i++) {
      const report = reports[i] ?? null;
      // Which of the addresses it was: the one its answers name, when they name one of them.
      const named = Object.values(report ?? {})
        .map((v) => (v as Record<string, unknown> | null)?.["address"])
        .find((a): a is string => typeof a === "string" && sources.includes(a));
      lines.push({
        clientPort: portBase,
        index: lines.length,
        report,
        client: named ?? sources[i]!,
        expect: pattern.expect,
        ...(report ? {} : { error: `no report (${word})` }),
      });
    }
  }
  await inst.runClients({
    target,
    from: clean,
    connections: 1,
    request: `${payload} clean\n`,
    expectPeer: false,
    timeoutMs: 5000,
  });
  const report = await findReport(server, `${payload} clean`);
  lines.push({
    clientPort: SCRIPT_DEFAULTS.portBase,
    index: lines.length,
    report,
    client: clean,
    ...(report ? {} : { error: "no report for the clean connection after the storm" }),
  });
  return lines;
}

/**
 * The fault rules of a UOA storm: break after break, each on the next
 * `perPattern` datagrams that carry the UOA toward the server. opp's header
 * follows the outer IP header (IPv6 only for the v6 family: NAT64 reaches
 * the server over IPv4); ipo's option is found by its type, 31.
 */
function uoaStormRules(c: CheckCase, family: Family): string[] {
  if (c.client.kind !== "uoa-storm") return [];
  const per = c.client.perPattern;
  const ipo = c.settings?.["uoa"] === "ipo";
  const header = family === "v6" ? 40 : 20;
  return c.client.patterns.map((b, i) => {
    const target = ipo
      ? `ip-option:31:${b.byte}`
      : `byte:${header + (b.in === "header" ? 0 : 4) + b.byte}`;
    return `to-server:toa+udp:corrupt=${target},${b.op},skip=${i * per},count=${per}`;
  });
}

/** The storm's datagrams say which break they carried and what is right for them; the last flow is clean. */
function stormLines(
  play: Extract<CheckCase["client"], { kind: "uoa-storm" }>,
  lines: ClientLine[],
): ClientLine[] {
  return lines.map((l) => {
    const b = play.patterns[Math.floor(l.index / play.perPattern)];
    return b === undefined
      ? { ...l, label: "the clean flow after the storm" }
      : { ...l, label: b.what, expect: "client-nothing-or-lost" as const };
  });
}

/** The storm's client ports: one per pattern, apart from the scripted cases' (20000). */
const STORM_PORT_BASE = 30000;
