/**
 * The runtime layer's error: a running instance could not do what it was
 * asked (unreachable, busy, refused by its worker, already stopped), or
 * could not be registered.
 */
export const RuntimeErrorCode = {
  /** The control socket of the instance cannot be reached. */
  unreachable: "UNREACHABLE",
  /** The same kind of request is already under way (a capture of that side, scripted clients). */
  busy: "BUSY",
  /** The packet worker or the control server said no; the message says why. */
  refused: "REFUSED",
  /** The instance has stopped. */
  stopped: "STOPPED",
  /** Options that cannot go together (the null forwarder with the server side in the root namespace). */
  unsupported: "UNSUPPORTED",
  /** The packet worker failed; the instance stops. */
  workerFailed: "WORKER_FAILED",
  /** The instance id is owned by a live process, or the root namespace already serves another instance. */
  instanceExists: "INSTANCE_EXISTS",
  /** The instance's record in /run/toasim could not be written. */
  stateFailed: "STATE_FAILED",
  /** A setting from the environment (TOASIM_OFFLOAD) that means nothing. */
  badEnvironment: "BAD_ENVIRONMENT",
} as const;
export type RuntimeErrorCode = (typeof RuntimeErrorCode)[keyof typeof RuntimeErrorCode];

export class RuntimeError extends Error {
  override readonly name = "RuntimeError";
  constructor(
    readonly code: RuntimeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
