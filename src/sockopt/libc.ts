import { type Ffi, type FfiLib, openLibrary } from "../ffi.js";
import { SockoptError, SockoptErrorCode } from "./errors.js";

/**
 * The three libc calls the readers make, through koffi, loaded on first use:
 * importing the layer (abi.ts alone, or a non-Linux machine) loads no native
 * code, and a missing koffi becomes a SockoptError instead of a failed import.
 *
 * Buffers are passed as `void *` Uint8Arrays: koffi hands the kernel the
 * view's own memory, so what getsockopt writes into the value and into the
 * socklen_t (a 4-byte view, host order) is visible without copying back.
 */
export interface SockLibc {
  getsockopt(fd: number, level: number, optname: number, val: Uint8Array, len: Uint8Array): number;
  getpeername(fd: number, addr: Uint8Array, len: Uint8Array): number;
  getsockname(fd: number, addr: Uint8Array, len: Uint8Array): number;
  /** errno of the last koffi call on this thread: read it right after the call. */
  errno(): number;
}

let loaded: SockLibc | null = null;

export function sockLibc(): SockLibc {
  if (loaded !== null) return loaded;
  if (process.platform !== "linux") {
    throw new SockoptError(
      SockoptErrorCode.unsupported,
      `the TOA/UOA socket options exist on Linux only (this is ${process.platform})`,
    );
  }
  let koffi: Ffi;
  let lib: FfiLib;
  try {
    ({ koffi, lib } = openLibrary(null, "the socket-option readers use"));
  } catch (e) {
    throw new SockoptError(SockoptErrorCode.loadFailed, (e as Error).message, null, { cause: e });
  }
  loaded = {
    getsockopt: lib.func(
      "int getsockopt(int fd, int level, int optname, void *optval, void *optlen)",
    ) as SockLibc["getsockopt"],
    getpeername: lib.func(
      "int getpeername(int fd, void *addr, void *addrlen)",
    ) as SockLibc["getpeername"],
    getsockname: lib.func(
      "int getsockname(int fd, void *addr, void *addrlen)",
    ) as SockLibc["getsockname"],
    errno: () => koffi.errno(),
  };
  return loaded;
}
