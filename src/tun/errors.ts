import { describeErrno } from "../errno.js";

/**
 * The one error type of the TUN layer. `code` is stable (callers and tests
 * branch on it); `errno` is the C errno when a system call failed, null
 * otherwise. The message names the call and the device or namespace, so a
 * failure in a topology of two namespaces says which one.
 */
export const TunErrorCode = {
  openFailed: "OPEN_FAILED",
  ioctlFailed: "IOCTL_FAILED",
  readFailed: "READ_FAILED",
  writeFailed: "WRITE_FAILED",
  closeFailed: "CLOSE_FAILED",
  pollFailed: "POLL_FAILED",
  netnsFailed: "NETNS_FAILED",
  sysctlFailed: "SYSCTL_FAILED",
  noTunSupport: "NO_TUN_SUPPORT",
  loadFailed: "LOAD_FAILED",
  notRoot: "NOT_ROOT",
  commandFailed: "COMMAND_FAILED",
  topologyExists: "TOPOLOGY_EXISTS",
  invalidArgument: "INVALID_ARGUMENT",
  /** The server side in the root namespace, outside a toasim vm guest. */
  rootNetnsRefused: "ROOT_NETNS_REFUSED",
  closed: "CLOSED",
} as const;

export type TunErrorCode = (typeof TunErrorCode)[keyof typeof TunErrorCode];

export class TunError extends Error {
  override readonly name = "TunError";
  readonly code: TunErrorCode;
  readonly errno: number | null;

  /**
   * `what` names the call and its object ("open /dev/net/tun in netns
   * toasim-ab12-c"); with an errno the message goes on with its name and
   * text, then the hint (what to do about it) if there is one.
   */
  constructor(
    code: TunErrorCode,
    what: string,
    errno: number | null = null,
    options: { cause?: unknown; hint?: string } = {},
  ) {
    const base = errno === null ? what : `${what}: ${describeErrno(errno)}`;
    super(
      options.hint === undefined ? base : `${base}; ${options.hint}`,
      "cause" in options ? { cause: options.cause } : undefined,
    );
    this.code = code;
    this.errno = errno;
  }
}
