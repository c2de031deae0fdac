import { type CheckReport, type Placement, READERS, type Result } from "./result.js";

/**
 * The terminal's view of a check: per kernel, one line per case, profile
 * and family with a column per reader, then each failure's diagnosis.
 */

const MARK: Readonly<Record<Result, string>> = {
  pass: "pass",
  fail: "FAIL",
  unsupported: "n/a",
  error: "ERR",
};

const PLACE: Readonly<Record<Placement, string>> = {
  "server-netns": "toasim's server namespace",
  "root-netns": "the root namespace",
};

export function reportText(r: CheckReport): string {
  const out: string[] = [];
  const counts = (k: Result) => r.cases.filter((c) => c.result === k).length;
  out.push(
    `toasim check: decoder ${r.decoder}, ${r.kernels.length} kernel(s), ${r.cases.length} results: ` +
      `${counts("pass")} pass, ${counts("fail")} fail, ${counts("unsupported")} unsupported, ${counts("error")} error`,
  );
  for (const k of r.kernels) {
    out.push("", `kernel ${k.kernel}${k.ok ? "" : "  (problems)"}`);
    if (!k.built) out.push(`  the module did not build or load: ${k.buildError ?? "?"}`);
    for (const p of k.problems) out.push(`  kernel log: ${p}`);
    if (k.unload !== null) out.push(`  unload: ${k.unload}`);
    if (k.memory !== null) out.push(`  memory: ${k.memory}`);
    const rows = r.cases.filter((c) => c.kernel === k.kernel);
    if (rows.length === 0) continue;
    const places = [...new Set(rows.map((c) => c.placement))];
    out.push(`  server in: ${places.map((p) => PLACE[p]).join(", ")}`);
    // With both placements, each row says which it is.
    const at = (p: Placement): string => (places.length > 1 ? ` ${p}` : "");
    const readers = READERS.filter((x) => rows.some((c) => c.reader === x));
    const keys = [...new Set(rows.map((c) => `${c.id}|${c.profile}|${c.family}|${c.placement}`))];
    const label = (key: string): string => {
      const [id, profile, family, p] = key.split("|") as [string, string, string, Placement];
      return `${id} ${profile} ${family}${at(p)}`;
    };
    const w = Math.max(...keys.map((key) => label(key).length), 10);
    out.push(`  ${"case profile family".padEnd(w)}  ${readers.map((x) => x.padEnd(11)).join(" ")}`);
    for (const key of keys) {
      const [id, profile, family, p] = key.split("|") as [string, string, string, Placement];
      const cells = readers.map((reader) => {
        const c = rows.find(
          (x) =>
            x.id === id &&
            x.profile === profile &&
            x.family === family &&
            x.placement === p &&
            x.reader === reader,
        );
        return (c === undefined ? "" : MARK[c.result]).padEnd(11);
      });
      out.push(`  ${label(key).padEnd(w)}  ${cells.join(" ")}`);
    }
  }
  const bad = r.cases.filter((c) => c.result === "fail" || c.result === "error");
  if (bad.length > 0) {
    out.push("", "Failures:");
    for (const c of bad)
      out.push(
        `  ${c.result.toUpperCase()} ${c.kernel} ${c.id} ${c.profile} ${c.family} ${c.reader} (${c.placement}): ${c.diagnosis ?? ""}${c.pcaps ? ` [${c.pcaps.server}]` : ""}`,
      );
  }
  out.push("", r.ok ? "OK: nothing failed" : "NOT OK: see the failures above");
  return `${out.join("\n")}\n`;
}
