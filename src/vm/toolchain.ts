import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { onPath } from "../run-process.js";
import { PrivateApt } from "./apt.js";
import { cacheDir, withLock } from "./cache.js";
import { VmError, VmErrorCode } from "./errors.js";
import type { KernelFiles } from "./kernel-fetch.js";
import { runTool, tail } from "./run-tool.js";

/**
 * The compiler a kernel's headers are built with. Debian's headers name the
 * compiler their kernel was built with (CONFIG_CC_VERSION_TEXT):
 *
 * - on the host already (6.1 and 6.12 want bookworm's gcc-12): used as is;
 * - an older gcc the host lacks (5.10 wants bullseye's gcc-10): the host's
 *   gcc builds it, which the headers accept, and the build says so;
 * - sid's gcc-16: needs sid's binutils and pahole too, and all of them need
 *   sid's glibc. They are downloaded from sid like the kernel, unpacked into
 *   the cache, and run under sid's own dynamic loader by small wrapper
 *   scripts, as are the kbuild tools of sid's linux-kbuild package.
 */

export interface Toolchain {
  /** make variables (CC=..., MODPOST=...). */
  readonly makeVars: readonly string[];
  /** Folders put first on PATH for make. */
  readonly path: readonly string[];
  /** The compiler the headers asked for, and the one used. */
  readonly wanted: string;
  readonly used: string;
  /** Said when the two differ. */
  readonly note: string | null;
}

/** What sid's gcc-16 needs besides the host (found by building kmod/ against sid's headers). */
const SID_PACKAGES = [
  "gcc-16-x86-64-linux-gnu",
  "cpp-16-x86-64-linux-gnu",
  "libc6",
  "libgmp10",
  "libmpfr6",
  "libmpc3",
  "libisl23",
  "libzstd1",
  "zlib1g",
  // gcc-16 emits .base64, which bookworm's as does not know.
  "binutils-x86-64-linux-gnu",
  "libbinutils",
  "libsframe3",
  "libctf0",
  "libjansson4",
  // The headers ask pahole for --btf_features (pahole >= 1.26).
  "pahole",
  "libdwarves1",
  "libbpf1",
  "libelf1t64",
  "libdw1t64",
  "liblzma5",
  "libbz2-1.0",
] as const;

const BINUTILS = ["ld", "objcopy", "nm", "ar", "objdump", "readelf", "strip"] as const;

/** The compiler command of CONFIG_CC_VERSION_TEXT: "gcc-12", "x86_64-linux-gnu-gcc-16". */
export function wantedCompiler(kernel: KernelFiles): string {
  const config = readFileSync(join(kernel.headersDir, ".config"), "utf8");
  const m = /^CONFIG_CC_VERSION_TEXT="(\S+)/m.exec(config);
  return m?.[1] ?? "gcc";
}

function gccMajor(cc: string): number | null {
  const m = /gcc-(\d+)$/.exec(cc);
  return m?.[1] === undefined ? null : Number(m[1]);
}

export async function toolchainFor(
  kernel: KernelFiles,
  progress: (line: string) => void = () => {},
): Promise<Toolchain> {
  const wanted = wantedCompiler(kernel);
  if (onPath(wanted) !== null) return { makeVars: [], path: [], wanted, used: wanted, note: null };
  const major = gccMajor(wanted);
  for (const alt of major === null ? [] : [`gcc-${major}`, `x86_64-linux-gnu-gcc-${major}`]) {
    if (onPath(alt) !== null)
      return { makeVars: [`CC=${alt}`], path: [], wanted, used: alt, note: null };
  }
  if (kernel.series === "sid") return sidToolchain(kernel, wanted, progress);
  const host = onPath("gcc") === null ? null : "gcc";
  if (host === null) {
    throw new VmError(
      VmErrorCode.missingTool,
      `the ${kernel.abi} headers want ${wanted}, and this machine has no gcc at all (apt-get install gcc)`,
    );
  }
  const version = (await runTool(["gcc", "-dumpversion"])).stdout.trim();
  return {
    makeVars: ["CC=gcc"],
    path: [],
    wanted,
    used: `gcc ${version}`,
    note: `the ${kernel.abi} headers want ${wanted}, which this machine does not have; built with gcc ${version}`,
  };
}

async function sidToolchain(
  kernel: KernelFiles,
  wanted: string,
  progress: (line: string) => void,
): Promise<Toolchain> {
  const dir = join(cacheDir(), "toolchains", kernel.series);
  const record = join(dir, "toolchain.json");
  // The headers' scripts/ is a link into the linux-kbuild package.
  const kb = dirname(realpathSync(join(kernel.headersDir, "scripts")));
  const kbuild = join(kb, "scripts");
  const tools = join(kb, "tools");
  const make = (bin: string): Toolchain => ({
    makeVars: [
      `CC=${wanted}`,
      `MODPOST=${join(bin, "modpost")}`,
      `objtool=${join(bin, "objtool")}`,
      `RESOLVE_BTFIDS=${join(bin, "resolve_btfids")}`,
    ],
    path: [bin],
    wanted,
    used: `${wanted} (sid, unpacked in ${dir})`,
    note: null,
  });
  const bin = join(dir, "bin");
  if (existsSync(record) && readFileSync(record, "utf8").includes(kernel.abi)) return make(bin);
  return withLock(dir, "sid toolchain", async () => {
    const apt = new PrivateApt(cacheDir(), kernel.series);
    await apt.update(false);
    progress(
      `toolchain: downloading sid's ${wanted}, binutils and pahole (${SID_PACKAGES.length} packages)`,
    );
    const debDir = join(dir, "debs");
    rmSync(debDir, { recursive: true, force: true });
    const debs = await apt.download(SID_PACKAGES, debDir);
    const root = join(dir, "root");
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    for (const deb of debs) {
      const r = await runTool(["dpkg-deb", "-x", deb, root]);
      if (r.code !== 0)
        throw new VmError(VmErrorCode.fetchFailed, `dpkg-deb -x ${deb}: ${tail(r.stderr)}`);
    }
    rmSync(debDir, { recursive: true, force: true });
    const lib = join(root, "usr/lib/x86_64-linux-gnu");
    const loader = join(lib, "ld-linux-x86-64.so.2");
    if (!existsSync(loader))
      throw new VmError(VmErrorCode.fetchFailed, `sid's libc6 has no ${loader}`);
    const run = `${loader} --library-path ${lib}`;
    rmSync(bin, { recursive: true, force: true });
    mkdirSync(bin, { recursive: true });
    const script = (name: string, body: string): void => {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    // gcc's -wrapper runs cc1 and as under the same loader; PATH makes it
    // pick sid's as.
    script(
      wanted,
      `PATH=${join(root, "usr/bin")}:$PATH exec ${run} ${join(root, "usr/bin", wanted)} -wrapper ${loader},--library-path,${lib} "$@"`,
    );
    script("sidrun", `exec ${run} ${join(root, "usr/bin")}/\${0##*/} "$@"`);
    for (const t of BINUTILS) symlinkSync("sidrun", join(bin, `x86_64-linux-gnu-${t}`));
    symlinkSync("sidrun", join(bin, "pahole"));
    script("modpost", `exec ${run} ${kbuild}/mod/modpost.real-lsb-64 "$@"`);
    script("objtool", `exec ${run} ${tools}/objtool/objtool.real-x86 "$@"`);
    script("resolve_btfids", `exec ${run} ${tools}/bpf/resolve_btfids/resolve_btfids "$@"`);
    const check = await runTool([join(bin, wanted), "--version"]);
    if (check.code !== 0)
      throw new VmError(
        VmErrorCode.fetchFailed,
        `sid's ${wanted} does not run here: ${tail(check.stderr)}`,
      );
    writeFileSync(record, JSON.stringify({ abi: kernel.abi, packages: SID_PACKAGES }, null, 2));
    progress(`toolchain: ${check.stdout.split("\n")[0]}`);
    return make(bin);
  });
}
