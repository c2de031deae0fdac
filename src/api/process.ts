import { type ChildProcess, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { ToasimError, ToasimErrorCode } from "./errors.js";

/** How a program ended: its exit code, or the signal that ended it. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface WaitOptions {
  /** Give up after this long (default 10 s): a ToasimError TIMEOUT. */
  readonly timeoutMs?: number;
  /** Which output to watch (default both). */
  readonly stream?: "stdout" | "stderr" | "both";
  /** start (the default): any line it has written; now: only lines written after this call. */
  readonly since?: "start" | "now";
}

/** Output kept per stream: enough for any report, bounded for servers that run for hours. */
const KEEP = 1024 * 1024;

/**
 * `ip netns exec` says this, as the first line of stderr, when the command
 * cannot be run (its exit code varies: 1 with iproute2 6.1, 255 elsewhere).
 */
export function execFailure(stderr: string): string | null {
  return /^exec of "[^"]*" failed: .*$/.exec(stderr.split("\n", 1)[0] ?? "")?.[0] ?? null;
}

/**
 * A program running in one of an instance's namespaces, started by
 * Instance.spawn. Its output is kept (the last MiB of each stream) and can
 * be waited on; stop() ends it, SIGKILL after a grace period. `await using`
 * stops it at the end of the scope.
 */
export class NsProcess implements AsyncDisposable {
  readonly pid: number;
  /** The command as given (without the namespace wrapper). */
  readonly command: readonly string[];
  /** Resolves when it has exited (never rejects). */
  readonly exited: Promise<ExitStatus>;
  private out = "";
  private err = "";
  private outTotal = 0;
  private errTotal = 0;
  private status: ExitStatus | null = null;
  private readonly wake = new Set<() => void>();
  private readonly child: ChildProcess;

  constructor(
    argv: readonly string[],
    command: readonly string[],
    onExit: () => void,
    opts: { stdio?: "pipe" | "inherit"; env?: NodeJS.ProcessEnv; cwd?: string } = {},
  ) {
    this.command = command;
    this.child = spawn(argv[0]!, argv.slice(1), {
      stdio: opts.stdio === "inherit" ? "inherit" : ["pipe", "pipe", "pipe"],
      ...(opts.env !== undefined ? { env: opts.env } : {}),
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    });
    this.pid = this.child.pid ?? -1;
    this.child.stdin?.on("error", () => {});
    this.child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      this.out = keep(this.out, d);
      this.outTotal += d.length;
      this.poke();
    });
    this.child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      this.err = keep(this.err, d);
      this.errTotal += d.length;
      this.poke();
    });
    this.exited = new Promise((resolve) => {
      const done = (s: ExitStatus) => {
        if (this.status !== null) return;
        this.status = s;
        onExit();
        this.poke();
        resolve(s);
      };
      this.child.on("error", (e) => {
        this.err = keep(this.err, `${e.message}\n`);
        done({ code: null, signal: null });
      });
      // "close": after its output is read to the end, so stdout is complete here.
      this.child.on("close", (code, signal) => done({ code, signal }));
    });
  }

  /** What it has written to stdout so far (the last MiB). */
  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  /** Its stdin, for programs that read requests (closed by stop()). */
  get stdin(): NodeJS.WritableStream | null {
    return this.child.stdin;
  }

  /** The live streams, for piping output elsewhere as it comes. */
  get streams(): { readonly stdout: Readable | null; readonly stderr: Readable | null } {
    return { stdout: this.child.stdout, stderr: this.child.stderr };
  }

  /** Null while it runs. */
  get exitStatus(): ExitStatus | null {
    return this.status;
  }

  /** Why it could not be started, when `ip netns exec` or the system said so; null otherwise. */
  startFailure(): string | null {
    if (this.status === null) return null;
    if (this.status.code === null && this.status.signal === null) return this.err.trim();
    return this.status.code === 0 ? null : execFailure(this.err);
  }

  private poke(): void {
    for (const f of [...this.wake]) f();
  }

  /**
   * Resolves with the first line of output that contains `match` (or that
   * the RegExp matches), already written or still to come; rejects with a
   * ToasimError when the program exits first (EXITED) or time runs out
   * (TIMEOUT), quoting its stderr.
   */
  waitForOutput(match: string | RegExp, opts: WaitOptions = {}): Promise<string> {
    const ms = opts.timeoutMs ?? 10_000;
    const stream = opts.stream ?? "both";
    const test = (line: string) =>
      typeof match === "string" ? line.includes(match) : match.test(line);
    // Output is counted as it arrives, so "now" survives the kept text being trimmed.
    const from =
      opts.since === "now" ? { out: this.outTotal, err: this.errTotal } : { out: 0, err: 0 };
    const after = (text: string, total: number, start: number): string => {
      const skip = start - (total - text.length);
      if (skip <= 0) return text;
      // A partial line at the mark belongs to the past.
      const nl = text.indexOf("\n", skip - 1);
      return nl < 0 ? "" : text.slice(nl + 1);
    };
    const find = (): string | null => {
      const out = after(this.out, this.outTotal, from.out);
      const err = after(this.err, this.errTotal, from.err);
      const texts = stream === "both" ? [out, err] : [stream === "stdout" ? out : err];
      for (const t of texts) {
        // Complete lines only, unless the program has ended.
        const lines = t.split("\n");
        if (this.status === null) lines.pop();
        const hit = lines.find(test);
        if (hit !== undefined) return hit;
      }
      return null;
    };
    const what = `${this.command.join(" ")}`;
    return new Promise((resolve, reject) => {
      const finish = (f: () => void) => {
        clearTimeout(timer);
        this.wake.delete(check);
        f();
      };
      const check = () => {
        const hit = find();
        if (hit !== null) finish(() => resolve(hit));
        else if (this.status !== null)
          finish(() =>
            reject(
              new ToasimError(
                ToasimErrorCode.exited,
                `${what} exited (${describe(this.status!)}) before printing ${String(match)}${tailOf(this.err)}`,
              ),
            ),
          );
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new ToasimError(
                ToasimErrorCode.timeout,
                `${what} printed no ${String(match)} within ${ms} ms${tailOf(this.err)}`,
              ),
            ),
          ),
        ms,
      );
      this.wake.add(check);
      check();
    });
  }

  /** Sends a signal (default SIGTERM) if it still runs. */
  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.status === null) this.child.kill(signal);
  }

  /** Ends it: `signal`, then SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 5000): Promise<ExitStatus> {
    if (this.status !== null) return this.status;
    this.child.stdin?.end();
    this.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((r) => {
      timer = setTimeout(() => r("late"), graceMs);
    });
    const first = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (first === "late") this.child.kill("SIGKILL");
    return this.exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

function keep(acc: string, chunk: string): string {
  const s = acc + chunk;
  return s.length <= KEEP ? s : s.slice(-KEEP);
}

export function describe(s: ExitStatus): string {
  return s.signal !== null ? `signal ${s.signal}` : `exit code ${s.code}`;
}

function tailOf(stderr: string): string {
  const t = stderr.trim().split("\n").slice(-5).join("\n");
  return t === "" ? "" : `; stderr: ${t}`;
}
