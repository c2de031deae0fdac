import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { VmError, VmErrorCode } from "./errors.js";

/**
 * Kernel module files: their .modinfo (name, depends, vermagic), the
 * dependency order of a set of in-tree modules, and their bytes
 * uncompressed (busybox insmod takes plain .ko). Debian's image packages
 * ship no modules.dep (depmod runs at install time), so the order comes
 * from each module's own `depends=`.
 */

export interface ModInfo {
  readonly name: string;
  readonly depends: readonly string[];
  /** `softdep=pre: NAME...`: what modprobe loads first (a module name or an alias). */
  readonly softdepPre: readonly string[];
  readonly aliases: readonly string[];
  readonly vermagic: string;
}

/** Module names compare with - and _ as the same character, as modprobe does. */
export function moduleName(text: string): string {
  return text.replace(/\.ko(\.(xz|gz|zst))?$/, "").replaceAll("-", "_");
}

/** The module's bytes, uncompressed by its extension. */
export async function moduleBytes(path: string): Promise<Buffer> {
  if (path.endsWith(".ko")) return readFileSync(path);
  if (path.endsWith(".ko.gz")) return gunzipSync(readFileSync(path));
  const tool = path.endsWith(".ko.xz") ? "xz" : path.endsWith(".ko.zst") ? "zstd" : null;
  if (tool === null)
    throw new VmError(
      VmErrorCode.badInput,
      `${path}: not a kernel module (.ko, .ko.xz, .ko.gz, .ko.zst)`,
    );
  return new Promise((resolve, reject) => {
    execFile(
      tool,
      ["-dc", path],
      { encoding: "buffer", maxBuffer: 512 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve(stdout);
          return;
        }
        const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
        reject(
          new VmError(
            missing ? VmErrorCode.missingTool : VmErrorCode.badKernelPackage,
            missing
              ? `${tool} is not installed (toasim doctor --install installs what is missing)`
              : `${tool} -dc ${path}: ${stderr.toString().trim()}`,
          ),
        );
      },
    );
  });
}

/** The .modinfo section of an ELF64 little-endian module. */
export function parseModInfo(ko: Uint8Array, what: string): ModInfo {
  const bad = (why: string): VmError =>
    new VmError(VmErrorCode.badInput, `${what} is not a kernel module: ${why}`);
  if (ko.length < 64 || ko[0] !== 0x7f || ko[1] !== 0x45 || ko[2] !== 0x4c || ko[3] !== 0x46)
    throw bad("no ELF header");
  if (ko[4] !== 2 || ko[5] !== 1) throw bad("not a 64-bit little-endian ELF file");
  const dv = new DataView(ko.buffer, ko.byteOffset, ko.byteLength);
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const shstrndx = dv.getUint16(0x3e, true);
  if (shentsize < 64 || shstrndx >= shnum || shoff + shnum * shentsize > ko.length)
    throw bad("section headers out of bounds");
  const section = (i: number): { name: number; offset: number; size: number } => {
    const at = shoff + i * shentsize;
    return {
      name: dv.getUint32(at, true),
      offset: Number(dv.getBigUint64(at + 24, true)),
      size: Number(dv.getBigUint64(at + 32, true)),
    };
  };
  const strtab = section(shstrndx);
  if (strtab.offset + strtab.size > ko.length) throw bad("section names out of bounds");
  const nameAt = (off: number): string => {
    let end = strtab.offset + off;
    while (end < strtab.offset + strtab.size && ko[end] !== 0) end++;
    return Buffer.from(ko.subarray(strtab.offset + off, end)).toString("latin1");
  };
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (nameAt(s.name) !== ".modinfo") continue;
    if (s.offset + s.size > ko.length) throw bad(".modinfo out of bounds");
    const fields = new Map<string, string>();
    const aliases: string[] = [];
    const softdepPre: string[] = [];
    for (const entry of Buffer.from(ko.subarray(s.offset, s.offset + s.size))
      .toString("latin1")
      .split("\0")) {
      const eq = entry.indexOf("=");
      if (eq <= 0) continue;
      const [key, value] = [entry.slice(0, eq), entry.slice(eq + 1)];
      if (key === "alias") aliases.push(value);
      if (key === "softdep") softdepPre.push(...softdepNames(value));
      if (!fields.has(key)) fields.set(key, value);
    }
    const depends = (fields.get("depends") ?? "").split(",").filter((d) => d !== "");
    return {
      name: moduleName(fields.get("name") ?? basename(what)),
      depends: depends.map(moduleName),
      softdepPre,
      aliases,
      vermagic: fields.get("vermagic") ?? "",
    };
  }
  throw bad("no .modinfo section");
}

/** The `pre:` names of a softdep value ("pre: crc32c post: x"). */
function softdepNames(value: string): string[] {
  const out: string[] = [];
  let pre = false;
  for (const w of value.split(/\s+/)) {
    if (w === "pre:" || w === "post:") pre = w === "pre:";
    else if (pre && w !== "") out.push(w);
  }
  return out;
}

/** The kernel release a module was built for (vermagic's first word). */
export function builtFor(info: ModInfo): string {
  return info.vermagic.split(" ")[0] ?? "";
}

/** The in-tree modules of an unpacked kernel, by name. */
export class ModuleTree {
  readonly #files = new Map<string, string>();
  readonly #builtin = new Set<string>();
  /** Read once: the softdep search and the resolution look at the same files. */
  readonly #read = new Map<string, { bytes: Buffer; info: ModInfo }>();

  constructor(readonly modulesDir: string) {
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.ko(\.(xz|gz|zst))?$/.test(e.name)) this.#files.set(moduleName(e.name), p);
      }
    };
    walk(join(modulesDir, "kernel"));
    const builtin = join(modulesDir, "modules.builtin");
    if (existsSync(builtin)) {
      for (const line of readFileSync(builtin, "utf8").split("\n"))
        if (line !== "") this.#builtin.add(moduleName(basename(line)));
    }
  }

  has(name: string): boolean {
    const n = moduleName(name);
    return this.#files.has(n) || this.#builtin.has(n);
  }

  /**
   * The files to insmod, dependencies first, for the wanted modules; the
   * ones built into the kernel need nothing. `optional` names are skipped
   * when the kernel has them neither built in nor as a module.
   */
  async resolve(
    wanted: readonly string[],
    optional: readonly string[] = [],
  ): Promise<{ name: string; bytes: Buffer }[]> {
    const order: { name: string; bytes: Buffer }[] = [];
    const done = new Set<string>();
    const visiting = new Set<string>();
    const visit = async (raw: string, chain: string[]): Promise<void> => {
      const name = moduleName(raw);
      if (done.has(name) || this.#builtin.has(name)) return;
      if (visiting.has(name))
        throw new VmError(
          VmErrorCode.badKernelPackage,
          `module dependency loop: ${[...chain, name].join(" -> ")}`,
        );
      const path = this.#files.get(name);
      if (path === undefined) {
        if (chain.length === 0 && optional.includes(raw)) return;
        throw new VmError(
          VmErrorCode.badKernelPackage,
          `kernel in ${this.modulesDir} has no module ${name}${chain.length ? ` (needed by ${chain.at(-1)})` : ""}`,
        );
      }
      visiting.add(name);
      const { bytes, info } = await this.#module(path);
      for (const d of info.depends) await visit(d, [...chain, name]);
      // Soft: what provides it is loaded first when the kernel has it
      // (libcrc32c's init asks the crypto layer for "crc32c").
      for (const soft of info.softdepPre) {
        const provider = await this.#provider(soft);
        if (provider !== null) await visit(provider, [...chain, name]);
      }
      visiting.delete(name);
      done.add(name);
      order.push({ name, bytes });
    };
    for (const w of [...wanted, ...optional]) await visit(w, []);
    return order;
  }

  /**
   * The module that answers to a softdep name: a module of that name, or
   * one whose name starts with it and carries it (or crypto-NAME) as an
   * alias, the CPU-independent _generic one first (TCG's CPU may lack the
   * instructions of the others). null: built in, or nothing provides it.
   */
  async #module(path: string): Promise<{ bytes: Buffer; info: ModInfo }> {
    let m = this.#read.get(path);
    if (m === undefined) {
      const bytes = await moduleBytes(path);
      m = { bytes, info: parseModInfo(bytes, path) };
      this.#read.set(path, m);
    }
    return m;
  }

  async #provider(soft: string): Promise<string | null> {
    const n = moduleName(soft);
    if ([...this.#builtin].some((b) => b.startsWith(n))) return null;
    if (this.#files.has(n)) return n;
    const candidates = [...this.#files.keys()]
      .filter((k) => k.startsWith(n))
      .sort((a, b) => Number(b.endsWith("_generic")) - Number(a.endsWith("_generic")));
    for (const c of candidates) {
      const { info } = await this.#module(this.#files.get(c)!);
      if (info.aliases.includes(soft) || info.aliases.includes(`crypto-${soft}`)) return c;
    }
    return null;
  }
}
