import type { Command } from "commander";
import { EBPF_UNAVAILABLE } from "../api/decoder-choice.js";
import { DecoderError } from "../decoder/errors.js";
import { DEFAULT_SETTINGS } from "../decoder/maps.js";
import { CliError } from "./errors.js";

/**
 * `--decoder auto|ebpf|none` on the commands that start an instance. auto:
 * the eBPF decoder unless a TOA/UOA kernel module is loaded (it decodes
 * already) or this machine cannot run it (then the reason is printed and
 * the instance runs without, as a real server without a decoder would).
 */
export interface DecoderFlags {
  decoder?: string;
  decoderTrusted?: string;
  decoderUoaTimeout?: string;
}

export function addDecoderOptions(cmd: Command): Command {
  return cmd
    .option(
      "--decoder <mode>",
      "server-side decoder: auto (the default: eBPF unless a TOA/UOA module is loaded), ebpf, none",
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

/** The decoder option of the API, as text. */
export function decoderOf(f: DecoderFlags): Record<string, string> {
  return {
    ...(f.decoder !== undefined ? { mode: f.decoder } : {}),
    ...(f.decoderTrusted !== undefined ? { trusted: f.decoderTrusted } : {}),
    ...(f.decoderUoaTimeout !== undefined ? { uoaTimeoutSec: f.decoderUoaTimeout } : {}),
  };
}

/** --decoder ebpf on a machine that cannot run it: the flag's error, exit code 1. */
export function decoderFlagError(e: unknown): unknown {
  if (e instanceof DecoderError && e.message.startsWith(EBPF_UNAVAILABLE))
    return new CliError(
      "RUNTIME",
      "--decoder",
      `ebpf: ${e.message.slice(EBPF_UNAVAILABLE.length)}`,
    );
  return e;
}
