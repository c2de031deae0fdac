import { ebpfUnavailable, moduleDecoder } from "../decoder/availability.js";
import { DecoderError, DecoderErrorCode } from "../decoder/errors.js";
import type { DecoderSettings } from "../decoder/maps.js";
import type { ResolvedUp } from "./options.js";

/** How the refusal of decoder "ebpf" starts (the CLI words it as the --decoder flag's). */
export const EBPF_UNAVAILABLE = "the eBPF decoder cannot run here: ";

export interface DecoderChoice {
  /** The eBPF decoder's settings when the instance loads it, else null. */
  readonly settings: DecoderSettings | null;
  /** What decodes for the instance's servers: "ebpf", a loaded module's name, or "none". */
  readonly name: string;
  /** Why auto decided as it did, when it did not load the eBPF decoder. */
  readonly note: string | null;
}

/**
 * What decodes for an instance. auto: the eBPF decoder, unless a TOA/UOA
 * module is loaded (it decodes every namespace already) or this machine
 * cannot run it (then the instance runs without, as a real server without
 * a decoder would, and the note says why). ebpf insists: a DecoderError
 * UNAVAILABLE when it cannot run.
 */
export function chooseDecoder(d: ResolvedUp["decoder"]): DecoderChoice {
  if (d.mode === "none") return { settings: null, name: moduleDecoder() ?? "none", note: null };
  const mod = moduleDecoder();
  if (d.mode === "auto" && mod !== null)
    return { settings: null, name: mod, note: `${mod} is loaded and decodes: no eBPF decoder` };
  const why = ebpfUnavailable();
  if (why !== null) {
    if (d.mode === "ebpf")
      throw new DecoderError(
        DecoderErrorCode.unavailable,
        `the eBPF decoder cannot run here: ${why}`,
      );
    return { settings: null, name: mod ?? "none", note: `no eBPF decoder: ${why}` };
  }
  return { settings: d.settings, name: "ebpf", note: null };
}
