import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/**
 * Runs a program to its end and keeps its output, with a time limit. It
 * never rejects: a program that cannot start comes back with `spawnError`,
 * so that each layer words the failure in its own error type. Asynchronous,
 * so a long download, build or client never blocks the event loop that
 * reports progress and handles Ctrl-C.
 */
export interface ProcessResult {
  /** The exit code, or null when a signal ended it (or it never started). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Set when the program could not be started (ENOENT: not installed). */
  readonly spawnError: NodeJS.ErrnoException | null;
  /** The time limit passed and the program was killed. */
  readonly timedOut: boolean;
}

export interface ProcessOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Written to its stdin, which is then closed (default: no stdin). */
  readonly input?: string;
  /**
   * Killed after this long (default: no limit). The signal reaches the
   * program, not what it started: `sh -c` without exec ends only when its
   * children close the output too.
   */
  readonly timeoutMs?: number;
  /** The signal the time limit sends (default SIGKILL; SIGTERM lets it clean up). */
  readonly killSignal?: NodeJS.Signals;
  /** Each line of output as it arrives (progress). */
  readonly onLine?: (line: string) => void;
  /** Kept whole in the result; otherwise only the last 64 KiB of each stream. */
  readonly keepAll?: boolean;
  /** The child is in this set while it runs, for a caller that kills what is left on its way out. */
  readonly children?: Set<ChildProcess>;
}

const TAIL = 64 * 1024;

export function runProcess(
  argv: readonly string[],
  opts: ProcessOptions = {},
): Promise<ProcessResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new TypeError("runProcess: empty command");
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    opts.children?.add(child);
    let stdout = "";
    let stderr = "";
    let partial = "";
    let timedOut = false;
    let spawnError: NodeJS.ErrnoException | null = null;
    const keep = (acc: string, chunk: string): string => {
      const s = acc + chunk;
      return opts.keepAll || s.length <= TAIL ? s : s.slice(-TAIL);
    };
    const lines = (chunk: string): void => {
      if (opts.onLine === undefined) return;
      partial += chunk;
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      for (const l of parts) opts.onLine(l);
    };
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      stdout = keep(stdout, d);
      lines(d);
    });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      stderr = keep(stderr, d);
      lines(d);
    });
    if (child.stdin) {
      // A program that exits without reading its input is not an error here.
      child.stdin.on("error", () => {});
      child.stdin.end(opts.input);
    }
    const timer =
      opts.timeoutMs === undefined
        ? null
        : setTimeout(() => {
            timedOut = true;
            child.kill(opts.killSignal ?? "SIGKILL");
          }, opts.timeoutMs);
    child.on("error", (e: NodeJS.ErrnoException) => {
      spawnError = e;
    });
    child.on("close", (code, signal) => {
      if (timer !== null) clearTimeout(timer);
      opts.children?.delete(child);
      if (partial !== "" && opts.onLine) opts.onLine(partial);
      resolve({
        code: spawnError === null ? code : null,
        signal,
        stdout,
        stderr,
        spawnError,
        timedOut,
      });
    });
  });
}

/** The path of an executable on PATH, or null. */
export function onPath(cmd: string): string | null {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir === "") continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // Not here.
    }
  }
  return null;
}
