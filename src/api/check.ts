import { existsSync } from "node:fs";
import { release } from "node:os";
import { resolve } from "node:path";
import { CASES } from "../check/cases.js";
import { runGuestCheck } from "../check/guest.js";
import {
  type CheckReport,
  FAMILIES,
  type Family,
  READERS,
  type ReaderName,
} from "../check/result.js";
import { checkHere, checkPlacements } from "../check/run-local.js";
import { checkInVms, type ModuleSource } from "../check/run-vm.js";
import { isProfileName, PROFILES, type ProfileName } from "../fullnat-sim/profiles.js";
import { packageVersion, shippedPath } from "../package-files.js";
import { RS_NETNS, type RsNetns, rootPlacementRefusal } from "../tun/topology.js";
import { type KernelSeries, SERIES_NAMES } from "../vm/kernels.js";
import { badOption } from "./errors.js";

export type { CheckReport };

export interface CheckOptions {
  /** Kernel series to check the module on, under QEMU (5.10, 6.1, 6.12, sid); none: this host. */
  readonly kernels?: readonly string[];
  /** With kernels: the module's source folder and insmod parameters, `DIR [NAME=VALUE ...]` (`toasim`: the module shipped with toasim). */
  readonly build?: string;
  /** With kernels: a built module and its parameters, `FILE.ko [NAME=VALUE ...]`. */
  readonly module?: string;
  /** Gateway profiles whose carriers are checked (default dpvs); only those with a TOA or a UOA. */
  readonly profiles?: readonly string[];
  /** Case ids (default all). */
  readonly cases?: readonly string[];
  readonly families?: readonly string[];
  /** Readers to judge (default: every one that applies): getpeername, 2049, 4096, 1345, 2048/56, 2048/58. */
  readonly readers?: readonly string[];
  /** This host only: the decoder (auto: the eBPF decoder unless a module is loaded here). */
  readonly decoder?: "auto" | "ebpf" | "none";
  /** Where pcaps and the guests' results go (default out/check). */
  readonly outDir?: string;
  /** Which cases' pcaps are kept (default: those that did not pass). */
  readonly keepPcaps?: "failed" | "all" | "none";
  /**
   * Where the server runs: "toasim" (the default), toasim's server
   * namespace; "root", the guest's root namespace, for modules that hook
   * only there (with kernels, or inside a toasim vm guest). Both: the
   * battery runs once in each, and the report tells them apart.
   */
  readonly rsNetns?: RsNetns | readonly RsNetns[];
  readonly onProgress?: (line: string) => void;
}

function list<T extends string>(
  v: readonly string[] | undefined,
  option: string,
  known: readonly T[],
): T[] | undefined {
  if (v === undefined) return undefined;
  if (v.length === 0) badOption(option, "empty list");
  for (const x of v)
    if (!(known as readonly string[]).includes(x))
      badOption(option, `${JSON.stringify(x)} is not one of ${known.join(", ")}`);
  return v as T[];
}

/** `PATH [NAME=VALUE ...]`. */
function moduleSpec(text: string, option: string, kind: "build" | "file"): ModuleSource {
  const words = text.trim().split(/\s+/);
  let path = words[0] ?? "";
  if (path === "") badOption(option, "empty value");
  for (const p of words.slice(1))
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*(=.*)?$/.test(p))
      badOption(option, `"${p}" is not a module parameter (NAME=VALUE)`);
  if (kind === "build" && path === "toasim") path = shippedPath("kmod");
  path = resolve(path);
  if (!existsSync(path)) badOption(option, `${path} does not exist`);
  return { kind, path, params: words.slice(1) };
}

/** The flags the guest's `toasim check` gets: the same choice of profiles, cases, families, readers. */
function guestArgs(o: {
  profiles: readonly string[];
  cases?: readonly string[];
  families?: readonly string[];
  readers?: readonly string[];
  keepPcaps: string;
  rsNetns: readonly RsNetns[];
}): string[] {
  const a = ["--profile", o.profiles.join(","), "--keep-pcaps", o.keepPcaps];
  a.push("--rs-netns", o.rsNetns.join(","));
  if (o.cases) a.push("--case", o.cases.join(","));
  if (o.families) a.push("--family", o.families.join(","));
  if (o.readers) a.push("--reader", o.readers.join(","));
  return a;
}

/**
 * `toasim check`: the battery of cases (check/cases.ts) through the real
 * gateway to a real server, judged per reader: on this host (the eBPF
 * decoder, or a module loaded here), or for a module on each of the given
 * kernels under QEMU. Options are checked before anything starts.
 */
export async function check(o: CheckOptions = {}): Promise<CheckReport> {
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const profiles = (o.profiles ?? ["dpvs"]).map((p) => {
    if (!isProfileName(p)) badOption("profiles", `unknown profile ${JSON.stringify(p)}`);
    const pr = PROFILES[p];
    if (pr.tcp?.carrier !== "toa" && pr.udp?.carrier !== "uoa")
      badOption("profiles", `${p} carries no TOA or UOA: a PROXY header needs no decoder to check`);
    return p as ProfileName;
  });
  if (profiles.length === 0) badOption("profiles", "empty list");
  const kernels = list<KernelSeries>(o.kernels, "kernels", SERIES_NAMES);
  const outDir = resolve(o.outDir ?? "out/check");
  const keepPcaps = o.keepPcaps ?? "failed";
  const rsNetns = rsNetnsOf(o.rsNetns);
  const common = { profiles, ...battery(o), outDir, keepPcaps, rsNetns };
  if (kernels === undefined) {
    if (o.build !== undefined || o.module !== undefined)
      badOption(
        o.build !== undefined ? "build" : "module",
        "needs kernels: modules are checked in a VM of each kernel (this host's module, if any, is checked without it)",
      );
    const refused = rsNetns.includes("root") ? rootPlacementRefusal() : null;
    if (refused !== null) badOption("rsNetns", `${refused} (with kernels, the guests' is used)`);
    const r = await checkPlacements(rsNetns, (p) =>
      checkHere({ ...common, rsNetns: p, decoder: o.decoder ?? "auto" }),
    );
    const failed = r.cases.some((c) => c.result === "fail" || c.result === "error");
    return {
      ok: !failed,
      decoder: r.decoder,
      kernels: [
        {
          kernel: release(),
          built: true,
          buildError: null,
          problems: [],
          memory: null,
          unload: null,
          ok: !r.cases.some((c) => c.result === "error"),
        },
      ],
      cases: r.cases,
      toasimVersion: packageVersion(),
      startedAt,
      durationMs: Date.now() - t0,
    };
  }
  if ((o.build === undefined) === (o.module === undefined))
    badOption(
      "build",
      "give the module's source (build) or the built module (module), one of them",
    );
  if (o.decoder !== undefined && o.decoder !== "none")
    badOption("decoder", "with kernels the module is what decodes: no other decoder is loaded");
  const source =
    o.build !== undefined
      ? moduleSpec(o.build, "build", "build")
      : moduleSpec(o.module!, "module", "file");
  const r = await checkInVms({
    series: kernels,
    module: source,
    rsNetns,
    guestArgs: guestArgs(common),
    outDir,
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  const failed = r.cases.some((c) => c.result === "fail" || c.result === "error");
  return {
    ok: !failed && r.kernels.every((k) => k.ok),
    decoder: r.decoder,
    kernels: r.kernels,
    cases: r.cases,
    toasimVersion: packageVersion(),
    startedAt,
    durationMs: Date.now() - t0,
  };
}

/** Inside a guest of `check` (its --guest flag): the battery against the module loaded there. */
export async function checkGuest(moduleName: string, out: string, o: CheckOptions): Promise<void> {
  await runGuestCheck(moduleName, out, rsNetnsOf(o.rsNetns), {
    profiles: (o.profiles ?? ["dpvs"]) as ProfileName[],
    ...battery(o),
    outDir: resolve(o.outDir ?? "out/check"),
    keepPcaps: o.keepPcaps ?? "failed",
  });
}

/** The placements asked for, checked, without repeats, in the order given. */
function rsNetnsOf(v: unknown): RsNetns[] {
  if (v === undefined) return ["toasim"];
  const items = Array.isArray(v) ? (v as unknown[]) : [v];
  if (items.length === 0) badOption("rsNetns", "empty list");
  for (const x of items)
    if (!(RS_NETNS as readonly unknown[]).includes(x))
      badOption("rsNetns", `${JSON.stringify(x)} is not one of ${RS_NETNS.join(", ")}`);
  return [...new Set(items as RsNetns[])];
}

/** The battery's narrowing options (cases, families, readers), checked, and the progress callback. */
function battery(o: CheckOptions) {
  const cases = list(
    o.cases,
    "cases",
    CASES.map((c) => c.id),
  );
  const families = list<Family>(o.families, "families", FAMILIES);
  const readers = list<ReaderName>(o.readers, "readers", READERS);
  return {
    ...(cases ? { cases } : {}),
    ...(families ? { families } : {}),
    ...(readers ? { readers } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  };
}
