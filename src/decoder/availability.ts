import { existsSync } from "node:fs";
import { onPath } from "../run-process.js";
import { decoderUnavailable } from "./decoder.js";

/** A kernel module answering the TOA/UOA ABIs, if one is loaded. */
export function moduleDecoder(): string | null {
  if (existsSync("/sys/module/toasim")) return "toasim.ko";
  if (existsSync("/proc/net/toa_stats") || existsSync("/proc/net/uoa_stats"))
    return "a TOA/UOA module";
  return null;
}

const LIBBPF = [
  "/usr/lib/x86_64-linux-gnu/libbpf.so.1",
  "/usr/lib/aarch64-linux-gnu/libbpf.so.1",
  "/usr/lib/libbpf.so.1",
] as const;

/** Why the eBPF decoder cannot be built and loaded here, or null. */
export function ebpfUnavailable(): string | null {
  const why = decoderUnavailable();
  if (why !== null) return why;
  for (const [cmd, pkg] of [
    ["clang", "clang"],
    ["bpftool", "bpftool"],
  ] as const) {
    if (onPath(cmd) === null)
      return `${cmd} is not installed (Debian package ${pkg}; toasim doctor --install installs what is missing)`;
  }
  if (!LIBBPF.some((p) => existsSync(p)))
    return "libbpf is not installed (Debian package libbpf1; toasim doctor --install installs what is missing)";
  return null;
}
