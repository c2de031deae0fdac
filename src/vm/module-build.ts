import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, join } from "node:path";
import { cacheDir } from "./cache.js";
import { VmError, VmErrorCode } from "./errors.js";
import type { KernelFiles } from "./kernel-fetch.js";
import { runTool, tail } from "./run-tool.js";
import { toolchainFor } from "./toolchain.js";

/**
 * Builds an out-of-tree module (a folder with a Kbuild or Makefile for
 * obj-m) against a cached kernel's headers. The folder is copied into the
 * cache first, so builds for several kernels never share object files and
 * the source folder is left clean.
 */
export interface ModuleBuild {
  readonly source: string;
  readonly kernel: string;
  /** The .ko files built, in modules.order. */
  readonly modules: readonly string[];
  /** Compiler warnings (lines with "warning:"), from the compiler and from kbuild. */
  readonly warnings: readonly string[];
  readonly compiler: string;
  readonly note: string | null;
  readonly log: string;
}

/** Build products and editor files are not copied. */
const SKIP = /(\.(o|ko|mod|mod\.c|cmd|order|symvers|a)$|^\.tmp_versions$|^\.git$)/;

export async function buildModule(
  kernel: KernelFiles,
  source: string,
  progress: (line: string) => void = () => {},
): Promise<ModuleBuild> {
  if (!existsSync(source) || !statSync(source).isDirectory())
    throw new VmError(VmErrorCode.badInput, `module source ${source} is not a folder`);
  const src = realpathSync(source);
  if (!existsSync(join(src, "Kbuild")) && !existsSync(join(src, "Makefile")))
    throw new VmError(VmErrorCode.badInput, `${src} has neither a Kbuild nor a Makefile`);
  const toolchain = await toolchainFor(kernel, progress);
  const id = createHash("sha256").update(src).digest("hex").slice(0, 12);
  const dir = join(cacheDir(), "builds", kernel.abi, `${basename(src)}-${id}`);
  rmSync(dir, { recursive: true, force: true });
  cpSync(src, dir, {
    recursive: true,
    filter: (from) => !SKIP.test(basename(from)),
  });
  progress(`building ${src} against ${kernel.abi} with ${toolchain.used}`);
  const env = {
    ...process.env,
    PATH: [...toolchain.path, process.env["PATH"] ?? ""].join(":"),
    LC_ALL: "C",
  };
  const r = await runTool(
    ["make", "-C", kernel.headersDir, `M=${dir}`, ...toolchain.makeVars, "modules"],
    { env, keepAll: true },
  );
  const log = `${r.stdout}${r.stderr}`;
  writeFileSync(join(dir, "build.log"), log);
  if (r.code !== 0) {
    const first = firstError(log, dir, src);
    throw new VmError(
      VmErrorCode.buildFailed,
      `building ${src} against ${kernel.abi} failed${first ? `: ${first}` : ""} (log: ${join(dir, "build.log")}):\n${tail(log, 25)}`,
      first ? { firstError: first } : {},
    );
  }
  const order = join(dir, "modules.order");
  const modules = existsSync(order)
    ? readFileSync(order, "utf8")
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => {
          const rel = l
            .trim()
            .replace(/^kernel\//, "")
            .replace(/\.o$/, ".ko");
          return rel.startsWith("/") ? rel : join(dir, rel);
        })
    : [];
  const missing = modules.filter((m) => !existsSync(m));
  if (modules.length === 0 || missing.length > 0) {
    throw new VmError(
      VmErrorCode.buildFailed,
      `make succeeded but left no module (${missing.length ? `missing ${missing.join(", ")}` : "modules.order is empty"})`,
    );
  }
  const warnings = log
    .split("\n")
    .filter((l) => /\bwarning:/i.test(l) || /^WARNING:/.test(l))
    .map((l) => l.replaceAll(dir, basename(src)));
  return {
    source: src,
    kernel: kernel.abi,
    modules,
    warnings,
    compiler: toolchain.used,
    note: toolchain.note,
    log,
  };
}

/** The compiler's first error, with the build copy's path shown as the source's. */
export function firstError(log: string, buildDir: string, source: string): string | null {
  const line =
    log.split("\n").find((l) => /\berror:/.test(l)) ??
    log.split("\n").find((l) => /^make(\[\d+\])?: \*\*\*/.test(l));
  return line === undefined ? null : line.replaceAll(`${buildDir}/`, `${basename(source)}/`).trim();
}
