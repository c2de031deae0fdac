/**
 * The one error type of the decoder layer. `code` is stable; the message
 * says what is missing and how to get it.
 */
export const DecoderErrorCode = {
  /** Not Linux, not root, no kernel BTF, no cgroup v2, no BPF syscall. */
  unavailable: "UNAVAILABLE",
  /** clang, bpftool or libbpf is not installed. */
  missingTool: "MISSING_TOOL",
  /** The BPF object did not compile. */
  buildFailed: "BUILD_FAILED",
  /** The kernel refused a program (the verifier's log is in the message) or a map. */
  loadFailed: "LOAD_FAILED",
  /** A cgroup or tc attachment failed. */
  attachFailed: "ATTACH_FAILED",
  /** A setting (trusted range, option kind, device) is not valid. */
  badInput: "BAD_INPUT",
  /** No decoder of that name is loaded. */
  notLoaded: "NOT_LOADED",
} as const;

export type DecoderErrorCode = (typeof DecoderErrorCode)[keyof typeof DecoderErrorCode];

export class DecoderError extends Error {
  override readonly name = "DecoderError";
  constructor(
    readonly code: DecoderErrorCode,
    message: string,
    readonly errno: number | null = null,
    options: { cause?: unknown } = {},
  ) {
    super(message, "cause" in options ? { cause: options.cause } : undefined);
  }
}
