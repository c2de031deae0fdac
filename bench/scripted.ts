// `npm run bench:scripted`: scripted clients (toasim builds the client's
// packets itself) open 100,000 connections from 10,000 IPv6 addresses
// through the gateway to a real server (the Node reader server) behind the
// eBPF decoder, and every answer is checked: the server's getpeername must
// be the connection's own address and port. The rate is printed next to a
// baseline measured in the same run: the kernel's own TCP clients, run in
// the client namespace, doing the same against the same server. A
// benchmark, not a test: it prints numbers and exits 0 unless it could not
// measure (a mismatch is reported as FAIL and exits 1: it is a wrong answer).
//
// Needs root, a kernel with BTF, cgroup v2 and clang (scripts/setup.sh).
// Everything it creates is the instance's (removed by instance.stop()) or
// its children's, killed on every way out.

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ScriptResults } from "../src/craft/scripted-clients.js";
import { ebpfUnavailable } from "../src/decoder/availability.js";
import { DEFAULT_SETTINGS } from "../src/decoder/maps.js";
import { resolveProfile } from "../src/fullnat-sim/profiles.js";
import { defaultGatewayConfig } from "../src/runtime/defaults.js";
import { type RunningInstance, startInstance } from "../src/runtime/instance.js";
import { nsExecArgs } from "../src/tun/topology.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const OUT = join(ROOT, "out");

function flag(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isInteger(v) || v < 1) {
    console.error(`bench:scripted: ${name} wants a positive integer`);
    process.exit(2);
  }
  return v;
}

const CONNECTIONS = flag("--connections", 100_000);
const SOURCES = flag("--sources", 10_000);
const CONCURRENCY = flag("--concurrency", 256);
const BASELINE = flag("--baseline", 20_000);

const children = new Set<ChildProcess>();
let instance: RunningInstance | null = null;
let dir: string | null = null;

function killChildren(): void {
  for (const c of children) c.kill("SIGKILL");
}
process.on("exit", () => {
  killChildren();
  if (dir) rmSync(dir, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    console.error(`\nbench:scripted: ${sig}, cleaning up`);
    killChildren();
    void (instance?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

function spawnKept(argv: readonly string[]): {
  proc: ChildProcess;
  out: () => string;
  done: Promise<number | null>;
} {
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  children.add(proc);
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr!.on("data", (d: Buffer) => process.stderr.write(d));
  const done = new Promise<number | null>((res) => {
    proc.on("close", (code) => {
      children.delete(proc);
      res(code);
    });
  });
  return { proc, out: () => out, done };
}

interface Run {
  results: ScriptResults;
  elapsedMs: number;
}

/** One scripted run over the instance's control socket, with progress on stderr. */
function scripted(socket: string, spec: object): Promise<Run> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let buf = "";
    let last: Run | null = null;
    s.setEncoding("utf8");
    s.on("connect", () => s.write(`${JSON.stringify({ cmd: "script", spec })}\n`));
    s.on("data", (d: string) => {
      buf += d;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const m = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        if (m["ok"] !== true) {
          reject(new Error(String(m["error"])));
          return;
        }
        last = m as unknown as Run;
        const r = last.results;
        process.stderr.write(
          `\r  ${(last.elapsedMs / 1000).toFixed(0)} s: ${r.completed} completed, ${r.matched} matched   `,
        );
      }
    });
    s.on("error", reject);
    s.on("close", () => {
      process.stderr.write("\n");
      if (last) resolve(last);
      else reject(new Error("the instance closed the run without results"));
    });
  });
}

async function main(): Promise<number> {
  const missing = process.geteuid?.() !== 0 ? "not root" : ebpfUnavailable();
  if (missing !== null) {
    console.error(`bench:scripted: cannot run: ${missing} (run as root after npm run setup)`);
    return 2;
  }
  const cpu = cpus();
  console.log(
    `toasim scripted-client benchmark: ${cpu.length} CPU (${cpu[0]?.model ?? "?"}), node ${process.version}; ` +
      `${CONNECTIONS} connections from ${SOURCES} IPv6 addresses, ${CONCURRENCY} at once`,
  );
  dir = mkdtempSync(join(tmpdir(), "toasim-bench-scripted-"));
  instance = await startInstance(defaultGatewayConfig(resolveProfile("dpvs"), 1_000_000), [], {
    decoder: DEFAULT_SETTINGS,
  });
  const { serverNs, clientNs, rsCgroup, socket } = instance.info;
  const ready = join(dir, "ready");
  const server = spawnKept([
    "sh",
    "-c",
    'echo $$ > "$0/cgroup.procs" && exec "$@" >/dev/null',
    rsCgroup!,
    ...nsExecArgs(serverNs, [
      process.execPath,
      join(ROOT, "examples/node/reader-server.mjs"),
      "--tcp",
      "[::]:8080",
      "--ready",
      ready,
    ]),
  ]);
  for (let i = 0; i < 200 && !existsSync(ready); i++) await new Promise((r) => setTimeout(r, 100));
  if (!existsSync(ready)) throw new Error("the reader server did not start");

  // Baseline first, so the scripted run's connections do not linger in its way.
  console.log(`  baseline: ${BASELINE} connections by the kernel's clients (one address)`);
  const base = spawnKept(
    nsExecArgs(clientNs, [
      process.execPath,
      join(ROOT, "build/bench/kernel-clients.js"),
      "--to",
      "[2001:db8:f::10]:80",
      "--connections",
      String(BASELINE),
      "--concurrency",
      String(CONCURRENCY),
    ]),
  );
  await base.done;
  const k = JSON.parse(base.out().trim()) as {
    completed: number;
    matched: number;
    failed: number;
    ms: number;
  };
  const kernelRate = (k.completed * 1000) / k.ms;
  console.log(
    `  kernel clients:   ${Math.round(kernelRate)} conn/s, ${k.matched}/${BASELINE} matched`,
  );

  console.log(`  scripted: ${CONNECTIONS} connections from ${SOURCES} addresses`);
  const run = await scripted(socket, {
    target: "[2001:db8:f::10]:80",
    sources: SOURCES,
    connections: CONNECTIONS,
    concurrency: CONCURRENCY,
    syn: ["mss:1460", "sack-perm", "ts", "nop", "ws:7"],
    segment: ["nop", "nop", "ts"],
  });
  const r = run.results;
  const rate = (r.completed * 1000) / run.elapsedMs;
  const all = r.matched === CONNECTIONS;
  console.log(
    `  scripted clients: ${Math.round(rate)} conn/s, ${r.matched}/${CONNECTIONS} matched, ` +
      `${r.mismatched} mismatched, failed ${JSON.stringify(r.failed)}, ${r.retransmits} retransmits, ` +
      `${(run.elapsedMs / 1000).toFixed(1)} s`,
  );
  console.log(`  ratio scripted / kernel clients: ${(rate / kernelRate).toFixed(2)}`);
  console.log(
    `${all ? "PASS" : "FAIL"}: the server's view matched for ${r.matched} of ${CONNECTIONS} connections`,
  );
  for (const m of r.mismatches)
    console.log(`  mismatch: ${m.client} port ${m.port}, server saw ${m.seen}`);
  mkdirSync(OUT, { recursive: true });
  writeFileSync(
    join(OUT, "bench-scripted.json"),
    `${JSON.stringify({ connections: CONNECTIONS, sources: SOURCES, concurrency: CONCURRENCY, scripted: { rate, ...r, elapsedMs: run.elapsedMs }, kernel: { rate: kernelRate, ...k, connections: BASELINE }, ratio: rate / kernelRate }, null, 2)}\n`,
  );
  server.proc.kill("SIGTERM");
  await server.done;
  await instance.stop();
  instance = null;
  return all ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    console.error(`bench:scripted: ${e instanceof Error ? e.message : String(e)}`);
    killChildren();
    await instance?.stop();
    process.exit(2);
  },
);
