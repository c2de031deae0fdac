import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { runProcess } from "../../src/run-process.js";
import { commandMissing } from "../helpers/tier.js";
import {
  apiMissing,
  type LocalInstance,
  type NsProcess,
  toasim,
  type UpOptions,
} from "./toasim-api.js";

// Shared by the e2e tests. Most drive an instance through toasim's API
// (./toasim-api.ts: up() in the test's own process, exec/spawn in its
// namespaces); the tests of the CLI itself drive the built CLI
// (bin/toasim.js) as a user would, as child processes. What crossed the
// gateway is read back by tshark. Every wait here has a time limit.

export const ROOT = resolve(import.meta.dirname, "../..");
export const CLI = join(ROOT, "bin/toasim.js");
export const STATE_DIR = "/run/toasim";

/** Why the privileged tier cannot run here, or null. */
export function e2eMissing(commands: readonly (readonly [string, string[]])[]): string | null {
  if (process.platform !== "linux") return "not Linux";
  if (process.geteuid?.() !== 0) return "not root (network namespaces and TUN need root)";
  if (!existsSync("/dev/net/tun")) return "/dev/net/tun missing (modprobe tun)";
  if (apiMissing !== null) return apiMissing;
  for (const [cmd, args] of commands) {
    const m = commandMissing(cmd, args);
    if (m !== null) return m;
  }
  return null;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** argv that runs `cmd` inside network namespace `ns`. */
export function nsExec(ns: string, cmd: readonly string[]): string[] {
  return ["ip", "netns", "exec", ns, ...cmd];
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs argv to completion, SIGKILLed after `timeoutMs`; never rejects. */
export async function run(argv: readonly string[], timeoutMs = 15_000): Promise<RunResult> {
  const r = await runProcess(argv, { cwd: ROOT, timeoutMs, keepAll: true });
  if (r.spawnError !== null)
    return { code: null, signal: null, stdout: r.stdout, stderr: r.stderr + r.spawnError.message };
  return {
    code: r.code,
    signal: r.signal,
    stdout: r.stdout,
    stderr: r.timedOut ? `${r.stderr}\n[killed after ${timeoutMs} ms]` : r.stderr,
  };
}

/** Synchronous, for quick read-only commands (ip netns list, ip link). */
export function sh(argv: readonly string[], timeoutMs = 10_000): string {
  return execFileSync(argv[0]!, argv.slice(1), {
    encoding: "utf8",
    timeout: timeoutMs,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** A long-running child whose output is kept; stop() always ends it. */
export class Background {
  readonly proc: ChildProcess;
  out = "";
  err = "";
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  exited = false;
  private readonly exitP: Promise<void>;
  private readonly wake = new Set<() => void>();

  constructor(
    readonly argv: readonly string[],
    readonly name = argv.join(" "),
  ) {
    this.proc = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stdout!.on("data", (d: Buffer) => {
      this.out += d.toString();
      this.poke();
    });
    this.proc.stderr!.on("data", (d: Buffer) => {
      this.err += d.toString();
      this.poke();
    });
    this.exitP = new Promise((res) => {
      this.proc.on("error", (e) => {
        this.err += e.message;
        this.exited = true;
        this.poke();
        res();
      });
      this.proc.on("exit", (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        this.exited = true;
        this.poke();
        res();
      });
    });
  }

  private poke(): void {
    for (const f of this.wake) f();
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  /** Complete stdout lines so far. */
  lines(): string[] {
    const l = this.out.split("\n");
    l.pop();
    return l.filter((x) => x !== "");
  }

  /** Resolves when `pred` holds; rejects on exit (unless `pred` holds) or after `ms`. */
  waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
    return new Promise((res, rej) => {
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.wake.delete(check);
        f();
      };
      const check = () => {
        if (pred()) done(res);
        else if (this.exited)
          done(() =>
            rej(
              new Error(
                `${this.name}: exited (code ${this.exitCode}, signal ${this.exitSignal}) before ${what}; stderr: ${this.err.trim()}`,
              ),
            ),
          );
      };
      const timer = setTimeout(
        () =>
          done(() =>
            rej(new Error(`${this.name}: no ${what} within ${ms} ms; stderr: ${this.err.trim()}`)),
          ),
        ms,
      );
      this.wake.add(check);
      check();
    });
  }

  /** Resolves true when the process exits within `ms`. */
  async waitExit(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<false>((r) => {
      timer = setTimeout(() => r(false), ms);
    });
    const ok = await Promise.race([this.exitP.then(() => true as const), t]);
    clearTimeout(timer);
    return ok;
  }

  /** Sends `sig`, waits up to `ms`, then SIGKILL; resolves once it has exited. */
  async stop(sig: NodeJS.Signals = "SIGTERM", ms = 5000): Promise<void> {
    if (this.exited) return;
    this.proc.kill(sig);
    if (await this.waitExit(ms)) return;
    this.proc.kill("SIGKILL");
    await this.waitExit(5000);
  }
}

// ---------------------------------------------------------------------------
// toasim instances, through the API

/**
 * up(options) in this process, without a decoder unless the options name
 * one: these tests look at what the gateway sends, which a decoder would
 * change on the way (UOA opp). Why auto chose as it did goes to the log.
 */
export function startGateway(options: UpOptions = {}): Promise<LocalInstance> {
  return toasim.up(
    { decoder: "none", ...options },
    { onNote: (line) => console.warn(`toasim up: ${line}`) },
  );
}

/** Stops the instance and checks that nothing of it is left. */
export async function stopGateway(gw: LocalInstance): Promise<void> {
  await gw.stop();
  const left = namespacesOf(gw.id);
  if (left.length > 0) throw new Error(`instance ${gw.id} left namespaces ${left.join(", ")}`);
  if (existsSync(join(STATE_DIR, `${gw.id}.json`)))
    throw new Error(`instance ${gw.id} left its state file`);
}

/** Complete stdout lines of a program so far, empty ones left out. */
export function outputLines(p: NsProcess): string[] {
  const l = p.stdout.split("\n");
  l.pop();
  return l.filter((x) => x !== "");
}

/** Resolves with `p`, or rejects with `what` after `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what}: not done within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------
// toasim instances, through the CLI (for the tests of the CLI itself)

export interface CliInstance {
  readonly id: string;
  readonly clientNs: string;
  readonly serverNs: string;
  readonly up: Background;
}

/**
 * `toasim up --json ARGS` as a child process; resolves on its ready line.
 * Without a decoder unless ARGS name one, as startGateway.
 */
export async function startCliInstance(args: readonly string[], ms = 20_000): Promise<CliInstance> {
  if (!existsSync(join(ROOT, "dist/runtime/worker.js"))) {
    throw new Error("dist/ is missing: run npm run build before the e2e tier");
  }
  const all = args.includes("--decoder") ? args : ["--decoder", "none", ...args];
  const up = new Background(
    [process.execPath, CLI, "up", "--json", ...all],
    `toasim up ${all.join(" ")}`,
  );
  try {
    await up.waitFor(() => up.lines().length > 0, ms, "ready line");
  } catch (e) {
    await up.stop("SIGKILL");
    throw e;
  }
  const ready = JSON.parse(up.lines()[0]!) as {
    ready?: boolean;
    id?: string;
    clientNs?: string;
    serverNs?: string;
  };
  if (ready.ready !== true || !ready.id || !ready.clientNs || !ready.serverNs) {
    await up.stop();
    throw new Error(`toasim up: unexpected ready line ${up.lines()[0]}`);
  }
  return { id: ready.id, clientNs: ready.clientNs, serverNs: ready.serverNs, up };
}

/** SIGTERM to `up`, then `toasim down --id`; returns down's result. */
export async function stopCliInstance(inst: CliInstance): Promise<RunResult> {
  await inst.up.stop("SIGTERM", 8000);
  return run([process.execPath, CLI, "down", "--id", inst.id], 20_000);
}

export function netnsList(): string[] {
  return sh(["ip", "netns", "list"])
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n !== "");
}

export function namespacesOf(id: string): string[] {
  return netnsList().filter((n) => n.startsWith(`toasim-${id}-`));
}

/** `toasim stats --id ID --json`. */
export async function cliStats(inst: { readonly id: string }): Promise<Record<string, number>> {
  const r = await run([process.execPath, CLI, "stats", "--id", inst.id, "--json"], 10_000);
  if (r.code !== 0) throw new Error(`toasim stats: exit ${r.code}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as Record<string, number>;
}

export interface CliCapture {
  /**
   * Stops it (SIGINT, as Ctrl-C; SIGKILL after `waitMs`); resolves with the
   * packet count it reported.
   */
  stop(waitMs?: number): Promise<number>;
}

/** `toasim capture`; resolves once the instance has opened the file. */
export async function startCliCapture(
  inst: { readonly id: string },
  side: "client" | "server",
  out: string,
  maxSeconds = 60,
): Promise<CliCapture> {
  const cap = new Background(
    [
      process.execPath,
      CLI,
      "capture",
      "--id",
      inst.id,
      "--side",
      side,
      "--out",
      out,
      "--seconds",
      String(maxSeconds),
    ],
    `toasim capture --side ${side}`,
  );
  try {
    await cap.waitFor(() => cap.err.includes("capturing"), 10_000, "capture start");
  } catch (e) {
    await cap.stop("SIGKILL");
    throw e;
  }
  return {
    async stop(waitMs = 5000) {
      if (!cap.exited) {
        cap.proc.kill("SIGINT");
        if (!(await cap.waitExit(waitMs))) {
          await cap.stop("SIGKILL");
          throw new Error(`toasim capture ${out}: did not stop on SIGINT within ${waitMs} ms`);
        }
      }
      const m = / (\d+) packets/.exec(cap.out);
      if (cap.exitCode !== 0 || !m) {
        throw new Error(`toasim capture ${out}: exit ${cap.exitCode}: ${cap.err.trim()}`);
      }
      return Number(m[1]);
    },
  };
}

// ---------------------------------------------------------------------------
// tshark, as the oracle tier drives it

export { type Row, tshark } from "../helpers/tshark.js";

import type { Row } from "../helpers/tshark.js";

/** The first occurrence of a field (ICMP errors quote a second IP header). */
export const first = (r: Row, f: string): string => (r[f] ?? "").split("|")[0] ?? "";

// ---------------------------------------------------------------------------
// Bytes, built by hand (not with the codecs under test)

export const hex = (xs: readonly number[]): string =>
  xs.map((x) => x.toString(16).padStart(2, "0")).join("");
export const be16 = (n: number): number[] => [(n >> 8) & 0xff, n & 0xff];
export const CLIENT4 = [198, 51, 100, 7] as const;
export const CLIENT6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7] as const;

/** Internet checksum (RFC 1071) of `bytes`; the result to put in a header. */
export function inetChecksum(bytes: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

// ---------------------------------------------------------------------------
// Processes

/** Not gone and not a zombie. */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

/** Live processes (not this one) whose command line contains `text`. */
export function processesMentioning(text: string): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    if (pid === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${d}/cmdline`, "latin1").split("\0").join(" ");
    } catch {
      continue;
    }
    if (cmdline.includes(text) && running(pid)) found.push({ pid, cmdline });
  }
  return found;
}

/** `ip netns pids NS`: the processes in a namespace ([] if it is gone). */
export function netnsPids(ns: string): number[] {
  try {
    return sh(["ip", "netns", "pids", ns])
      .split("\n")
      .map((l) => Number.parseInt(l, 10))
      .filter((p) => p > 0);
  } catch {
    return [];
  }
}

/**
 * An instance (up(options), no decoder unless named) with the Node reader
 * server in its server namespace listening on `tcp` (spawned on the rs
 * side, so in the decoder's cgroup), for `body`; both are stopped and
 * removed whatever happens, and nothing of the instance may be left.
 * `quiet`: the reports go to /dev/null (runs of thousands of connections).
 */
export async function withReaderServer(
  options: UpOptions,
  tcp: string,
  quiet: boolean,
  body: (gw: LocalInstance) => Promise<void>,
): Promise<void> {
  let id = "";
  {
    await using gw = await startGateway(options);
    id = gw.id;
    const ready = join(STATE_DIR, `${gw.id}.e2e-ready`);
    try {
      await using server = gw.spawn("rs", [
        ...(quiet ? ["sh", "-c", 'exec "$@" >/dev/null', "sh"] : []),
        process.execPath,
        join(ROOT, "examples/node/reader-server.mjs"),
        "--tcp",
        tcp,
        "--ready",
        ready,
      ]);
      // Polled: the server prints nothing until a client comes.
      for (let i = 0; i < 200 && !existsSync(ready) && server.exitStatus === null; i++)
        await sleep(100);
      if (!existsSync(ready)) throw new Error(`the reader server did not start: ${server.stderr}`);
      await body(gw);
    } finally {
      rmSync(ready, { force: true });
    }
  }
  const left = namespacesOf(id);
  if (left.length > 0) throw new Error(`instance ${id} left namespaces ${left.join(", ")}`);
}

/** TUN devices this process holds open (a stopped instance holds none). */
export function tunFdsOpen(): number {
  let n = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === "/dev/net/tun") n++;
    } catch {
      // closed between readdir and readlink
    }
  }
  return n;
}
