import { runProcess } from "../run-process.js";
import { VmError, VmErrorCode } from "./errors.js";

/**
 * Runs a helper program (apt-get, dpkg-deb, make, xz) to completion, keeping
 * its output for the error message; one that cannot start is a VmError.
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

export async function runTool(
  argv: readonly string[],
  opts: ToolOptions = {},
): Promise<ToolResult> {
  const cmd = argv[0];
  if (cmd === undefined) throw new VmError(VmErrorCode.badInput, "empty command");
  const r = await runProcess(argv, opts);
  if (r.spawnError !== null) {
    const e = r.spawnError;
    throw new VmError(
      e.code === "ENOENT" ? VmErrorCode.missingTool : VmErrorCode.vmFailed,
      e.code === "ENOENT"
        ? `${cmd} is not installed (toasim doctor --install installs what is missing)`
        : `cannot run ${cmd}: ${e.message}`,
      { cause: e },
    );
  }
  const code = r.code ?? 128 + (r.signal === "SIGKILL" ? 9 : 15);
  return { code, stdout: r.stdout, stderr: r.stderr };
}

/** The last lines of a tool's output, for an error message. */
export function tail(text: string, lines = 15): string {
  const all = text.trimEnd().split("\n");
  return all.slice(-lines).join("\n");
}
