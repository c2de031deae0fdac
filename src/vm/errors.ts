/**
 * The one error type of the vm layer. `code` is stable (the CLI and the
 * tests branch on it); the message says what failed and what to do.
 */
export const VmErrorCode = {
  /** A --kernel value that names no series this layer knows. */
  unknownKernel: "UNKNOWN_KERNEL",
  /** apt-get / apt-cache / dpkg-deb failed or found no package. */
  fetchFailed: "FETCH_FAILED",
  /** The unpacked kernel package lacks something (vmlinuz, a module, headers). */
  badKernelPackage: "BAD_KERNEL_PACKAGE",
  /** A program this layer runs is not installed (qemu, busybox, xz, make). */
  missingTool: "MISSING_TOOL",
  /** make against the kernel's headers failed. */
  buildFailed: "BUILD_FAILED",
  /** A file given by the user (module, folder) is missing or not what it should be. */
  badInput: "BAD_INPUT",
  /** Another toasim process holds the cache lock for too long. */
  locked: "LOCKED",
  /** QEMU could not start, or the guest ended without the command's exit code. */
  vmFailed: "VM_FAILED",
  /** The guest did not finish within the time limit. */
  timeout: "TIMEOUT",
} as const;

export type VmErrorCode = (typeof VmErrorCode)[keyof typeof VmErrorCode];

export class VmError extends Error {
  override readonly name = "VmError";
  /** BUILD_FAILED: the compiler's first error line, the one to fix first. */
  readonly firstError: string | null;
  constructor(
    readonly code: VmErrorCode,
    message: string,
    options: { cause?: unknown; firstError?: string } = {},
  ) {
    super(message, "cause" in options ? { cause: options.cause } : undefined);
    this.firstError = options.firstError ?? null;
  }
}
