import { type Ffi, type FfiLib, openLibrary } from "../ffi.js";
import { TunError, TunErrorCode } from "./errors.js";

/**
 * The libc calls the TUN layer needs, through koffi. Loaded on first use, so
 * importing this module (the gateway's unit tests do, through device.ts)
 * loads no native code, and a machine without Linux or koffi gets a TunError
 * that says so instead of a failed import.
 *
 * Declarations use the prototype-string form with Buffer/Uint8Array
 * arguments: measured in the prototype, koffi passes the view's memory
 * (honouring its byteOffset) without copying, and pointer or
 * `koffi.alloc` forms were not faster. `open` and `ioctl` are variadic in C;
 * declaring them with fixed integer/pointer arguments is ABI-safe on x86_64
 * and aarch64 Linux (no O_CREAT mode, no floating point). koffi has no
 * ssize_t, so read/write return `long`.
 */
export interface Libc {
  open(path: string, flags: number): number;
  close(fd: number): number;
  ioctl(fd: number, request: number, arg: Uint8Array): number;
  /** ioctl whose argument is a value, not a pointer (TUNSETOFFLOAD). */
  ioctlValue(fd: number, request: number, arg: number): number;
  read(fd: number, buf: Uint8Array, count: number): number;
  write(fd: number, buf: Uint8Array, count: number): number;
  poll(fds: Uint8Array, nfds: number, timeoutMs: number): number;
  setns(fd: number, nstype: number): number;
  /** errno of the last call made through koffi on this thread; read it right after the call. */
  errno(): number;
  strerror(errnum: number): string;
}

/** Linux constants (x86_64 and aarch64 agree on all of these). */
export const Sys = {
  O_RDONLY: 0,
  O_RDWR: 2,
  O_NONBLOCK: 0o4000,
  O_CLOEXEC: 0o2000000,
  IFF_TUN: 0x0001,
  IFF_MULTI_QUEUE: 0x0100,
  IFF_NO_PI: 0x1000,
  IFF_VNET_HDR: 0x4000,
  /** _IOW('T', 202, int) */
  TUNSETIFF: 0x400454ca,
  /** _IOW('T', 208, unsigned int), the flags passed by value */
  TUNSETOFFLOAD: 0x400454d0,
  /** _IOW('T', 220, int), through a pointer */
  TUNSETVNETLE: 0x400454dc,
  /** struct ifreq: char ifr_name[IFNAMSIZ] + a 24-byte union (ifr_flags at 16). */
  IFREQ_SIZE: 40,
  IFNAMSIZ: 16,
  POLLIN: 0x001,
  POLLOUT: 0x004,
  POLLERR: 0x008,
  POLLHUP: 0x010,
  POLLNVAL: 0x020,
  /** struct pollfd: int fd @0, short events @4, short revents @6. */
  POLLFD_SIZE: 8,
  CLONE_NEWNET: 0x40000000,
} as const;

let loaded: Libc | null = null;

/** The bindings, loaded on the first call in this thread (each worker loads its own). */
export function libc(): Libc {
  if (loaded !== null) return loaded;
  if (process.platform !== "linux") {
    throw new TunError(
      TunErrorCode.noTunSupport,
      `TUN devices and network namespaces need Linux (this is ${process.platform})`,
    );
  }
  let koffi: Ffi;
  let lib: FfiLib;
  try {
    ({ koffi, lib } = openLibrary(null, "used for TUN devices"));
  } catch (e) {
    throw new TunError(TunErrorCode.loadFailed, (e as Error).message, null, { cause: e });
  }
  const strerror = lib.func("const char *strerror(int errnum)") as (n: number) => string;
  loaded = {
    open: lib.func("int open(const char *path, int flags)") as Libc["open"],
    close: lib.func("int close(int fd)") as Libc["close"],
    ioctl: lib.func("int ioctl(int fd, unsigned long request, void *arg)") as Libc["ioctl"],
    ioctlValue: lib.func(
      "int ioctl(int fd, unsigned long request, unsigned long arg)",
    ) as Libc["ioctlValue"],
    read: lib.func("long read(int fd, void *buf, unsigned long count)") as Libc["read"],
    write: lib.func("long write(int fd, const void *buf, unsigned long count)") as Libc["write"],
    poll: lib.func("int poll(void *fds, unsigned long nfds, int timeout)") as Libc["poll"],
    setns: lib.func("int setns(int fd, int nstype)") as Libc["setns"],
    errno: () => koffi.errno(),
    strerror: (n) => strerror(n),
  };
  return loaded;
}
