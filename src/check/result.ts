import type { RsNetns } from "../tun/topology.js";

/**
 * What `toasim check` finds: one row per case, profile, family, reader and
 * kernel, and the health of each kernel. The JSON output, the text matrix
 * and the HTML report are all drawn from this.
 */

/**
 * pass: the reader gave the client. fail: it gave something else (the
 * diagnosis says what and the likely cause). unsupported: the decoder does
 * not offer that reader or family (not a failure). error: the harness could
 * not run the case.
 */
export const RESULTS = ["pass", "fail", "unsupported", "error"] as const;
export type Result = (typeof RESULTS)[number];

export const FAMILIES = ["v4", "v6", "nat64"] as const;
export type Family = (typeof FAMILIES)[number];

/** How a server asks for the client: getpeername, or a getsockopt optname (2048 in its two layouts). */
export const READERS = ["getpeername", "2049", "4096", "1345", "2048/56", "2048/58"] as const;
export type ReaderName = (typeof READERS)[number];

/** Where the server ran: toasim's server namespace, or the guest's root namespace. */
export type Placement = "server-netns" | "root-netns";

/** The report's name for where the server ran. */
export function placementOf(rsNetns: RsNetns | undefined): Placement {
  return rsNetns === "root" ? "root-netns" : "server-netns";
}

export interface CaseResult {
  /** The case, e.g. `tcp.handshake-ack-lost`. */
  readonly id: string;
  readonly title: string;
  readonly proto: "tcp" | "udp";
  readonly profile: string;
  readonly family: Family;
  readonly reader: ReaderName;
  /** The kernel's release (`uname -r`). */
  readonly kernel: string;
  readonly placement: Placement;
  readonly result: Result;
  /** What a correct decoder answers, e.g. `198.51.100.7:40001`. */
  readonly expected: string;
  /** What the reader got: an address, or an errno name. */
  readonly got: string;
  /** One line for fail, unsupported and error: what was expected, what came, the likely cause. */
  readonly diagnosis: string | null;
  /** Where the rule is documented, relative to the repository: `docs/dialects.md#...`. */
  readonly doc: string;
  /** The case's captures, relative to the report's folder (null when none were kept). */
  readonly pcaps: { readonly client: string; readonly server: string } | null;
  /** The fault rules the gateway applied in this case (the one-word form). */
  readonly faults: readonly string[];
}

export interface KernelHealth {
  /** The kernel's release, as in CaseResult.kernel. */
  readonly kernel: string;
  /** The module could be built and loaded (a build failure is a result too). */
  readonly built: boolean;
  /** The compiler's or insmod's first error when not built. */
  readonly buildError: string | null;
  /** Kernel log lines reporting an oops, BUG, WARN, lockdep splat... */
  readonly problems: readonly string[];
  /** What the memory check found: slab objects back where they started, or kmemleak's report. */
  readonly memory: string | null;
  /** How unloading the module went: "clean", or what went wrong; null when nothing was loaded. */
  readonly unload: string | null;
  readonly ok: boolean;
}

export interface CheckReport {
  /** Nothing failed (pass, unsupported only; no error, no kernel problem). */
  readonly ok: boolean;
  /** What decoded: "ebpf", a module's name ("toasim.ko", "vendor-toa.ko"), or "none". */
  readonly decoder: string;
  readonly kernels: readonly KernelHealth[];
  readonly cases: readonly CaseResult[];
  readonly toasimVersion: string;
  /** ISO 8601. */
  readonly startedAt: string;
  readonly durationMs: number;
}
