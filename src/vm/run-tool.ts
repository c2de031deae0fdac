import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { VmError, VmErrorCode } from "./errors.js";

/**
 * Runs a helper program (apt-get, dpkg-deb, make, xz) to completion, keeping
 * its output for the error message. Asynchronous, so a long download or
 * build never blocks the event loop that reports progress and handles
 * Ctrl-C.
 */
export interface ToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ToolOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Each line of output as it arrives (progress). */
  readonly onLine?: (line: string) => void;
  /** Kept whole in the result; otherwise only the last 64 KiB. */
  readonly keepAll?: boolean;
}

const TAIL = 64 * 1024;

export function runTool(argv: readonly string[], opts: ToolOptions = {}): Promise<ToolResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new VmError(VmErrorCode.badInput, "empty command");
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let partial = "";
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
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout = keep(stdout, d);
      lines(d);
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr = keep(stderr, d);
      lines(d);
    });
    child.on("error", (e: NodeJS.ErrnoException) => {
      reject(
        new VmError(
          e.code === "ENOENT" ? VmErrorCode.missingTool : VmErrorCode.vmFailed,
          e.code === "ENOENT"
            ? `${cmd} is not installed (run: npm run setup, as root)`
            : `cannot run ${cmd}: ${e.message}`,
          { cause: e },
        ),
      );
    });
    child.on("close", (code, signal) => {
      if (partial !== "" && opts.onLine) opts.onLine(partial);
      resolve({ code: code ?? 128 + (signal === "SIGKILL" ? 9 : 15), stdout, stderr });
    });
  });
}

/** The last lines of a tool's output, for an error message. */
export function tail(text: string, lines = 15): string {
  const all = text.trimEnd().split("\n");
  return all.slice(-lines).join("\n");
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
