/**
 * The API layer's error. Lower layers' errors reach the caller as they are
 * (TunError, DecoderError, GatewayError, ScenarioError, VmError,
 * RuntimeError: each with a stable `code`); this one is for what the API
 * itself checks: options, instances, the programs it runs.
 */
export const ToasimErrorCode = {
  /** An option has a bad value; `option` names it (`services[1]`, `settings.toaKind`). */
  badOption: "BAD_OPTION",
  /** No running instance matches (attach, down, exec). */
  noInstance: "NO_INSTANCE",
  /** A program could not be started in a namespace (not installed, not executable). */
  spawnFailed: "SPAWN_FAILED",
  /** A wait had a time limit and it passed. */
  timeout: "TIMEOUT",
  /** A program ended before what was waited for. */
  exited: "EXITED",
  /** The instance has stopped. */
  stopped: "STOPPED",
} as const;
export type ToasimErrorCode = (typeof ToasimErrorCode)[keyof typeof ToasimErrorCode];

export class ToasimError extends Error {
  override readonly name = "ToasimError";
  constructor(
    readonly code: ToasimErrorCode,
    /** What is wrong, without the option's name (the message has both). */
    readonly detail: string,
    /** The option at fault (BAD_OPTION), as a path into the options object. */
    readonly option: string | null = null,
    options?: { cause?: unknown },
  ) {
    super(option === null ? detail : `${option}: ${detail}`, options);
  }
}

export function badOption(option: string, message: string, cause?: unknown): never {
  throw new ToasimError(
    ToasimErrorCode.badOption,
    message,
    option,
    cause === undefined ? undefined : { cause },
  );
}
