import { type ErrnoName, errnoName } from "../errno.js";

/**
 * The one error type of the sockopt layer. `code` is stable (callers and
 * tests branch on it); `errno` and `errnoName` are set when a system call
 * failed, so an application can tell "no decoder loaded" (ENOPROTOOPT) from
 * "decoder loaded, no address seen" (EINVAL / ENOENT) without parsing text.
 */
export const SockoptErrorCode = {
  /** getsockopt/getpeername/getsockname returned -1; `errno` says why. */
  syscallFailed: "SYSCALL_FAILED",
  /** The socket has no file descriptor (closed, not yet bound or connected). */
  noFd: "NO_FD",
  /** Not Linux, or the object is not a socket this layer can read. */
  unsupported: "UNSUPPORTED",
  /** koffi or libc could not be loaded. */
  loadFailed: "LOAD_FAILED",
  /** A buffer shorter than its layout (also a kernel reply shorter than asked). */
  shortBuffer: "SHORT_BUFFER",
  /** An address family the layout does not define (neither AF_INET nor AF_INET6). */
  badFamily: "BAD_FAMILY",
  /** An argument that is not a valid address, port or form. */
  invalidArgument: "INVALID_ARGUMENT",
} as const;

export type SockoptErrorCode = (typeof SockoptErrorCode)[keyof typeof SockoptErrorCode];

/**
 * The errnos the readers name. The C and Python readers under examples/
 * carry the same list, so the three report the same names; any other number
 * is `ERRNO_<n>` in all three.
 */
export const READER_ERRNOS: ReadonlySet<ErrnoName> = new Set([
  "EPERM",
  "ENOENT",
  "EINTR",
  "EBADF",
  "EAGAIN",
  "ENOMEM",
  "EACCES",
  "EFAULT",
  "EBUSY",
  "EINVAL",
  "ENOSPC",
  "ERANGE",
  "ENOTSOCK",
  "ENOPROTOOPT",
  "EOPNOTSUPP",
  "EAFNOSUPPORT",
  "ENOBUFS",
  "ENOTCONN",
] as const);

/** "ENOPROTOOPT", or "ERRNO_<n>" for a number outside the readers' list. */
export function readerErrnoName(errno: number): string {
  const name = errnoName(errno);
  return name !== null && READER_ERRNOS.has(name) ? name : `ERRNO_${errno}`;
}

export class SockoptError extends Error {
  override readonly name = "SockoptError";
  readonly code: SockoptErrorCode;
  /** The C errno when a system call failed, null otherwise. */
  readonly errno: number | null;
  /** readerErrnoName(errno), or null without an errno. */
  readonly errnoName: string | null;
  /**
   * The number that broke a layout: the buffer length for SHORT_BUFFER, the
   * address family for BAD_FAMILY; null otherwise. Reports carry it, so the
   * three readers can print the same thing.
   */
  readonly got: number | null;

  /** `what` names the call and the option ("getsockopt(IPPROTO_IP, 2049) on fd 17"). */
  constructor(
    code: SockoptErrorCode,
    what: string,
    errno: number | null = null,
    options: { cause?: unknown; got?: number } = {},
  ) {
    super(
      errno === null ? what : `${what}: ${readerErrnoName(errno)}`,
      "cause" in options ? { cause: options.cause } : undefined,
    );
    this.code = code;
    this.errno = errno;
    this.errnoName = errno === null ? null : readerErrnoName(errno);
    this.got = options.got ?? null;
  }
}
