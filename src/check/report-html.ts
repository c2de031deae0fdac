import { createHash } from "node:crypto";
import { basename, isAbsolute, join, relative } from "node:path";
import type { ScenarioRun, VariantOutcome } from "../api/scenarios.js";
import { readScenario } from "../scenario/format.js";
import { type PcapPacket, readPcap } from "../tun/pcap-reader.js";
import { xmlText as esc, ladderSvg } from "./ladder.js";
import type { CaseResult, CheckReport, KernelHealth, Placement, Result } from "./result.js";

/**
 * The HTML report of `toasim check` (and of `toasim scenario run --report`):
 * one self-contained page, opened from disk next to its pcaps. Nothing is
 * loaded from anywhere (a Content-Security-Policy forbids it, in case some
 * string slipped through escaping): styles and the one small filtering
 * script are inline and allowed by their hashes.
 *
 * Documentation: a case's `doc` is relative to the toasim repository (and
 * to its npm package, which ships docs/). The report is read elsewhere, so
 * the path is shown as text, ready to open in a checkout or on the web; with
 * `docBase` (a URL ending in "/", e.g. the package's folder as file:///...)
 * it is a link too.
 */

export interface ReportHtmlOptions {
  /** The folder the CaseResult.pcaps paths are relative to: the report's own. */
  readonly pcapDir: string;
  readonly title?: string;
  /** Prefix that makes a doc path a link (see above); none: text only. */
  readonly docBase?: string;
}

const MARK: Record<Result, string> = {
  pass: "✓ PASS",
  fail: "✗ FAIL",
  unsupported: "– UNSUPPORTED",
  error: "! ERROR",
};

const CSS = `
:root{color-scheme:light;--pass:#14532d;--pass-bg:#dcfce7;--fail:#7f1d1d;--fail-bg:#fee2e2;
--unsupported:#334155;--unsupported-bg:#e2e8f0;--error:#78350f;--error-bg:#fef3c7;--line:#cbd5e1}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1180px;padding:16px 24px 48px;background:#f8fafc;color:#0f172a;
font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif}
h1{font-size:24px;margin:8px 0}h2{font-size:19px;margin:28px 0 8px;border-bottom:2px solid var(--line)}
h3{font-size:16px;margin:0 0 8px}
code,pre,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
pre{white-space:pre-wrap;margin:0}
table{border-collapse:collapse;background:#fff;margin:6px 0}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#f1f5f9;position:sticky;top:0}
caption{text-align:left;color:#475569;padding:2px 0}
.res-pass{background:var(--pass-bg);color:var(--pass)}.res-fail{background:var(--fail-bg);color:var(--fail)}
.res-unsupported{background:var(--unsupported-bg);color:var(--unsupported)}
.res-error{background:var(--error-bg);color:var(--error)}
.res-none{color:#64748b}
.verdict{display:inline-block;font-size:18px;font-weight:700;padding:6px 14px;border-radius:6px;margin:4px 0}
.counts{display:flex;gap:8px;flex-wrap:wrap;padding:0;list-style:none}
.counts li{padding:4px 10px;border-radius:4px;font-weight:600}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
dl.facts dt{color:#475569}dl.facts dd{margin:0}
td.cell{font-weight:700;white-space:nowrap}td.cell a{color:inherit}
td.cell .got{font-weight:400;font-size:12px}td ul{margin:0;padding-left:18px}
.case-title{color:#334155}.doc{color:#475569;font-size:12px}
article.case,article.variant{background:#fff;color:#0f172a;border:1px solid var(--line);
border-left:6px solid var(--line);border-radius:4px;padding:12px 16px;margin:14px 0}
article.res-fail{border-left-color:#b91c1c}article.res-error{border-left-color:#b45309}
article.res-pass{border-left-color:#15803d}
article h3 .badge{padding:1px 8px;border-radius:4px;margin-right:6px}
figure{margin:10px 0;overflow-x:auto}svg{max-width:100%;height:auto;border:1px solid var(--line)}
.note{color:#92400e}footer{margin-top:32px;color:#475569;font-size:12px}
`;

const SCRIPT = `
const box=document.getElementById("only-bad");
if(box){box.closest("p").hidden=false;box.addEventListener("change",()=>{
for(const r of document.querySelectorAll("tr[data-bad]"))r.hidden=box.checked&&r.dataset.bad==="0";});}
`;

const sha256 = (s: string): string => createHash("sha256").update(s).digest("base64");

function page(title: string, body: string): string {
  const csp = [
    "default-src 'none'",
    `style-src 'sha256-${sha256(CSS)}'`,
    `script-src 'sha256-${sha256(SCRIPT)}'`,
  ].join("; ");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
${body}
<script>${SCRIPT}</script>
</body>
</html>
`;
}

/** A path as a relative URL: every segment encoded, so no string from the report can become a scheme. */
function href(path: string): string {
  return path.split(/[\\/]/).map(encodeURIComponent).join("/");
}

function duration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function facts(rows: readonly (readonly [string, string])[]): string {
  return `<dl class="facts">${rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("")}</dl>`;
}

function readSide(path: string, what: string): PcapPacket[] | string {
  try {
    return readPcap(path);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const why = code === "ENOENT" ? "missing" : e instanceof Error ? e.message : String(e);
    return `${what} capture ${path}: ${why}`;
  }
}

/** The ladder of two pcap files, or why it cannot be drawn. */
function ladderOf(
  clientPath: string,
  serverPath: string,
  faults: readonly string[],
  title: string,
): string {
  const c = readSide(clientPath, "client-side");
  const s = readSide(serverPath, "server-side");
  if (typeof c === "string" || typeof s === "string") {
    const notes = [c, s].filter((x): x is string => typeof x === "string");
    return notes.map((n) => `<p class="note">No ladder diagram: ${esc(n)}</p>`).join("");
  }
  return `<figure class="ladder">${ladderSvg(c, s, { faults, title })}</figure>`;
}

function pcapLinks(links: readonly (readonly [string, string])[]): string {
  const as = links.map(([label, path]) => `<a href="${esc(href(path))}">${esc(label)}</a>`);
  return `<p class="pcaps">Captures beside this report: ${as.join(", ")}</p>`;
}

function docText(doc: string, base: string | undefined): string {
  const code = `<code>${esc(doc)}</code>`;
  if (base === undefined) return code;
  const [path = "", anchor] = doc.split("#", 2);
  const url = `${base}${href(path)}${anchor === undefined ? "" : `#${encodeURIComponent(anchor)}`}`;
  return `<a href="${esc(url)}">${code}</a>`;
}

function counts(results: readonly Result[]): string {
  const items = (["pass", "fail", "unsupported", "error"] as const).map((r) => {
    const n = results.filter((x) => x === r).length;
    return `<li class="res-${r}" data-result="${r}">${MARK[r]}: <span class="n">${n}</span></li>`;
  });
  return `<ul class="counts">${items.join("")}</ul>`;
}

function kernelTable(kernels: readonly KernelHealth[]): string {
  if (kernels.length === 0) return "<p>No kernel was checked.</p>";
  const rows = kernels.map((k) => {
    const built = k.built
      ? "yes"
      : `no${k.buildError !== null ? `: <pre>${esc(k.buildError)}</pre>` : ""}`;
    const problems =
      k.problems.length === 0
        ? "none"
        : `<ul>${k.problems.map((p) => `<li><code>${esc(p)}</code></li>`).join("")}</ul>`;
    const health = k.ok ? "✓ OK" : "✗ PROBLEM";
    return `<tr><th scope="row"><code>${esc(k.kernel)}</code></th><td>${built}</td><td>${problems}</td><td>${esc(k.memory ?? "not checked")}</td><td>${esc(k.unload ?? "nothing loaded")}</td><td class="${k.ok ? "res-pass" : "res-fail"}"><strong>${health}</strong></td></tr>`;
  });
  return `<table class="kernels"><caption>The module's build and load, kernel log problems, memory and unload, per kernel</caption><thead><tr><th scope="col">kernel</th><th scope="col">built and loaded</th><th scope="col">kernel problems</th><th scope="col">memory</th><th scope="col">unload</th><th scope="col">health</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

/** A row of the matrix: one case for one profile, family and reader, on every kernel. */
interface MatrixRow {
  readonly first: CaseResult;
  readonly byKernel: Map<string, { c: CaseResult; at: number }[]>;
}

function matrix(report: CheckReport, kernels: readonly string[], docBase?: string): string {
  const rows = new Map<string, MatrixRow>();
  report.cases.forEach((c, at) => {
    const key = JSON.stringify([c.id, c.proto, c.profile, c.family, c.reader]);
    const row = rows.get(key) ?? { first: c, byKernel: new Map() };
    rows.set(key, row);
    const cell = row.byKernel.get(c.kernel) ?? [];
    cell.push({ c, at });
    row.byKernel.set(c.kernel, cell);
  });
  const head = ["case", "profile", "family", "reader", ...kernels.map((k) => `kernel ${k}`)]
    .map((h) => `<th scope="col">${esc(h)}</th>`)
    .join("");
  const body = [...rows.values()].map((r) => {
    const c = r.first;
    const cells = kernels.map((k) => cell(r.byKernel.get(k) ?? []));
    const bad = [...r.byKernel.values()].some((xs) =>
      xs.some(({ c: x }) => x.result === "fail" || x.result === "error"),
    );
    return `<tr data-bad="${bad ? 1 : 0}"><th scope="row"><span class="mono case-id">${esc(c.id)}</span><br><span class="case-title">${esc(c.title)}</span><br><span class="doc">${docText(c.doc, docBase)}</span></th><td>${esc(c.profile)}</td><td>${esc(c.family)}</td><td class="mono">${esc(c.reader)}</td>${cells.join("")}</tr>`;
  });
  const filter =
    '<p hidden><label><input type="checkbox" id="only-bad"> only the rows with a FAIL or an ERROR</label></p>';
  return `${filter}<table class="matrix"><caption>One row per case, profile, family and reader; one column per kernel. Hover a cell for its diagnosis; FAIL and ERROR link to their section.</caption><thead><tr>${head}</tr></thead><tbody>${body.join("")}</tbody></table>`;
}

function cell(results: readonly { c: CaseResult; at: number }[]): string {
  if (results.length === 0) return '<td class="cell res-none">— not run</td>';
  const worst = results.map(({ c }) => c.result).sort((a, b) => rank(b) - rank(a))[0]!;
  const parts = results.map(({ c, at }) => {
    const label =
      c.result === "fail" || c.result === "error"
        ? `<a href="#case-${at}">${MARK[c.result]}</a>`
        : MARK[c.result];
    const where = results.length > 1 ? ` <span class="got">(${esc(c.placement)})</span>` : "";
    const got = c.result === "pass" ? "" : `<div class="got">got ${esc(c.got || "nothing")}</div>`;
    return `<div data-result="${c.result}">${label}${where}${got}</div>`;
  });
  const tip = results
    .map(
      ({ c }) =>
        `${c.placement}: ${c.result}, got ${c.got}${c.diagnosis ? ` (${c.diagnosis})` : ""}`,
    )
    .join("\n");
  return `<td class="cell res-${worst}" title="${esc(tip)}">${parts.join("")}</td>`;
}

const rank = (r: Result): number => ["pass", "unsupported", "error", "fail"].indexOf(r);

function failure(c: CaseResult, at: number, opts: ReportHtmlOptions): string {
  const rows: [string, string][] = [
    ["where", esc(`${c.proto}, profile ${c.profile}, ${c.family}, reader ${c.reader}`)],
    ["kernel", `<code>${esc(c.kernel)}</code>, server in ${esc(c.placement)}`],
    ["expected", `<code>${esc(c.expected)}</code>`],
    ["got", c.got ? `<code>${esc(c.got)}</code>` : "nothing"],
    ["diagnosis", esc(c.diagnosis ?? "none given")],
    ["documented in", docText(c.doc, opts.docBase)],
    [
      "faults",
      c.faults.length > 0 ? c.faults.map((f) => `<code>${esc(f)}</code>`).join(", ") : "none",
    ],
  ];
  let pcaps = '<p class="note">No captures were kept for this case.</p>';
  if (c.pcaps !== null) {
    const { client, server } = c.pcaps;
    const title = `${c.id} (${c.profile}, ${c.family}, ${c.reader}, ${c.kernel})`;
    pcaps =
      pcapLinks([
        ["client side", client],
        ["server side", server],
      ]) + ladderOf(join(opts.pcapDir, client), join(opts.pcapDir, server), c.faults, title);
  }
  return `<article class="case res-${c.result}" id="case-${at}" data-result="${c.result}"><h3><span class="badge res-${c.result}">${MARK[c.result]}</span><span class="mono">${esc(c.id)}</span> — ${esc(c.title)}</h3>${facts(rows)}${pcaps}</article>`;
}

function verdict(ok: boolean, why: string): string {
  return `<p class="verdict ${ok ? "res-pass" : "res-fail"}" id="verdict">${ok ? "✓ PASS" : "✗ FAIL"}: ${esc(why)}</p>`;
}

const PLACE: Readonly<Record<Placement, string>> = {
  "server-netns": "toasim's server namespace (server-netns)",
  "root-netns": "the root namespace (root-netns)",
};

export function reportHtml(report: CheckReport, opts: ReportHtmlOptions): string {
  const title = opts.title ?? `toasim check: ${report.decoder}`;
  const kernels = [...report.kernels.map((k) => k.kernel)];
  for (const c of report.cases) if (!kernels.includes(c.kernel)) kernels.push(c.kernel);
  const bad = report.cases
    .map((c, at) => ({ c, at }))
    .filter(({ c }) => c.result === "fail" || c.result === "error");
  const why = report.ok
    ? "every case passed or is unsupported, and every kernel is healthy"
    : "a case failed or could not run, or a kernel had a problem";
  const summary = facts([
    ["decoder", `<code>${esc(report.decoder)}</code>`],
    ["toasim", esc(report.toasimVersion)],
    ["started", esc(report.startedAt)],
    ["duration", esc(duration(report.durationMs))],
    [
      "cases",
      esc(`${report.cases.length} on ${kernels.length} kernel${kernels.length === 1 ? "" : "s"}`),
    ],
    ["server in", esc([...new Set(report.cases.map((c) => PLACE[c.placement]))].join(", "))],
  ]);
  const sections =
    bad.length === 0 ? "<p>None.</p>" : bad.map(({ c, at }) => failure(c, at, opts)).join("\n");
  const body = [
    `<header><h1>${esc(title)}</h1>${verdict(report.ok, why)}</header>`,
    `<section id="summary"><h2>Summary</h2>${summary}${counts(report.cases.map((c) => c.result))}</section>`,
    `<section id="kernels"><h2>Kernels</h2>${kernelTable(report.kernels)}</section>`,
    `<section id="matrix"><h2>Matrix</h2>${report.cases.length === 0 ? "<p>No case ran.</p>" : matrix(report, kernels, opts.docBase)}</section>`,
    `<section id="failures"><h2>Failures and errors (${bad.length})</h2>${sections}</section>`,
    `<footer>Documentation paths are relative to the toasim repository and to its npm package (docs/). Ladder diagrams are drawn from the captures with toasim's own decoders; hover an arrow for the packet's details.</footer>`,
  ];
  return page(title, body.join("\n"));
}

// --- scenarios ---------------------------------------------------------------

export interface ScenarioReportOptions {
  /** Where the page is written: the pcap links are relative to it. */
  readonly reportDir: string;
  readonly title?: string;
  readonly toasimVersion?: string;
  /** ISO 8601. */
  readonly startedAt?: string;
  readonly durationMs?: number;
}

function ruleText(r: unknown): string {
  return typeof r === "string" ? r : JSON.stringify(r);
}

/** The variant's fault rules and the steps that change them, from the scenario file (none if it cannot be read). */
function scenarioFaults(file: string, variant: "healthy" | "bug"): string[] {
  try {
    const s = readScenario(file);
    const v = variant === "bug" ? s.bug : s.healthy;
    const f = v?.faults;
    const rules = (x: unknown): string[] => {
      if (x === null || x === undefined) return [];
      const list = (x as { rules?: unknown }).rules;
      return Array.isArray(list) ? list.map(ruleText) : [ruleText(x)];
    };
    const steps = s.steps.flatMap((st, i) =>
      st.kind === "faults"
        ? [`from step ${i}: ${st.faults === null ? "off" : rules(st.faults).join("; ")}`]
        : [],
    );
    return [...rules(f), ...steps];
  } catch {
    return [];
  }
}

type Shown = "pass" | "fail" | "error" | "skipped";

function shownOf(o: VariantOutcome): Shown {
  if ("skipped" in o) return "skipped";
  if ("error" in o) return "error";
  return o.pass ? "pass" : "fail";
}

const SHOWN: Record<Shown, [string, string]> = {
  pass: ["✓ PASS", "res-pass"],
  fail: ["✗ FAIL", "res-fail"],
  error: ["! ERROR", "res-error"],
  skipped: ["– SKIPPED", "res-unsupported"],
};

function variantHtml(run: ScenarioRun, o: VariantOutcome, reportDir: string): string {
  const shown = shownOf(o);
  const [label, cls] = SHOWN[shown];
  const headline = `<h3><span class="badge ${cls}">${label}</span>${esc(o.variant)} variant</h3>`;
  let inner: string;
  if ("skipped" in o) inner = `<p>Skipped: ${esc(o.skipped)}</p>`;
  else if ("error" in o)
    inner = `<p>The run could not be carried out: <code>${esc(o.error)}</code></p>`;
  else {
    const rows = o.outcomes.map(
      (x, i) =>
        `<tr><td>${i}</td><td>${esc(x.expected)}</td><td>${esc(x.actual)}</td><td class="${x.pass ? "res-pass" : "res-fail"}"><strong>${x.pass ? "✓ PASS" : "✗ FAIL"}</strong></td></tr>`,
    );
    const broken =
      o.variant === "bug"
        ? `<p>Healthy expectations this run broke: ${o.broken.length > 0 ? esc(o.broken.map((i) => `#${i}`).join(", ")) : "none"}.</p>`
        : "";
    const client = o.pcaps.find((p) => basename(p) === "client.pcap") ?? o.pcaps[0];
    const server = o.pcaps.find((p) => basename(p) === "server.pcap") ?? o.pcaps[1];
    let ladder = '<p class="note">No captures.</p>';
    if (client !== undefined && server !== undefined) {
      const rel = (p: string) => (isAbsolute(p) ? relative(reportDir, p) : p);
      const faults = scenarioFaults(run.file, o.variant);
      ladder =
        pcapLinks([
          ["client side", rel(client)],
          ["server side", rel(server)],
        ]) + ladderOf(client, server, faults, `${run.name}, ${o.variant} variant`);
    }
    inner = `<p>Decoder: <code>${esc(o.decoder)}</code></p><table class="outcomes"><thead><tr><th scope="col">#</th><th scope="col">expected</th><th scope="col">found</th><th scope="col">result</th></tr></thead><tbody>${rows.join("")}</tbody></table>${broken}${ladder}`;
  }
  return `<article class="variant ${cls}" data-result="${shown}">${headline}${inner}</article>`;
}

export function scenarioReportHtml(
  runs: readonly ScenarioRun[],
  opts: ScenarioReportOptions,
): string {
  const title = opts.title ?? "toasim scenarios";
  const all = runs.flatMap((r) => r.results.map(shownOf));
  const ok = all.every((s) => s === "pass" || s === "skipped");
  const n = (s: Shown) => all.filter((x) => x === s).length;
  const summary = facts([
    ["toasim", esc(opts.toasimVersion ?? "unknown")],
    ["started", esc(opts.startedAt ?? "unknown")],
    ["duration", opts.durationMs === undefined ? "unknown" : esc(duration(opts.durationMs))],
    ["scenarios", esc(String(runs.length))],
  ]);
  const countList = (["pass", "fail", "error", "skipped"] as const)
    .map(
      (s) =>
        `<li class="${SHOWN[s][1]}" data-result="${s}">${SHOWN[s][0]}: <span class="n">${n(s)}</span></li>`,
    )
    .join("");
  const scenarios = runs.map((r, i) => {
    const good = r.results.every((o) => shownOf(o) === "pass" || shownOf(o) === "skipped");
    const [label, cls] = SHOWN[good ? "pass" : "fail"];
    return `<section class="scenario" id="scenario-${i}"><h2><span class="badge ${cls}">${label}</span> ${esc(r.name)}</h2><p>${esc(r.symptom)}</p><p class="doc"><code>${esc(r.file)}</code></p>${r.results.map((o) => variantHtml(r, o, opts.reportDir)).join("")}</section>`;
  });
  const why = ok
    ? "every variant held its expectations (skips aside)"
    : "a variant failed or could not run";
  const body = [
    `<header><h1>${esc(title)}</h1>${verdict(ok, why)}</header>`,
    `<section id="summary"><h2>Summary</h2>${summary}<ul class="counts">${countList}</ul></section>`,
    ...scenarios,
    "<footer>Ladder diagrams are drawn from each variant's captures, whole runs; hover an arrow for the packet's details.</footer>",
  ];
  return page(title, body.join("\n"));
}
