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
 * Linux errno numbers (asm-generic: x86_64 and aarch64 agree) for the errors
 * these calls give. The C and Python readers under examples/ carry the same
 * table, so the three report the same names; numbers outside it are named
 * `ERRNO_<n>` by all three.
 */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  ENOTSOCK: 88,
  ENOPROTOOPT: 92,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  ENOBUFS: 105,
  ENOTCONN: 107,
} as const;

const NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(Errno).map(([name, n]) => [n, name] as const),
);

/** "ENOPROTOOPT", or "ERRNO_<n>" for a number outside the table. */
export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `ERRNO_${errno}`;
}

export class SockoptError extends Error {
  override readonly name = "SockoptError";
  readonly code: SockoptErrorCode;
  /** The C errno when a system call failed, null otherwise. */
  readonly errno: number | null;
  /** errnoName(errno), or null without an errno. */
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
      errno === null ? what : `${what}: ${errnoName(errno)}`,
      "cause" in options ? { cause: options.cause } : undefined,
    );
    this.code = code;
    this.errno = errno;
    this.errnoName = errno === null ? null : errnoName(errno);
    this.got = options.got ?? null;
  }
}
