import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { cgroup2Root } from "../cgroup2.js";
import { KERNEL_BTF } from "../decoder/build.js";
import { runProcess } from "../run-process.js";
import { badOption } from "./errors.js";

/**
 * What toasim needs from the machine beyond npm, by feature: programs (and
 * the Debian package that brings each), and facts of the kernel and the
 * user that no package changes. npm cannot declare Debian packages, so
 * `toasim doctor` says what is missing and the one command that installs
 * it; `toasim doctor --install` runs that command.
 */

interface Program {
  /** A command on PATH (or in the sbin folders), or an absolute path. */
  readonly program: string;
  readonly pkg: string;
}

interface Feature {
  readonly title: string;
  readonly programs: readonly Program[];
  /** Facts that packages do not change: each returns why it fails, or null. */
  readonly facts: readonly (() => string | null)[];
}

const QEMU: Program =
  process.arch === "arm64"
    ? { program: "qemu-system-aarch64", pkg: "qemu-system-arm" }
    : { program: "qemu-system-x86_64", pkg: "qemu-system-x86" };

const LIBBPF = ["/usr/lib/x86_64-linux-gnu/libbpf.so.1", "/usr/lib/aarch64-linux-gnu/libbpf.so.1"];

function root(): string | null {
  return process.geteuid?.() === 0 ? null : "not root (namespaces, TUN devices and BPF need root)";
}

export const FEATURES = {
  gateway: {
    title: "the gateway (up, exec, demo, stats, capture)",
    programs: [{ program: "ip", pkg: "iproute2" }],
    facts: [
      () => (process.platform === "linux" ? null : `not Linux (${process.platform})`),
      root,
      () => (existsSync("/dev/net/tun") ? null : "/dev/net/tun is missing (modprobe tun)"),
    ],
  },
  "client-addresses": {
    title: "client source addresses (exec --as) and conntrack scenarios",
    programs: [
      { program: "nft", pkg: "nftables" },
      { program: "nsenter", pkg: "util-linux" },
    ],
    facts: [() => (cgroup2Root() !== null ? null : "no cgroup v2 is mounted")],
  },
  ebpf: {
    title: "the eBPF decoder (servers without a TOA/UOA module)",
    programs: [
      { program: "clang", pkg: "clang" },
      { program: "bpftool", pkg: "bpftool" },
      { program: "/usr/include/bpf/bpf_helpers.h", pkg: "libbpf-dev" },
    ],
    facts: [
      root,
      () =>
        existsSync(KERNEL_BTF)
          ? null
          : `the kernel has no BTF (${KERNEL_BTF}; CONFIG_DEBUG_INFO_BTF)`,
      () => (cgroup2Root() !== null ? null : "no cgroup v2 is mounted"),
      () => (LIBBPF.some((p) => existsSync(p)) ? null : "libbpf.so.1 is missing (libbpf1)"),
    ],
  },
  scenarios: {
    title: "scenarios (toasim scenario run)",
    programs: [
      { program: "socat", pkg: "socat" },
      { program: "python3", pkg: "python3" },
      { program: "nft", pkg: "nftables" },
    ],
    facts: [],
  },
  vm: {
    title: "toasim vm (Debian kernels under QEMU, module builds)",
    programs: [
      QEMU,
      { program: "/bin/busybox", pkg: "busybox-static" },
      { program: "apt-get", pkg: "apt" },
      { program: "dpkg-deb", pkg: "dpkg" },
      { program: "gcc", pkg: "gcc" },
      { program: "make", pkg: "make" },
      { program: "pahole", pkg: "dwarves" },
      { program: "xz", pkg: "xz-utils" },
      { program: "zstd", pkg: "zstd" },
      { program: "insmod", pkg: "kmod" },
      { program: "setpriv", pkg: "util-linux" },
    ],
    facts: [],
  },
  readers: {
    title: "the C and Python reader examples",
    programs: [
      { program: "python3", pkg: "python3" },
      { program: "gcc", pkg: "gcc" },
      { program: "make", pkg: "make" },
      { program: "/usr/include/stdio.h", pkg: "libc6-dev" },
    ],
    facts: [],
  },
} as const satisfies Record<string, Feature>;

export type FeatureName = keyof typeof FEATURES;
export const FEATURE_NAMES = Object.keys(FEATURES) as FeatureName[];

export interface FeatureReport {
  readonly name: FeatureName;
  readonly title: string;
  readonly ok: boolean;
  /** Missing programs, with their Debian package. */
  readonly missing: readonly Program[];
  /** What no package fixes (not root, no BTF...). */
  readonly problems: readonly string[];
}

export interface DoctorReport {
  /** Every feature asked about is ready. */
  readonly ok: boolean;
  readonly features: readonly FeatureReport[];
  /** Debian packages that would make them ready, and the command that installs them (null: none). */
  readonly packages: readonly string[];
  readonly installCommand: string | null;
}

const SBIN = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin"];

function found(program: string): boolean {
  if (program.startsWith("/")) return existsSync(program);
  const dirs = [...(process.env["PATH"] ?? "").split(":"), ...SBIN];
  return dirs.some((d) => {
    if (d === "") return false;
    try {
      return statSync(join(d, program)).isFile();
    } catch {
      return false;
    }
  });
}

/** What this machine lacks for `features` (default: all). */
export function doctor(features: readonly FeatureName[] = FEATURE_NAMES): DoctorReport {
  for (const f of features) {
    if (!(FEATURE_NAMES as readonly string[]).includes(f))
      badOption("features", `unknown feature ${JSON.stringify(f)} (${FEATURE_NAMES.join(", ")})`);
  }
  const reports = features.map((name): FeatureReport => {
    const f: Feature = FEATURES[name];
    const missing = f.programs.filter((p) => !found(p.program));
    const problems = [...new Set(f.facts.map((check) => check()).filter((x) => x !== null))];
    return {
      name,
      title: f.title,
      ok: missing.length === 0 && problems.length === 0,
      missing,
      problems,
    };
  });
  const packages = [...new Set(reports.flatMap((r) => r.missing.map((m) => m.pkg)))].sort();
  return {
    ok: reports.every((r) => r.ok),
    features: reports,
    packages,
    installCommand:
      packages.length === 0
        ? null
        : `apt-get install -y --no-install-recommends ${packages.join(" ")}`,
  };
}

/**
 * Installs `packages` with apt-get (as root), each line of apt's output to
 * `onLine`; resolves with apt's exit code and the tail of its output.
 */
export async function installPackages(
  packages: readonly string[],
  onLine: (line: string) => void,
): Promise<{ code: number | null; output: string }> {
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const update = await runProcess(["apt-get", "update", "-qq"], { env, onLine });
  if (update.code !== 0) return { code: update.code, output: update.stderr || update.stdout };
  const r = await runProcess(
    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", ...packages],
    { env, onLine },
  );
  return { code: r.code, output: r.spawnError?.message ?? (r.stderr || r.stdout) };
}
