import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type DecoderSettings, statsRows } from "../decoder/maps.js";
import type { GatewayConfig } from "../fullnat-sim/config.js";
import type { FaultConfig } from "../fullnat-sim/faults.js";
import { familyOf, parseEndpoint } from "../option-codec/address.js";
import { shippedPath } from "../package-files.js";
import { runProcess } from "../run-process.js";
import type { InstanceControl } from "../runtime/control.js";
import { ADDRESS_PLAN } from "../runtime/defaults.js";
import { type RunningInstance, startInstance } from "../runtime/instance.js";
import { nsExecArgs } from "../tun/topology.js";
import { ScenarioError } from "./errors.js";
import { evaluate, type Outcome, type StepResult } from "./expect.js";
import type { Conntrack, Scenario, Step, TcpStep, UdpStep, Variant } from "./format.js";

/** What the command layer turns a variant into (it owns the flags and profiles). */
export interface Setup {
  readonly config: GatewayConfig;
  readonly extraRs: readonly string[];
  readonly faults: FaultConfig | null;
  /** The eBPF decoder's settings, or null: none (or a kernel module decodes). */
  readonly decoder: DecoderSettings | null;
  /** What decodes: "ebpf", a module's name, or "none". */
  readonly decoderName: string;
}

export interface RunOptions {
  /** Where the pcaps of both sides go: DIR/NAME[-bug]/{client,server}.pcap. */
  readonly outDir: string;
  readonly progress: (line: string) => void;
}

export interface VariantResult {
  readonly variant: "healthy" | "bug";
  readonly decoder: string;
  readonly outcomes: readonly Outcome[];
  readonly pcaps: readonly string[];
  /** healthy: every expectation held; bug: every symptom held and exactly `breaks` failed. */
  readonly pass: boolean;
  /** bug: the healthy expectations that failed in this run, by index. */
  readonly broken: readonly number[];
}

const DEFAULT_SOURCE = { 4: ADDRESS_PLAN.client4, 6: ADDRESS_PLAN.client6 } as const;

const READERS = {
  node: () => [process.execPath, shippedPath("examples", "node/reader-server.mjs")],
  python: () => ["python3", shippedPath("examples", "python/reader_server.py")],
  c: () => [shippedPath("examples", "c/reader-server")],
} as const;

/**
 * Runs one variant of a scenario: an instance with its gateway, decoder and
 * faults, captures of both sides, the reader server, the steps, then the
 * expectations. Everything it starts is stopped and removed on every way
 * out; a step that cannot run is a ScenarioError, a failed expectation is
 * a result.
 */
export async function runVariant(
  sc: Scenario,
  which: "healthy" | "bug",
  setup: Setup,
  opts: RunOptions,
): Promise<VariantResult> {
  const v: Variant = which === "bug" && sc.bug ? sc.bug : sc.healthy;
  const dir = join(opts.outDir, which === "bug" ? `${sc.name}-bug` : sc.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const children = new Set<ChildProcess>();
  let inst: RunningInstance | null = null;
  const captures: Promise<void>[] = [];
  const stopCaptures: (() => void)[] = [];
  try {
    inst = await startInstance(setup.config, setup.extraRs, {
      decoder: setup.decoder,
      ...(setup.faults ? { faults: setup.faults } : {}),
    });
    const { serverNs, clientNs, rsCgroup } = inst.info;
    for (const [k, val] of Object.entries(v.sysctl)) {
      await runChecked(
        nsExecArgs(serverNs, ["sysctl", "-q", "-w", `${k}=${val}`]),
        children,
        10_000,
      );
    }
    if (v.conntrack !== null) {
      const rules = join(dir, "client.nft");
      writeFileSync(rules, conntrackRules(v.conntrack));
      await runChecked(nsExecArgs(clientNs, ["nft", "-f", rules]), children, 10_000).catch(
        (e: unknown) => {
          throw new ScenarioError(
            "RUN",
            `client conntrack rules (${rules}): ${(e as Error).message} (nft comes with nftables: toasim doctor --install)`,
          );
        },
      );
    }
    for (const side of ["client", "server"] as const) {
      const cap = await inst.capture(side, join(dir, `${side}.pcap`), 0);
      captures.push(cap.done.then(() => {}));
      stopCaptures.push(() => cap.stop());
    }
    const readyFile = join(dir, "server.ready");
    const serverArgs = [...READERS[sc.reader](), "--ready", readyFile];
    for (const t of sc.tcp) serverArgs.push("--tcp", t);
    for (const u of sc.udp) serverArgs.push("--udp", u);
    let argv = nsExecArgs(serverNs, serverArgs);
    if (rsCgroup !== null)
      argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', rsCgroup, ...argv];
    const server = keep(argv, children);
    for (let i = 0; i < 200 && !existsSync(readyFile); i++) {
      if (server.exited) break;
      await sleep(100);
    }
    if (!existsSync(readyFile)) {
      throw new ScenarioError(
        "RUN",
        `the ${sc.reader} reader server did not start: ${server.err().trim()}`,
      );
    }
    const before = await counters(inst, serverNs, setup.decoderName, children);
    const results: (StepResult | Promise<StepResult>)[] = [];
    for (const [i, step] of sc.steps.entries()) {
      opts.progress(`  step ${i}: ${describeStep(step)}`);
      const r = runStep(step, clientNs, inst, children);
      if (step.background) {
        results.push(r);
        // Give it a head start, so the next step finds it under way.
        await sleep(200);
      } else results.push(await r);
    }
    const done = await Promise.all(results);
    await sleep(300);
    const after = await counters(inst, serverNs, setup.decoderName, children);
    for (const stop of stopCaptures) stop();
    await Promise.all(captures);
    const outcomes = evaluate(v.expect, done, before, after, sc.steps);
    let pass = outcomes.every((o) => o.pass);
    let broken: number[] = [];
    if (which === "bug" && sc.bug) {
      const healthy = evaluate(sc.healthy.expect, done, before, after, sc.steps);
      broken = healthy.flatMap((o, i) => (o.pass ? [] : [i]));
      const want = [...sc.bug.breaks].sort((a, b) => a - b);
      pass = pass && broken.length === want.length && broken.every((b, i) => b === want[i]);
    }
    return {
      variant: which,
      decoder: setup.decoderName,
      outcomes,
      pcaps: [join(dir, "client.pcap"), join(dir, "server.pcap")],
      pass,
      broken,
    };
  } finally {
    for (const stop of stopCaptures) stop();
    for (const c of children) c.kill("SIGKILL");
    await inst?.stop();
  }
}

/**
 * The client namespace's conntrack as nftables rules. A full table drops
 * the packet that would add an entry, and only that one: the first of a
 * flow, not yet confirmed (a UDP flow stays "new" until its first answer,
 * so state alone would drop the later datagrams of flows already held).
 * NOTRACK runs at raw priority, before conntrack, so those packets never
 * reach the count.
 */
export function conntrackRules(c: Conntrack): string {
  const lines = [
    "table inet toasim_conntrack {",
    "  chain table_full {",
    "    type filter hook output priority filter; policy accept;",
    `    ct state new ct status ! confirmed ct count over ${c.table} drop`,
    "  }",
  ];
  if (c.notrack.length > 0) {
    const ports = c.notrack.join(", ");
    lines.push(
      "  chain notrack_out {",
      "    type filter hook output priority raw; policy accept;",
      `    meta l4proto { tcp, udp } th dport { ${ports} } notrack`,
      "  }",
      "  chain notrack_in {",
      "    type filter hook prerouting priority raw; policy accept;",
      `    meta l4proto { tcp, udp } th sport { ${ports} } notrack`,
      "  }",
    );
  }
  lines.push("}", "");
  return lines.join("\n");
}

function describeStep(s: Step): string {
  switch (s.kind) {
    case "tcp":
      return `tcp to ${s.to}${s.as ? ` from ${s.as}` : ""}${s.pauseMs ? `, sending after ${s.pauseMs} ms` : ""}${s.background ? " (background)" : ""}`;
    case "udp":
      return `udp x${s.count}${s.flows > 1 ? ` on each of ${s.flows} flows` : ""} to ${s.to}${s.as ? ` from ${s.as}` : ""}`;
    case "scripted":
      return `scripted clients: ${JSON.stringify(s.spec)}`;
    case "faults":
      return s.faults === null ? "faults off" : `faults ${JSON.stringify(s.faults)}`;
    case "restart":
      return "gateway restart";
    case "sleep":
      return `sleep ${s.ms} ms`;
  }
}

/** A control call of a step; its failure (a bad rule, a refusal) says which step. */
async function asStep<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw new ScenarioError("RUN", `${what}: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
}

async function runStep(
  step: Step,
  clientNs: string,
  inst: InstanceControl,
  children: Set<ChildProcess>,
): Promise<StepResult> {
  switch (step.kind) {
    case "tcp":
      return tcpStep(step, clientNs, children);
    case "udp":
      return udpStep(step, clientNs, children);
    case "scripted": {
      const run = await asStep("scripted clients", () => inst.script(step.spec, () => {}));
      const done = await asStep("scripted clients", () => run.done);
      return { source: null, reports: [], scripted: done.results, sendErrors: {} };
    }
    case "faults":
      await asStep("faults", () => inst.setFaults(step.faults));
      return NOTHING;
    case "restart":
      await asStep("restart", () => inst.restart());
      return NOTHING;
    case "sleep":
      await sleep(step.ms);
      return NOTHING;
  }
}

const NOTHING: StepResult = { source: null, reports: [], scripted: null, sendErrors: {} };

function source(to: string, as: string | null): { family: 4 | 6; addr: string } {
  let family: 4 | 6;
  try {
    family = familyOf(parseEndpoint(to).addr);
  } catch {
    throw new ScenarioError("BAD_SCENARIO", `"${to}" is not ADDR:PORT or [V6]:PORT`);
  }
  return { family, addr: as ?? DEFAULT_SOURCE[family] };
}

async function tcpStep(
  s: TcpStep,
  clientNs: string,
  children: Set<ChildProcess>,
): Promise<StepResult> {
  const { family, addr } = source(s.to, s.as);
  const bind = family === 6 ? `[${addr}]` : addr;
  const target = `TCP${family}:${s.to},bind=${bind}`;
  // The request after the pause, then the half-close socat makes at EOF;
  // -t: the answer may come long after that half-close (a server timing out).
  const t = s.timeoutS;
  const script = `(sleep ${s.pauseMs / 1000}; printf %s "$0") | exec socat -t ${t} -T ${t} - "$1"`;
  const r = await runChecked(
    nsExecArgs(clientNs, ["sh", "-c", script, s.send, target]),
    children,
    (s.timeoutS + s.pauseMs / 1000 + 10) * 1000,
    true,
  );
  return { source: addr, reports: reportsOf(r.stdout), scripted: null, sendErrors: {} };
}

// A flow is a socket of its own (its own source port). A failed sendto is
// counted by errno, as a program would log it, and the datagram is lost.
const UDP_CLIENT = `
import errno, json, select, socket, sys, time
to, port, src, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
count, flows, timeout = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
fam = socket.AF_INET6 if ":" in to else socket.AF_INET
socks = []
for _ in range(flows):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.setblocking(False)
    socks.append(s)
failed = {}
for i in range(count):
    for s in socks:
        try:
            s.sendto(payload, (to, port))
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno))
            failed[name] = failed.get(name, 0) + 1
    time.sleep(0.02)
end = time.time() + timeout
while time.time() < end:
    ready, _, _ = select.select(socks, [], [], 0.2)
    for s in ready:
        try:
            d = s.recv(65535)
        except OSError:
            continue
        sys.stdout.write(d.decode("utf-8", "replace").rstrip("\\n") + "\\n")
sys.stdout.write("#send-errors " + json.dumps(failed) + "\\n")
`;

async function udpStep(
  s: UdpStep,
  clientNs: string,
  children: Set<ChildProcess>,
): Promise<StepResult> {
  const { addr } = source(s.to, s.as);
  const ep = parseEndpoint(s.to);
  const host = s.to.startsWith("[")
    ? s.to.slice(1, s.to.indexOf("]"))
    : s.to.slice(0, s.to.lastIndexOf(":"));
  const r = await runChecked(
    nsExecArgs(clientNs, [
      "python3",
      "-c",
      UDP_CLIENT,
      host,
      String(ep.port),
      addr,
      s.send,
      String(s.count),
      String(s.flows),
      String(s.timeoutS),
    ]),
    children,
    (s.timeoutS + 15) * 1000,
  );
  const tail = /^#send-errors (\{.*\})$/m.exec(r.stdout);
  if (!tail) throw new ScenarioError("RUN", "the UDP client did not finish its report");
  const sendErrors = JSON.parse(tail[1]!) as Record<string, number>;
  return { source: addr, reports: reportsOf(r.stdout), scripted: null, sendErrors };
}

function reportsOf(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // A cut line (the connection died mid-report) is no report.
    }
  }
  return out;
}

/** The counters the expectations compare: the gateway's and the decoder's. */
async function counters(
  inst: InstanceControl,
  serverNs: string | null,
  decoder: string,
  children: Set<ChildProcess>,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [k, n] of Object.entries(await inst.stats())) out[`gateway.${k}`] = n;
  if (decoder === "ebpf") {
    const raw = await inst.decoderStats();
    if (raw !== null) {
      const rows = statsRows(raw);
      for (const [k, n] of Object.entries(rows.toa)) out[`toa.${k}`] = n;
      for (const [k, n] of Object.entries(rows.uoa)) out[`uoa.${k}`] = n;
    }
  } else if (decoder !== "none") {
    for (const file of ["toa_stats", "uoa_stats"] as const) {
      const r = await runChecked(
        nsExecArgs(serverNs, ["cat", `/proc/net/${file}`]),
        children,
        10_000,
        true,
      );
      for (const line of r.stdout.split("\n")) {
        const m = /^(\w+)\s*:(.*)$/.exec(line);
        if (!m) continue;
        const sum = m[2]!
          .trim()
          .split(/\s+/)
          .reduce((a, x) => a + Number(x), 0);
        out[`${file === "toa_stats" ? "toa" : "uoa"}.${m[1]}`] = sum;
      }
    }
  }
  return out;
}

interface Kept {
  readonly exited: boolean;
  err(): string;
}

function keep(argv: readonly string[], children: Set<ChildProcess>): Kept {
  const p = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
  children.add(p);
  let err = "";
  let exited = false;
  p.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  p.on("exit", () => {
    exited = true;
  });
  p.on("error", (e) => {
    err += e.message;
    exited = true;
  });
  return {
    get exited() {
      return exited;
    },
    err: () => err,
  };
}

/** Runs argv to its end (SIGKILLed after `ms`); a failure to start, or (unless `anyExit`) a non-zero exit, throws. */
async function runChecked(
  argv: readonly string[],
  children: Set<ChildProcess>,
  ms: number,
  anyExit = false,
): Promise<{ code: number | null; stdout: string }> {
  const r = await runProcess(argv, { children, timeoutMs: ms, keepAll: true });
  if (r.spawnError !== null)
    throw new ScenarioError("RUN", `cannot run ${argv.join(" ")}: ${r.spawnError.message}`);
  if (r.code !== 0 && !anyExit)
    throw new ScenarioError(
      "RUN",
      `${argv.slice(-3).join(" ")}: exit ${r.code}: ${r.stderr.trim()}`,
    );
  return { code: r.code, stdout: r.stdout };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
