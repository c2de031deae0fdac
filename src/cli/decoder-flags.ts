import { existsSync } from "node:fs";
import type { Command } from "commander";
import { decoderUnavailable } from "../decoder/decoder.js";
import { DEFAULT_SETTINGS, type DecoderSettings } from "../decoder/maps.js";
import { onPath } from "../vm/run-tool.js";
import { CliError } from "./errors.js";
import { choiceFlag, intFlag } from "./parse-flags.js";

/**
 * `--decoder auto|ebpf|none` on the commands that start an instance. auto:
 * the eBPF decoder unless a TOA/UOA kernel module is loaded (it decodes
 * already) or this machine cannot run it (then the reason is printed and
 * the instance runs without, as a real server without a decoder would).
 */
export interface DecoderFlags {
  decoder: string;
  decoderTrusted?: string;
  decoderUoaTimeout?: string;
}

export function addDecoderOptions(cmd: Command): Command {
  return cmd
    .option(
      "--decoder <mode>",
      "server-side decoder: auto (eBPF unless a TOA/UOA module is loaded), ebpf, none",
      "auto",
    )
    .option(
      "--decoder-trusted <list>",
      `eBPF decoder: gateway source ranges whose carriers are believed (default ${(DEFAULT_SETTINGS.trusted as string[]).join(",")}; "any")`,
    )
    .option(
      "--decoder-uoa-timeout <s>",
      `eBPF decoder: seconds a UDP flow's client is kept (default ${DEFAULT_SETTINGS.uoaTimeoutSec})`,
    );
}

/** A kernel module answering the TOA/UOA ABIs, if one is loaded. */
export function moduleDecoder(): string | null {
  if (existsSync("/sys/module/toasim")) return "toasim.ko";
  if (existsSync("/proc/net/toa_stats") || existsSync("/proc/net/uoa_stats"))
    return "a TOA/UOA module";
  return null;
}

/** Why the eBPF decoder cannot be built and loaded here, or null. */
export function ebpfUnavailable(): string | null {
  const why = decoderUnavailable();
  if (why !== null) return why;
  for (const [cmd, pkg] of [
    ["clang", "clang"],
    ["bpftool", "bpftool"],
  ] as const) {
    if (onPath(cmd) === null)
      return `${cmd} is not installed (npm run setup, as root; Debian package ${pkg})`;
  }
  if (
    ![
      "/usr/lib/x86_64-linux-gnu/libbpf.so.1",
      "/usr/lib/aarch64-linux-gnu/libbpf.so.1",
      "/usr/lib/libbpf.so.1",
    ].some(existsSync)
  )
    return "libbpf is not installed (npm run setup, as root; Debian package libbpf1)";
  return null;
}

export function settingsFrom(f: DecoderFlags): DecoderSettings {
  let trusted: DecoderSettings["trusted"] = DEFAULT_SETTINGS.trusted;
  if (f.decoderTrusted !== undefined) {
    const items = f.decoderTrusted
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
    if (items.length === 0) throw new CliError("BAD_FLAG", "--decoder-trusted", "empty list");
    trusted = items.includes("any") ? "any" : items;
  }
  const uoaTimeoutSec =
    f.decoderUoaTimeout === undefined
      ? DEFAULT_SETTINGS.uoaTimeoutSec
      : intFlag("--decoder-uoa-timeout", f.decoderUoaTimeout, 1, 86_400);
  return { ...DEFAULT_SETTINGS, trusted, uoaTimeoutSec };
}

/**
 * The decoder to load for an instance (null: none) and a note for the
 * user when auto decided against it.
 */
export function resolveDecoder(f: DecoderFlags): {
  settings: DecoderSettings | null;
  note: string | null;
} {
  const mode = choiceFlag("--decoder", f.decoder, ["auto", "ebpf", "none"] as const);
  const settings = settingsFrom(f);
  if (mode === "none") return { settings: null, note: null };
  const mod = moduleDecoder();
  if (mode === "auto" && mod !== null)
    return { settings: null, note: `${mod} is loaded and decodes: no eBPF decoder` };
  const why = ebpfUnavailable();
  if (why !== null) {
    if (mode === "ebpf") throw new CliError("RUNTIME", "--decoder", `ebpf: ${why}`, 1);
    return { settings: null, note: `no eBPF decoder: ${why}` };
  }
  return { settings, note: null };
}
