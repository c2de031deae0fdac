import { readFileSync } from "node:fs";

/** The module's /proc/net files as name -> value, the per-CPU columns summed. */
export function readProcStats(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^(\w+)\s*:(.*)$/.exec(line);
    if (!m) continue;
    out[m[1]!] = m[2]!
      .trim()
      .split(/\s+/)
      .reduce((a, v) => a + Number(v), 0);
  }
  return out;
}

export interface Stats {
  toa: Record<string, number>;
  uoa: Record<string, number>;
}

export function moduleStats(): Stats {
  return { toa: readProcStats("/proc/net/toa_stats"), uoa: readProcStats("/proc/net/uoa_stats") };
}
