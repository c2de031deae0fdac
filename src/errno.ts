/**
 * The errno numbers toasim names, in one table for every layer: Linux's
 * asm-generic numbers (x86_64 and aarch64 agree) with glibc's strerror
 * text, so messages read the same whether or not libc is loaded and tests
 * can assert them. Each layer's error type keeps its own `code`; this is
 * only the vocabulary of the system calls under them.
 */
const TABLE = {
  EPERM: [1, "Operation not permitted"],
  ENOENT: [2, "No such file or directory"],
  ESRCH: [3, "No such process"],
  EINTR: [4, "Interrupted system call"],
  EIO: [5, "Input/output error"],
  ENXIO: [6, "No such device or address"],
  E2BIG: [7, "Argument list too long"],
  EBADF: [9, "Bad file descriptor"],
  EAGAIN: [11, "Resource temporarily unavailable"],
  ENOMEM: [12, "Cannot allocate memory"],
  EACCES: [13, "Permission denied"],
  EFAULT: [14, "Bad address"],
  EBUSY: [16, "Device or resource busy"],
  EEXIST: [17, "File exists"],
  ENODEV: [19, "No such device"],
  ENOTDIR: [20, "Not a directory"],
  EINVAL: [22, "Invalid argument"],
  ENFILE: [23, "Too many open files in system"],
  EMFILE: [24, "Too many open files"],
  ENOTTY: [25, "Inappropriate ioctl for device"],
  ENOSPC: [28, "No space left on device"],
  EROFS: [30, "Read-only file system"],
  ERANGE: [34, "Numerical result out of range"],
  ENAMETOOLONG: [36, "File name too long"],
  ENOSYS: [38, "Function not implemented"],
  ENOTSOCK: [88, "Socket operation on non-socket"],
  EMSGSIZE: [90, "Message too long"],
  ENOPROTOOPT: [92, "Protocol not available"],
  EOPNOTSUPP: [95, "Operation not supported"],
  EAFNOSUPPORT: [97, "Address family not supported by protocol"],
  ENETDOWN: [100, "Network is down"],
  ENOBUFS: [105, "No buffer space available"],
  ENOTCONN: [107, "Transport endpoint is not connected"],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrnoName = keyof typeof TABLE;

/** Errno.ENOENT === 2: the numbers by name (a frozen table, no enum). */
export const Errno = Object.freeze(
  Object.fromEntries(Object.entries(TABLE).map(([name, [n]]) => [name, n])),
) as { readonly [K in ErrnoName]: (typeof TABLE)[K][0] };

const BY_NUMBER: ReadonlyMap<number, readonly [ErrnoName, string]> = new Map(
  Object.entries(TABLE).map(([name, [n, text]]) => [n, [name as ErrnoName, text]] as const),
);

/** The symbolic name ("ENOENT"), or null when the number is not in the table. */
export function errnoName(errno: number): ErrnoName | null {
  return BY_NUMBER.get(errno)?.[0] ?? null;
}

/** "ENOENT (No such file or directory)", or "errno 321" for numbers not in the table. */
export function describeErrno(errno: number): string {
  const e = BY_NUMBER.get(errno);
  return e === undefined ? `errno ${errno}` : `${e[0]} (${e[1]})`;
}
