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
  stateFailed: "STATE_FAILED",
} as const;

export type TunErrorCode = (typeof TunErrorCode)[keyof typeof TunErrorCode];

/**
 * Linux errno numbers (asm-generic, the same on x86_64 and aarch64) and the
 * glibc strerror text, so messages read the same with or without libc loaded
 * and a test can assert them.
 */
const ERRNO = {
  1: ["EPERM", "Operation not permitted"],
  2: ["ENOENT", "No such file or directory"],
  3: ["ESRCH", "No such process"],
  4: ["EINTR", "Interrupted system call"],
  5: ["EIO", "Input/output error"],
  6: ["ENXIO", "No such device or address"],
  9: ["EBADF", "Bad file descriptor"],
  11: ["EAGAIN", "Resource temporarily unavailable"],
  12: ["ENOMEM", "Cannot allocate memory"],
  13: ["EACCES", "Permission denied"],
  14: ["EFAULT", "Bad address"],
  16: ["EBUSY", "Device or resource busy"],
  17: ["EEXIST", "File exists"],
  19: ["ENODEV", "No such device"],
  20: ["ENOTDIR", "Not a directory"],
  22: ["EINVAL", "Invalid argument"],
  23: ["ENFILE", "Too many open files in system"],
  24: ["EMFILE", "Too many open files"],
  25: ["ENOTTY", "Inappropriate ioctl for device"],
  28: ["ENOSPC", "No space left on device"],
  30: ["EROFS", "Read-only file system"],
  36: ["ENAMETOOLONG", "File name too long"],
  38: ["ENOSYS", "Function not implemented"],
  55: ["ENOBUFS", "No buffer space available"],
  90: ["EMSGSIZE", "Message too long"],
  95: ["EOPNOTSUPP", "Operation not supported"],
  100: ["ENETDOWN", "Network is down"],
} as const satisfies Record<number, readonly [string, string]>;

/** Named errno constants used by the layer (no enums: a frozen table). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  EMFILE: 24,
  ENOSPC: 28,
} as const;

/** "ENOENT (No such file or directory)", or "errno 321" for numbers not in the table. */
export function describeErrno(errno: number): string {
  const e = (ERRNO as Record<number, readonly [string, string] | undefined>)[errno];
  return e === undefined ? `errno ${errno}` : `${e[0]} (${e[1]})`;
}

/** The symbolic name ("ENOENT"), or null when the number is not in the table. */
export function errnoName(errno: number): string | null {
  const e = (ERRNO as Record<number, readonly [string, string] | undefined>)[errno];
  return e === undefined ? null : e[0];
}

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
