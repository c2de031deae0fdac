import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { runProcess } from "../run-process.js";

/**
 * The kernel's health around a check, seen from inside it: slab objects
 * before and after (Debian's kernels have no kmemleak, but every one has
 * /proc/slabinfo), and how the module unloads.
 */

export type Slabs = ReadonlyMap<string, number>;

/**
 * Active objects per slab cache (root only; empty where /proc/slabinfo
 * cannot be read). SLUB counts a CPU's current slab as in use: each cache
 * is shrunk first (/sys/kernel/slab/NAME/shrink), or the counts move by
 * whole slabs (512 objects of kmalloc-8) with nothing allocated.
 */
export function slabSnapshot(): Slabs {
  const out = new Map<string, number>();
  let caches: string[] = [];
  try {
    caches = readdirSync("/sys/kernel/slab");
  } catch {
    // Not SLUB, or no sysfs: the counts are what they are.
  }
  for (const name of caches) {
    try {
      writeFileSync(`/sys/kernel/slab/${name}/shrink`, "1");
    } catch {
      // Some caches cannot be shrunk; their counts stay coarse.
    }
  }
  let text = "";
  try {
    text = readFileSync("/proc/slabinfo", "utf8");
  } catch {
    return out;
  }
  for (const line of text.split("\n").slice(2)) {
    const [name, active] = line.trim().split(/\s+/);
    if (name !== undefined && active !== undefined && /^\d+$/.test(active))
      out.set(name, Number(active));
  }
  return out;
}

/**
 * What the slab counts say after the run: the general-purpose caches
 * (kmalloc-*) a module allocates from, compared. A cache that kept at
 * least `threshold` more objects than it had is reported as a possible
 * leak; smaller drifts are the kernel's own (sockets, namespaces being
 * freed late) and are only listed.
 */
export function slabVerdict(
  before: Slabs,
  after: Slabs,
  threshold: number,
): { ok: boolean; text: string } {
  if (before.size === 0 || after.size === 0)
    return { ok: true, text: "not measured (/proc/slabinfo cannot be read)" };
  const grown: [string, number][] = [];
  for (const [name, n] of after) {
    if (!/^kmalloc-(rcl-|cg-)?\d+k?$/.test(name)) continue;
    const d = n - (before.get(name) ?? 0);
    if (d > 0) grown.push([name, d]);
  }
  grown.sort((a, b) => b[1] - a[1]);
  const leaks = grown.filter(([, d]) => d >= threshold);
  const top = grown
    .slice(0, 3)
    .map(([n, d]) => `${n} +${d}`)
    .join(", ");
  if (leaks.length > 0)
    return {
      ok: false,
      text: `possible leak: ${leaks.map(([n, d]) => `${n} kept ${d} more objects`).join(", ")} after the module was unloaded (threshold ${threshold})`,
    };
  return {
    ok: true,
    text: `kmalloc caches back within ${threshold} objects of the start${top ? ` (largest drifts: ${top})` : ""}`,
  };
}

/** rmmod NAME: "clean", or what went wrong (EBUSY, a refusal, a module still listed). */
export async function unload(name: string): Promise<string> {
  const r = await runProcess(["rmmod", name], { timeoutMs: 60_000 });
  if (r.spawnError !== null) return `rmmod could not run: ${r.spawnError.message}`;
  if (r.timedOut) return "rmmod did not return within 60 s";
  if (r.code !== 0) return `rmmod failed: ${r.stderr.trim() || `exit ${r.code}`}`;
  const still = readFileSync("/proc/modules", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[0] === name.replace(/-/g, "_"));
  return still ? "rmmod returned 0 but the module is still loaded" : "clean";
}
