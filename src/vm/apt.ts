import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VmError, VmErrorCode } from "./errors.js";
import { KERNEL_SERIES, type KernelSeries, suiteArchive } from "./kernels.js";
import { runTool, tail } from "./run-tool.js";

/**
 * apt-get and apt-cache on a private configuration: one sources list, lists
 * and package cache per kernel series under toasim's cache folder. The
 * host's apt state is read by nothing and written by nothing, and packages
 * are only downloaded (`apt-get download`, signatures checked by apt), never
 * installed.
 */

const KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";
const DEFAULT_MIRROR = "http://deb.debian.org/debian";
/** Lists older than this are fetched again when a series is resolved online. */
const LISTS_MAX_AGE_MS = 24 * 3600 * 1000;

export class PrivateApt {
  readonly dir: string;

  constructor(
    cacheDir: string,
    readonly series: KernelSeries,
    private readonly mirror: Mirror = hostMirror(),
  ) {
    this.dir = join(cacheDir, "apt", series);
  }

  private options(): string[] {
    return [
      "-o",
      `Dir::Etc::SourceList=${join(this.dir, "sources.list")}`,
      "-o",
      "Dir::Etc::SourceParts=/dev/null",
      "-o",
      `Dir::State::Lists=${join(this.dir, "lists")}`,
      "-o",
      `Dir::Cache=${join(this.dir, "cache")}`,
      "-o",
      "Dir::State::Status=/dev/null",
      // As root, apt would hand downloads to its _apt user, who cannot
      // write into root's cache folder (a warning per file).
      ...(process.getuid?.() === 0 ? ["-o", "APT::Sandbox::User=root"] : []),
      "-q",
    ];
  }

  /** Writes the sources list and fetches the package lists when stale (or always, with force). */
  async update(force: boolean): Promise<void> {
    mkdirSync(join(this.dir, "lists", "partial"), { recursive: true });
    mkdirSync(join(this.dir, "cache", "archives", "partial"), { recursive: true });
    const sources = KERNEL_SERIES[this.series].suites
      .map((s) => {
        const uri = suiteArchive(s) === "debian" ? this.mirror.debian : this.mirror.security;
        return `deb [signed-by=${KEYRING}] ${uri} ${s} main\n`;
      })
      .join("");
    const listFile = join(this.dir, "sources.list");
    const changed = !existsSync(listFile) || readFileSync(listFile, "utf8") !== sources;
    if (changed) writeFileSync(listFile, sources);
    const stamp = join(this.dir, "updated");
    const fresh =
      !changed && existsSync(stamp) && Date.now() - statSync(stamp).mtimeMs < LISTS_MAX_AGE_MS;
    if (fresh && !force) return;
    const r = await runTool(["apt-get", ...this.options(), "update"]);
    if (r.code !== 0 || /^(W|E): .*(Failed|not signed|NO_PUBKEY)/m.test(r.stderr)) {
      throw new VmError(
        VmErrorCode.fetchFailed,
        `apt-get update for ${this.series} (${KERNEL_SERIES[this.series].suites.join(", ")} from ${this.mirror.debian}) failed:\n${tail(r.stderr || r.stdout)}`,
      );
    }
    writeFileSync(stamp, `${new Date().toISOString()}\n`);
  }

  /** The names a package depends on (first alternative of each), or null if apt knows no such package. */
  async depends(pkg: string): Promise<string[] | null> {
    const r = await runTool([
      "apt-cache",
      ...this.options(),
      "depends",
      "--no-recommends",
      "--no-suggests",
      "--no-conflicts",
      "--no-breaks",
      "--no-replaces",
      "--no-enhances",
      pkg,
    ]);
    if (r.code !== 0) return null;
    const out: string[] = [];
    for (const line of r.stdout.split("\n")) {
      const m = /^\s+\|?(?:Pre)?Depends: <?([^>\s]+)>?/.exec(line);
      if (m?.[1] !== undefined) out.push(m[1]);
    }
    return out;
  }

  /** The candidate version of a package, or null if there is none. */
  async version(pkg: string): Promise<string | null> {
    const r = await runTool(["apt-cache", ...this.options(), "policy", pkg]);
    const m = /Candidate: (\S+)/.exec(r.stdout);
    return m?.[1] !== undefined && m[1] !== "(none)" ? m[1] : null;
  }

  /** Downloads the packages' .deb files into dir; returns their paths, in the order given. */
  async download(pkgs: readonly string[], dir: string): Promise<string[]> {
    mkdirSync(dir, { recursive: true });
    const r = await runTool(["apt-get", ...this.options(), "download", ...pkgs], { cwd: dir });
    if (r.code !== 0) {
      throw new VmError(
        VmErrorCode.fetchFailed,
        `apt-get download ${pkgs.join(" ")} failed:\n${tail(r.stderr || r.stdout)}`,
      );
    }
    const files = readdirSync(dir).filter((f) => f.endsWith(".deb"));
    return pkgs.map((p) => {
      const f = files.find((n) => n.startsWith(`${p}_`));
      if (f === undefined)
        throw new VmError(VmErrorCode.fetchFailed, `apt-get download left no .deb for ${p}`);
      return join(dir, f);
    });
  }
}

export interface Mirror {
  readonly debian: string;
  readonly security: string;
}

/**
 * The Debian mirror this machine's own apt sources use (so the VM kernels
 * come from the same place as every other package), overridable with
 * TOASIM_DEBIAN_MIRROR.
 */
export function hostMirror(): Mirror {
  const env = process.env["TOASIM_DEBIAN_MIRROR"];
  const base = env ?? findHostMirror() ?? DEFAULT_MIRROR;
  const trimmed = base.replace(/\/+$/, "");
  return { debian: trimmed, security: trimmed.replace(/\/debian$/, "/debian-security") };
}

function findHostMirror(): string | null {
  const files = ["/etc/apt/sources.list"];
  try {
    for (const f of readdirSync("/etc/apt/sources.list.d"))
      if (f.endsWith(".list") || f.endsWith(".sources"))
        files.push(join("/etc/apt/sources.list.d", f));
  } catch {
    // No sources.list.d.
  }
  for (const f of files) {
    let text = "";
    try {
      text = readFileSync(f, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n")) {
      if (line.trimStart().startsWith("#")) continue;
      const m = /(https?:\/\/\S+\/debian)\/?(?:\s|$)/.exec(line);
      if (m?.[1] !== undefined) return m[1];
    }
  }
  return null;
}
