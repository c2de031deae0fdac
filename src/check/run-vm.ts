import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { packageRoot } from "../package-files.js";
import type { RsNetns } from "../tun/topology.js";
import { VmError, VmErrorCode } from "../vm/errors.js";
import { ensureKernel, type KernelFiles } from "../vm/kernel-fetch.js";
import type { KernelSeries } from "../vm/kernels.js";
import { moduleBytes, parseModInfo } from "../vm/kmod-files.js";
import { buildModule } from "../vm/module-build.js";
import { runVm } from "../vm/qemu-run.js";
import { CASES } from "./cases.js";
import type { GuestResult } from "./guest.js";
import { type CaseResult, type KernelHealth, type Placement, placementOf } from "./result.js";

/**
 * `toasim check --kernel ...`: for each kernel, the module built from
 * source (or the one given) is loaded in a `toasim vm` guest, where the
 * battery runs against it (guest.ts) and writes its results into a shared
 * folder; the kernel's log, the build and the unload make its health. A
 * kernel where the module does not build or load still has a column: every
 * case is an error whose diagnosis is the build's first error.
 */

export interface ModuleSource {
  readonly kind: "build" | "file";
  /** A folder with a Kbuild or Makefile (build), or a .ko file (file). */
  readonly path: string;
  /** insmod parameters. */
  readonly params: readonly string[];
}

export interface VmCheckOptions {
  readonly series: readonly KernelSeries[];
  readonly module: ModuleSource;
  /** What the guest runs: the flags of `toasim check` that choose profiles, cases, families, readers. */
  readonly guestArgs: readonly string[];
  /** Where the guest's servers run (the report's placement). */
  readonly rsNetns: readonly RsNetns[];
  readonly outDir: string;
  readonly timeoutSec?: number;
  readonly onProgress?: (line: string) => void;
}

export interface VmCheck {
  readonly decoder: string;
  readonly kernels: KernelHealth[];
  readonly cases: CaseResult[];
}

/** A kernel where the module could not be fetched or built: the first error is the result. */
function failedKernel(kernel: string, built: boolean, why: string): KernelHealth {
  return { kernel, built, buildError: why, problems: [], memory: null, unload: null, ok: false };
}

export async function checkInVms(o: VmCheckOptions): Promise<VmCheck> {
  const say = o.onProgress ?? (() => {});
  const placement = placementOf(o.rsNetns[0]);
  const kernels: KernelHealth[] = [];
  const cases: CaseResult[] = [];
  let decoder = basename(o.module.path);
  mkdirSync(o.outDir, { recursive: true });
  for (const series of o.series) {
    let kernel: KernelFiles;
    try {
      kernel = await ensureKernel(series, { progress: (l) => say(`kernel ${series}: ${l}`) });
    } catch (e) {
      kernels.push(failedKernel(series, false, `the kernel could not be fetched: ${message(e)}`));
      continue;
    }
    let ko: string;
    try {
      if (o.module.kind === "build") {
        const b = await buildModule(kernel, o.module.path, say);
        if (b.modules.length !== 1)
          throw new VmError(
            VmErrorCode.badInput,
            `${o.module.path} built ${b.modules.length} modules; toasim check takes one`,
          );
        ko = b.modules[0]!;
      } else ko = o.module.path;
    } catch (e) {
      const first = e instanceof VmError && e.firstError !== null ? e.firstError : message(e);
      say(`${kernel.abi}: the module does not build: ${first}`);
      kernels.push(failedKernel(kernel.abi, false, first));
      cases.push(
        ...errorRows(kernel.abi, `the module does not build on this kernel: ${first}`, placement),
      );
      continue;
    }
    const name = parseModInfo(await moduleBytes(ko), ko).name;
    decoder = `${name}.ko`;
    const results = join(o.outDir, `guest-${kernel.abi}.json`);
    rmSync(results, { force: true });
    say(`${kernel.abi}: booting with ${name}.ko, running the cases in the guest`);
    let problems: readonly string[] = [];
    let vmFailure: string | null = null;
    try {
      const r = await runVm({
        kernel,
        argv: [
          process.execPath,
          join(packageRoot(), "bin/toasim.js"),
          "check",
          "--guest",
          name,
          "--guest-out",
          results,
          "--out",
          o.outDir,
          ...o.guestArgs,
        ],
        modules: [{ path: ko, params: [...o.module.params] }],
        shares: [o.outDir],
        timeoutSec: o.timeoutSec ?? 1200,
        stdout: () => {},
        stderr: (b) => {
          for (const l of b.toString().split("\n")) if (l.trim() !== "") say(`  ${l}`);
        },
        progress: (l) => say(`${kernel.abi}: ${l}`),
      });
      problems = r.kernelProblems;
      if (r.exitCode !== 0 && !existsSync(results))
        vmFailure = `the guest's check ended with exit code ${r.exitCode} and no results`;
    } catch (e) {
      vmFailure = message(e);
    }
    if (vmFailure !== null || !existsSync(results)) {
      const why = vmFailure ?? "the guest wrote no results";
      kernels.push({
        kernel: kernel.abi,
        built: true,
        buildError: null,
        problems: [...problems, `the check could not run: ${why}`],
        memory: null,
        unload: null,
        ok: false,
      });
      cases.push(...errorRows(kernel.abi, why, placement));
      continue;
    }
    const g = JSON.parse(readFileSync(results, "utf8")) as GuestResult;
    cases.push(...g.cases);
    const ok =
      problems.length === 0 &&
      g.unloadOk &&
      g.memoryOk &&
      g.cases.every((c) => c.result !== "error");
    kernels.push({
      kernel: kernel.abi,
      built: true,
      buildError: null,
      problems,
      memory: g.memory,
      unload: g.unload,
      ok,
    });
  }
  return { decoder, kernels, cases };
}

/** One error row per case, when a kernel could run none. */
function errorRows(kernel: string, why: string, placement: Placement): CaseResult[] {
  return CASES.map((c) => ({
    id: c.id,
    title: c.title,
    proto: c.proto,
    profile: "",
    family: c.families[0] ?? "v4",
    reader: c.proto === "tcp" ? "2049" : "2048/56",
    kernel,
    placement,
    result: "error",
    expected: "",
    got: "",
    diagnosis: why,
    doc: c.doc,
    pcaps: null,
    faults: c.faults ?? [],
  }));
}

function message(e: unknown): string {
  return e instanceof Error ? e.message.split("\n")[0]! : String(e);
}
