import { createRequire } from "node:module";
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
  let koffi: KoffiModule;
  try {
    // koffi is CommonJS with a native addon; require it only when a reader runs.
    koffi = createRequire(import.meta.url)("koffi") as KoffiModule;
  } catch (e) {
    throw new SockoptError(
      SockoptErrorCode.loadFailed,
      `load koffi (the FFI the socket-option readers use; run npm install): ${(e as Error).message}`,
      null,
      { cause: e },
    );
  }
  let lib: KoffiLib;
  try {
    // null: the symbols already linked into node (glibc or musl alike).
    lib = koffi.load(null);
  } catch (e) {
    throw new SockoptError(
      SockoptErrorCode.loadFailed,
      `load libc through koffi: ${(e as Error).message}`,
      null,
      { cause: e },
    );
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

// The koffi entry points used, typed here so the layer compiles without
// koffi's own types.
interface KoffiLib {
  func(definition: string): unknown;
}
interface KoffiModule {
  load(path: string | null): KoffiLib;
  errno(): number;
}
