/**
 * The CLI layer's error: bad user input, reported as one line naming the
 * flag, exit code 2 (the usage-error convention of BSD sysexits' EX_USAGE
 * predecessors and of most Unix tools).
 */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    readonly code: "BAD_FLAG" | "BAD_COMBINATION" | "IO" | "NO_INSTANCE" | "RUNTIME",
    readonly flag: string | null,
    message: string,
    readonly exitCode = 2,
  ) {
    super(flag ? `${flag}: ${message}` : message);
  }
}
