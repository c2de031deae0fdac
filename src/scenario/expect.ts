import { type ScriptResults, unmapV4 } from "../craft/scripted-clients.js";
import { isLip } from "../runtime/defaults.js";
import type { Expectation, Step } from "./format.js";

/** What one step left for the expectations to look at. */
export interface StepResult {
  /** The address the step's client used, or null for steps without one. */
  readonly source: string | null;
  /** The reader server's JSON reports that came back to the client. */
  readonly reports: readonly Record<string, unknown>[];
  readonly scripted: ScriptResults | null;
  /** UDP steps: how many of the client's sendto calls failed, by errno name. */
  readonly sendErrors: Readonly<Record<string, number>>;
}

export interface Outcome {
  readonly pass: boolean;
  /** What was expected, in words. */
  readonly expected: string;
  /** What was found. */
  readonly actual: string;
}

/** The report's peer, an IPv4 address seen on a dual-stack socket (::ffff:a.b.c.d) as plain IPv4. */
function peerAddress(r: Record<string, unknown>): string {
  const p = r["peer"] as { address?: unknown } | undefined;
  return typeof p?.address === "string" ? unmapV4(p.address) : JSON.stringify(p ?? null);
}

/** A dotted path into a report: "toaLookup.address". */
function at(r: Record<string, unknown>, path: string): unknown {
  let v: unknown = r;
  for (const k of path.split(".")) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

export function evaluate(
  expect: readonly Expectation[],
  results: readonly StepResult[],
  before: Record<string, number>,
  after: Record<string, number>,
  steps: readonly Step[],
): Outcome[] {
  return expect.map((e) => outcome(e, results, before, after, steps));
}

function outcome(
  e: Expectation,
  results: readonly StepResult[],
  before: Record<string, number>,
  after: Record<string, number>,
  steps: readonly Step[],
): Outcome {
  switch (e.kind) {
    case "peer": {
      const r = results[e.step]!;
      const seen = r.reports.map(peerAddress);
      const want =
        e.peer === "client"
          ? `the client ${r.source}`
          : e.peer === "gateway"
            ? "a gateway address (LIP)"
            : e.peer === "none"
              ? "no answer"
              : e.peer;
      let pass: boolean;
      if (e.peer === "none") pass = seen.length === 0;
      else if (seen.length === 0) pass = false;
      else if (e.peer === "client") pass = seen.every((a) => a === r.source);
      else if (e.peer === "gateway") pass = seen.every(isLip);
      else pass = seen.every((a) => a === e.peer);
      return {
        pass,
        expected: e.text || `step ${e.step} (${steps[e.step]!.kind}): the server sees ${want}`,
        actual: seen.length === 0 ? "no report came back" : `saw ${[...new Set(seen)].join(", ")}`,
      };
    }
    case "report": {
      const r = results[e.step]!.reports[0];
      const v = r === undefined ? undefined : at(r, e.path);
      return {
        pass: r !== undefined && JSON.stringify(v) === JSON.stringify(e.equals),
        expected: e.text || `step ${e.step}: report ${e.path} = ${JSON.stringify(e.equals)}`,
        actual: r === undefined ? "no report came back" : `${e.path} = ${JSON.stringify(v)}`,
      };
    }
    case "reports": {
      const n = results[e.step]!.reports.length;
      return {
        pass: n >= e.min && n <= e.max,
        expected: e.text || `step ${e.step}: ${range(e.min, e.max)} reports`,
        actual: `${n} reports`,
      };
    }
    case "scripted": {
      const s = results[e.step]!.scripted;
      const total = s === null ? 0 : s.opened;
      let pass: boolean;
      if (s === null) pass = false;
      else if (e.matched === "none") pass = s.completed === total && s.matched === 0;
      else if (e.matched === "all") pass = s.completed === total && s.matched === total;
      else pass = s.matched >= e.matched;
      const what =
        e.matched === "all" ? "every" : e.matched === "none" ? "no" : `at least ${e.matched}`;
      return {
        pass,
        expected:
          e.text ||
          `step ${e.step}: ${what} scripted connection(s) seen by the server as themselves`,
        actual:
          s === null
            ? "no results"
            : `${s.matched}/${s.opened} matched, ${s.mismatched} mismatched${s.mismatches[0] ? ` (e.g. ${s.mismatches[0].client} seen as ${s.mismatches[0].seen})` : ""}`,
      };
    }
    case "send-errors": {
      const r = results[e.step]!;
      const n = r.sendErrors[e.errno] ?? 0;
      const all = Object.entries(r.sendErrors).map(([k, x]) => `${x} ${k}`);
      return {
        pass: n >= e.min && n <= e.max,
        expected:
          e.text || `step ${e.step}: ${range(e.min, e.max)} sendto calls fail with ${e.errno}`,
        actual: all.length === 0 ? "every sendto succeeded" : `failed: ${all.join(", ")}`,
      };
    }
    case "counter": {
      const d = (after[e.counter] ?? 0) - (before[e.counter] ?? 0);
      const known = e.counter in after;
      return {
        pass: known && d >= e.min && d <= e.max,
        expected: e.text || `${e.counter} grows by ${range(e.min, e.max)}`,
        actual: known ? `grew by ${d}` : "no such counter here",
      };
    }
  }
}

function range(min: number, max: number): string {
  if (min === max) return String(min);
  if (max >= Number.MAX_SAFE_INTEGER || max >= 1e9) return `at least ${min}`;
  if (min === 0) return `at most ${max}`;
  return `${min} to ${max}`;
}
