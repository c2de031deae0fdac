import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { PrivateApt } from "./apt.js";
import { cacheDir, withLock } from "./cache.js";
import { VmError, VmErrorCode } from "./errors.js";
import type { KernelSeries } from "./kernels.js";
import { runTool, tail } from "./run-tool.js";

/**
 * A Debian kernel, downloaded with apt-get and unpacked into the cache
 * (dpkg-deb -x: never installed): the image for QEMU, its modules for the
 * initramfs, and its headers with kbuild for building out-of-tree modules.
 */
export interface KernelFiles {
  readonly series: KernelSeries;
  /** Debian's ABI name, `uname -r` in the guest: 6.1.0-57-amd64. */
  readonly abi: string;
  /** The package version: 6.1.192-3. */
  readonly version: string;
  readonly vmlinuz: string;
  /** lib/modules/ABI of the unpacked image. */
  readonly modulesDir: string;
  /** The headers folder to build against (KERNELDIR). */
  readonly headersDir: string;
  readonly packages: readonly string[];
}

export interface FetchOptions {
  /** Ask the archive for a newer kernel even when one is cached. */
  readonly refresh?: boolean;
  readonly progress?: (line: string) => void;
}

const META = "linux-image-amd64";

function seriesDir(series: KernelSeries): string {
  return join(cacheDir(), "kernels", series);
}

/** The cached kernel of a series, or null; touches nothing on the network. */
export function cachedKernel(series: KernelSeries): KernelFiles | null {
  const current = join(seriesDir(series), "current.json");
  if (!existsSync(current)) return null;
  try {
    const k = JSON.parse(readFileSync(current, "utf8")) as KernelFiles;
    if (existsSync(k.vmlinuz) && existsSync(k.modulesDir) && existsSync(k.headersDir)) return k;
  } catch {
    // A broken record is fetched again.
  }
  return null;
}

/**
 * The kernel of a series, from the cache when there is one (no network),
 * otherwise (or with refresh) the newest the archive has.
 */
export async function ensureKernel(
  series: KernelSeries,
  opts: FetchOptions = {},
): Promise<KernelFiles> {
  if (!opts.refresh) {
    const k = cachedKernel(series);
    if (k !== null) return k;
  }
  const dir = seriesDir(series);
  return withLock(dir, `kernel ${series}`, async () => {
    const say = opts.progress ?? (() => {});
    const apt = new PrivateApt(cacheDir(), series);
    say(`kernel ${series}: reading the package lists`);
    await apt.update(opts.refresh === true);
    const abi = await resolveAbi(apt);
    const abiDir = join(dir, abi);
    const record = join(abiDir, "kernel.json");
    if (existsSync(record)) {
      const k = JSON.parse(readFileSync(record, "utf8")) as KernelFiles;
      writeFileSync(join(dir, "current.json"), JSON.stringify(k, null, 2));
      return k;
    }
    const image = (await apt.version(`linux-image-${abi}-unsigned`))
      ? `linux-image-${abi}-unsigned`
      : `linux-image-${abi}`;
    const packages = await closure(apt, abi, [image, `linux-headers-${abi}`]);
    const version = (await apt.version(image)) ?? "unknown";
    say(`kernel ${series}: downloading ${abi} (${version}): ${packages.join(" ")}`);
    const debDir = join(abiDir, "debs");
    rmSync(debDir, { recursive: true, force: true });
    const debs = await apt.download(packages, debDir);
    say(`kernel ${series}: unpacking ${debs.length} packages`);
    const root = join(abiDir, "root");
    const staging = `${root}.partial`;
    rmSync(staging, { recursive: true, force: true });
    rmSync(root, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    for (const deb of debs) {
      const r = await runTool(["dpkg-deb", "-x", deb, staging]);
      if (r.code !== 0)
        throw new VmError(VmErrorCode.fetchFailed, `dpkg-deb -x ${deb} failed:\n${tail(r.stderr)}`);
    }
    renameSync(staging, root);
    rmSync(debDir, { recursive: true, force: true });
    const k: KernelFiles = {
      series,
      abi,
      version,
      vmlinuz: findVmlinuz(root, abi),
      modulesDir: findModulesDir(root, abi),
      headersDir: patchHeaders(root, abi),
      packages,
    };
    writeFileSync(record, JSON.stringify(k, null, 2));
    writeFileSync(join(dir, "current.json"), JSON.stringify(k, null, 2));
    // Older ABIs of the series are no longer used: the cache keeps one.
    for (const other of readdirSync(dir)) {
      if (other !== abi && existsSync(join(dir, other, "root")))
        rmSync(join(dir, other), { recursive: true, force: true });
    }
    say(`kernel ${series}: ${abi} ready`);
    return k;
  });
}

async function resolveAbi(apt: PrivateApt): Promise<string> {
  const deps = await apt.depends(META);
  const abi = deps
    ?.map((d) => /^linux-image-(\d\S*)$/.exec(d)?.[1])
    .find((a): a is string => a !== undefined);
  if (abi === undefined) {
    throw new VmError(
      VmErrorCode.fetchFailed,
      `kernel ${apt.series}: ${META} names no kernel image (apt-cache depends ${META}: ${deps?.join(", ") ?? "no such package"})`,
    );
  }
  return abi;
}

/**
 * The packages that make up one kernel: the image and headers with the
 * dependencies that belong to this kernel (its modules, headers-common,
 * kbuild), not the toolchain, initramfs tools or metapackages.
 */
async function closure(apt: PrivateApt, abi: string, roots: string[]): Promise<string[]> {
  const seen = new Set<string>();
  const queue = [...roots];
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (seen.has(p)) continue;
    const deps = await apt.depends(p);
    if (deps === null)
      throw new VmError(VmErrorCode.fetchFailed, `apt knows no package ${p} (kernel ${abi})`);
    seen.add(p);
    for (const d of deps) {
      const ours =
        d.startsWith("linux-") &&
        !d.startsWith("linux-image-") &&
        (d.includes(abi) || /^linux-(headers|kbuild)-/.test(d));
      if (ours && !seen.has(d)) queue.push(d);
    }
  }
  return [...seen];
}

function firstExisting(paths: string[], what: string): string {
  const p = paths.find((f) => existsSync(f));
  if (p === undefined)
    throw new VmError(
      VmErrorCode.badKernelPackage,
      `the unpacked kernel has no ${what} (looked for ${paths.join(", ")})`,
    );
  return p;
}

function findVmlinuz(root: string, abi: string): string {
  return firstExisting(
    [
      join(root, "boot", `vmlinuz-${abi}`),
      join(root, "usr/lib/modules", abi, "vmlinuz"),
      join(root, "lib/modules", abi, "vmlinuz"),
    ],
    "vmlinuz",
  );
}

function findModulesDir(root: string, abi: string): string {
  return firstExisting(
    [join(root, "lib/modules", abi, "kernel"), join(root, "usr/lib/modules", abi, "kernel")],
    "modules folder",
  ).replace(/\/kernel$/, "");
}

/**
 * Debian's headers include each other by absolute path (/usr/src/...):
 * unpacked elsewhere, those paths are pointed at the cache copy.
 */
function patchHeaders(root: string, abi: string): string {
  const dir = firstExisting([join(root, "usr/src", `linux-headers-${abi}`)], "headers");
  const makefile = join(dir, "Makefile");
  const text = readFileSync(makefile, "utf8");
  writeFileSync(makefile, text.replaceAll("/usr/src/", `${root}/usr/src/`));
  return dir;
}
