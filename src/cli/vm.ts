import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { shippedPath } from "../package-files.js";
import { VmError, VmErrorCode } from "../vm/errors.js";
import { cachedKernel, ensureKernel, type KernelFiles } from "../vm/kernel-fetch.js";
import { KERNEL_SERIES, kernelSeries, SERIES_NAMES } from "../vm/kernels.js";
import { buildModule, type ModuleBuild } from "../vm/module-build.js";
import { runVm, type UserModule } from "../vm/qemu-run.js";
import { CliError } from "./errors.js";
import type { Io } from "./io.js";
import { intFlag } from "./parse-flags.js";

interface VmFlags {
  kernel?: string;
  module: string[];
  build: string[];
  buildOnly?: boolean;
  kernelModule: string[];
  share: string[];
  env: string[];
  cpus: string;
  memory: string;
  timeout: string;
  console?: boolean;
  consoleLog?: string;
  dmesg?: string;
  report?: string;
  refresh?: boolean;
  list?: boolean;
  json?: boolean;
  quiet?: boolean;
}

/** The --build word for the module shipped with toasim. */
const SHIPPED_MODULE = "toasim";

const collect = (v: string, acc: string[]): string[] => [...acc, v];

/** "PATH [PARAM=VALUE ...]": a module or folder, then insmod parameters. */
function moduleSpec(flag: string, text: string): { path: string; params: string[] } {
  const words = text.trim().split(/\s+/);
  const path = words[0] ?? "";
  if (path === "") throw new CliError("BAD_FLAG", flag, "empty value");
  for (const p of words.slice(1)) {
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*(=.*)?$/.test(p))
      throw new CliError("BAD_FLAG", flag, `"${p}" is not a module parameter (NAME=VALUE)`);
  }
  return { path, params: words.slice(1) };
}

function envFlag(text: string): [string, string] {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(text);
  if (m === null) throw new CliError("BAD_FLAG", "--env", `"${text}" is not NAME=VALUE`);
  return [m[1]!, m[2]!];
}

function vmFailure(e: unknown): never {
  if (e instanceof VmError) {
    throw new CliError(
      e.code === VmErrorCode.timeout ? "VM_TIMEOUT" : "VM_FAILED",
      null,
      e.message,
    );
  }
  throw e;
}

export function registerVm(program: Command, io: Io): void {
  program
    .command("vm")
    .summary("run a command on a Debian kernel under QEMU, with kernel modules loaded")
    .description(
      "Boots a Debian kernel package (downloaded with apt-get and unpacked into a cache folder, never installed) under QEMU with software emulation, with this machine's root shared read-only over virtio-9p and a throw-away overlay on top; loads the given modules, runs CMD as root in the guest with the same working folder, and exits with CMD's exit code. CMD's stdout and stderr are this command's. Exit codes of its own: 124 the time limit passed, 125 the VM could not run CMD, 2 bad flags.\n\n" +
        `Kernels: ${SERIES_NAMES.map((s) => `${s} (${KERNEL_SERIES[s].note})`).join(", ")}.\n\n` +
        "The cache is TOASIM_CACHE, else /var/cache/toasim (root) or ~/.cache/toasim; the Debian mirror is the one this machine's apt sources name, or TOASIM_DEBIAN_MIRROR.",
    )
    .argument("[cmd...]", "the command and its arguments (put -- before them)")
    .option("--kernel <series>", `kernel to boot: ${SERIES_NAMES.join(", ")}`)
    .option(
      "--module <spec>",
      "a .ko to load before CMD, with insmod parameters: 'FILE.ko [NAME=VALUE ...]' (repeatable, loaded in order)",
      collect,
      [],
    )
    .option(
      "--build <spec>",
      "build the out-of-tree module in DIR (toasim: the module shipped with toasim) against the kernel's headers and load it: 'DIR [NAME=VALUE ...]' (repeatable)",
      collect,
      [],
    )
    .option("--build-only", "with --build: build, print the .ko paths, do not boot")
    .option(
      "--kernel-module <name>",
      "an in-tree module of the guest kernel to load too, with its dependencies (repeatable)",
      collect,
      [],
    )
    .option(
      "--share <dir>",
      "a host folder the guest may write, at the same path (repeatable; everything else is read-only)",
      collect,
      [],
    )
    .option("--env <name=value>", "environment variable for CMD (repeatable)", collect, [])
    .option("--cpus <n>", "virtual CPUs", "2")
    .option("--memory <mib>", "guest memory in MiB", "2048")
    .option("--timeout <seconds>", "kill the VM after this long", "1800")
    .option("--console", "show the kernel console on stderr as it runs")
    .option("--console-log <file>", "write the kernel console to FILE")
    .option("--dmesg <file>", "write the guest's kernel log at the end to FILE")
    .option(
      "--report <file>",
      "write a JSON report (kernel, modules, exit code, timings, kernel problems)",
    )
    .option("--refresh", "ask the Debian archive for a newer kernel even when one is cached")
    .option("--list", "list the kernels and what is cached")
    .option("--json", "with --list or --build-only: JSON output")
    .option("--quiet", "no progress lines")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  toasim vm --kernel 6.1 -- uname -r\n" +
        "  toasim vm --kernel 6.12 --build toasim -- cat /proc/net/toa_stats\n" +
        "  toasim vm --kernel 5.10 --module 'vendor/toa.ko' -- dmesg\n" +
        "  toasim vm --kernel 6.1 --build 'toasim trusted=any v6_on_v4=inet6' --share out -- \\\n" +
        "      sh -c 'npx toasim demo --json > out/demo.json'\n" +
        "  toasim vm --kernel 5.10 --build ./vendor/toa --build-only --json\n" +
        "  toasim vm --list",
    )
    .action(async (cmd: string[], f: VmFlags) => {
      const say = (s: string): void => {
        if (!f.quiet) io.err(`toasim vm: ${s}\n`);
      };
      if (f.list) {
        listKernels(io, f.json === true);
        return;
      }
      if (f.kernel === undefined)
        throw new CliError("BAD_FLAG", "--kernel", "is required (or --list)");
      let series: ReturnType<typeof kernelSeries>;
      try {
        series = kernelSeries(f.kernel);
      } catch (e) {
        throw new CliError("BAD_FLAG", "--kernel", e instanceof Error ? e.message : String(e));
      }
      const modules = f.module.map((m) => moduleSpec("--module", m));
      const builds = f.build.map((b) => {
        const spec = moduleSpec("--build", b);
        // `toasim`: the module shipped with toasim (a folder of that name: ./toasim).
        return spec.path === SHIPPED_MODULE ? { ...spec, path: shippedPath("kmod") } : spec;
      });
      const env = Object.fromEntries(f.env.map(envFlag));
      const cpus = intFlag("--cpus", f.cpus, 1, 16);
      const memoryMb = intFlag("--memory", f.memory, 256, 65_536);
      const timeoutSec = intFlag("--timeout", f.timeout, 1, 86_400);
      for (const k of f.kernelModule) {
        if (!/^[A-Za-z0-9_-]+$/.test(k))
          throw new CliError("BAD_FLAG", "--kernel-module", `"${k}" is not a module name`);
      }
      if (f.buildOnly && builds.length === 0)
        throw new CliError("BAD_COMBINATION", "--build-only", "needs --build DIR");
      if (f.buildOnly && cmd.length > 0)
        throw new CliError("BAD_COMBINATION", "--build-only", "runs no command");
      if (!f.buildOnly && cmd.length === 0)
        throw new CliError("BAD_FLAG", "<cmd>", "give the command to run after --");

      let kernel: KernelFiles;
      const built: ModuleBuild[] = [];
      try {
        kernel = await ensureKernel(series, { refresh: f.refresh === true, progress: say });
        for (const b of builds) {
          const r = await buildModule(kernel, b.path, say);
          if (r.note !== null) say(r.note);
          for (const w of r.warnings) say(`build warning: ${w}`);
          built.push(r);
        }
      } catch (e) {
        vmFailure(e);
      }
      if (f.buildOnly) {
        if (f.json) {
          io.out(
            `${JSON.stringify({
              kernel: kernel.abi,
              series,
              builds: built.map(buildSummary),
            })}\n`,
          );
        } else {
          for (const b of built) for (const m of b.modules) io.out(`${m}\n`);
        }
        return;
      }
      const toLoad: UserModule[] = [
        ...built.flatMap((b, i) =>
          b.modules.map((path) => ({ path, params: builds[i]?.params ?? [] })),
        ),
        ...modules,
      ];
      try {
        const r = await runVm({
          kernel,
          argv: cmd,
          modules: toLoad,
          kernelModules: f.kernelModule,
          shares: f.share,
          env,
          cpus,
          memoryMb,
          timeoutSec,
          stdout: (b) => process.stdout.write(b),
          stderr: (b) => process.stderr.write(b),
          console: f.console ? (b) => process.stderr.write(b) : null,
          ...(f.consoleLog === undefined ? {} : { consoleLog: f.consoleLog }),
          progress: say,
        });
        if (f.dmesg !== undefined) writeFileSync(f.dmesg, r.dmesg);
        if (r.kernelProblems.length > 0) {
          say(`the guest kernel logged ${r.kernelProblems.length} problem line(s):`);
          for (const l of r.kernelProblems.slice(0, 10)) say(`  ${l}`);
        }
        say(
          `${kernel.abi}: exit code ${r.exitCode}, command started ${r.bootMs === null ? "?" : (r.bootMs / 1000).toFixed(1)} s after QEMU, ${(r.totalMs / 1000).toFixed(1)} s in all`,
        );
        if (f.report !== undefined) {
          writeFileSync(
            f.report,
            `${JSON.stringify(
              {
                series,
                kernel: kernel.abi,
                version: kernel.version,
                exitCode: r.exitCode,
                bootMs: r.bootMs,
                totalMs: r.totalMs,
                kernelProblems: r.kernelProblems,
                modules: toLoad,
                builds: built.map(buildSummary),
              },
              null,
              2,
            )}\n`,
          );
        }
        process.exitCode = r.exitCode;
      } catch (e) {
        vmFailure(e);
      }
    });
}

function buildSummary(b: ModuleBuild): Omit<ModuleBuild, "log" | "kernel"> {
  return {
    source: b.source,
    modules: b.modules,
    warnings: b.warnings,
    compiler: b.compiler,
    note: b.note,
  };
}

function listKernels(io: Io, json: boolean): void {
  const rows = SERIES_NAMES.map((s) => {
    const k = cachedKernel(s);
    return {
      series: s,
      suites: KERNEL_SERIES[s].suites,
      note: KERNEL_SERIES[s].note,
      cached: k === null ? null : { abi: k.abi, version: k.version },
    };
  });
  if (json) {
    io.out(`${JSON.stringify(rows)}\n`);
    return;
  }
  for (const r of rows) {
    io.out(
      `${r.series.padEnd(6)} ${r.note.padEnd(48)} ${r.cached === null ? "not cached" : `cached: ${r.cached.abi} (${r.cached.version})`}\n`,
    );
  }
}
