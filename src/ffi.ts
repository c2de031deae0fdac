import { createRequire } from "node:module";

/**
 * koffi, loaded on first use by the layers that call C (TUN devices, the
 * socket-option readers, the eBPF loader), so that importing those layers
 * loads no native code. Only the entry points used are typed, so the layers
 * compile without koffi's own types.
 */
export interface FfiLib {
  func(definition: string): unknown;
}

export interface Ffi {
  load(path: string | null): FfiLib;
  errno(): number;
}

/**
 * koffi and one library from it: `path` null means the symbols already
 * linked into node (libc, glibc or musl alike, unlike naming "libc.so.6").
 * Throws a plain Error whose message names the step that failed and, with
 * `purpose` and `fix`, what it was for and how to get it; callers wrap it
 * in their layer's error type.
 */
export function openLibrary(
  path: string | null,
  purpose: string,
  fix = "",
): { koffi: Ffi; lib: FfiLib } {
  let koffi: Ffi;
  try {
    // createRequire: koffi is CommonJS with a native addon.
    koffi = createRequire(import.meta.url)("koffi") as Ffi;
  } catch (e) {
    throw new Error(`load koffi (the FFI ${purpose}; run npm install): ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    return { koffi, lib: koffi.load(path) };
  } catch (e) {
    const name = path ?? "libc";
    const how = fix === "" ? "" : ` (${fix})`;
    throw new Error(`load ${name} through koffi${how}: ${(e as Error).message}`, { cause: e });
  }
}
