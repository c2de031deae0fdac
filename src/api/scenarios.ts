import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { moduleDecoder } from "../decoder/availability.js";
import { DEFAULT_SETTINGS } from "../decoder/maps.js";
import { shippedPath } from "../package-files.js";
import { ScenarioError } from "../scenario/errors.js";
import { readScenario, type Scenario, type Variant } from "../scenario/format.js";
import { runVariant, type Setup, type VariantResult } from "../scenario/run.js";
import { chooseDecoder } from "./decoder-choice.js";
import { ToasimError } from "./errors.js";
import { resolveUpInput, SETTING_NAMES } from "./options.js";

export type { Scenario, VariantResult };

/** One variant's outcome: a result, a run that could not be carried out, or a skip. */
export type VariantOutcome =
  | VariantResult
  | { readonly variant: "healthy" | "bug"; readonly error: string; readonly pass: false }
  | { readonly variant: "healthy" | "bug"; readonly skipped: string };

export interface ScenarioRun {
  readonly name: string;
  readonly file: string;
  readonly symptom: string;
  readonly results: readonly VariantOutcome[];
}

export interface ScenarioRunOptions {
  /** healthy, bug, or both (the default: bug only when the scenario has one). */
  readonly variant?: "healthy" | "bug" | "both";
  /** Where the pcaps go: DIR/NAME[-bug]/{client,server}.pcap (default out/scenarios). */
  readonly outDir?: string;
  /** Progress lines (steps as they run). */
  readonly onProgress?: (line: string) => void;
  /** Each variant's outcome as soon as it is known. */
  readonly onOutcome?: (scenario: Scenario, outcome: VariantOutcome) => void;
}

export interface ScenarioInfo {
  readonly name: string;
  readonly symptom: string;
  readonly file: string;
  readonly hasBug: boolean;
}

/** The library shipped with toasim. */
export function scenarioLibrary(): string {
  return shippedPath("scenarios");
}

function libraryNames(): string[] {
  try {
    return readdirSync(scenarioLibrary())
      .filter((n) => n.endsWith(".json") && !n.endsWith(".schema.json"))
      .map((n) => n.slice(0, -".json".length))
      .sort();
  } catch {
    return [];
  }
}

/**
 * Scenario files from what a user names: a file, a folder (its *.json),
 * or the name of a scenario of the shipped library (`handshake-ack-lost`).
 * A path that exists wins over a library name.
 */
export function scenarioFiles(args: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    let st: ReturnType<typeof statSync> | null = null;
    try {
      st = statSync(a);
    } catch {
      st = null;
    }
    if (st === null) {
      const lib = join(scenarioLibrary(), `${a}.json`);
      if (/^[a-z0-9][a-z0-9-]*$/.test(a) && existsSync(lib)) {
        out.push(lib);
        continue;
      }
      throw new ScenarioError(
        "IO",
        `${a}: no such file or folder, nor a scenario of the library (${libraryNames().join(", ")})`,
      );
    }
    if (st.isDirectory()) {
      for (const n of readdirSync(a).sort()) {
        if (n.endsWith(".json") && !n.endsWith(".schema.json")) out.push(join(a, n));
      }
    } else out.push(a);
  }
  if (out.length === 0) throw new ScenarioError("IO", "no scenario files found");
  return out;
}

/** Name and symptom of each scenario in `args` (default: the shipped library). */
export function listScenarios(args: readonly string[] = [scenarioLibrary()]): ScenarioInfo[] {
  return scenarioFiles(args).map((file) => {
    const s = readScenario(file);
    return { name: s.name, symptom: s.symptom, file, hasBug: s.bug !== null };
  });
}

/**
 * Reads a scenario and checks everything that can be checked without
 * running it (its gateway settings and faults included); throws a
 * ScenarioError naming the bad value.
 */
export function checkScenario(nameOrFile: string): Scenario {
  const [file] = scenarioFiles([nameOrFile]);
  const s = readScenario(file!);
  for (const v of s.bug ? [s.healthy, s.bug] : [s.healthy]) setupOf(v, s, true);
  return s;
}

/** A variant as an instance's configuration; `dry`: nothing on the machine looked at. */
function setupOf(v: Variant, s: Scenario, dry: boolean): Setup {
  const where = `${s.file}${v === s.healthy ? "" : " (bug)"}`;
  const { mtu, ...settings } = v.settings;
  let r: ReturnType<typeof resolveUpInput>;
  try {
    for (const k of Object.keys(settings)) {
      if (!(SETTING_NAMES as readonly string[]).includes(k))
        throw new ScenarioError(
          "BAD_SCENARIO",
          `${where}: settings.${k}: unknown (known: ${[...SETTING_NAMES, "mtu"].join(", ")})`,
        );
    }
    r = resolveUpInput({
      profile: v.profile,
      settings,
      ...(s.services.length > 0 ? { services: [...s.services] } : {}),
      ...(mtu !== undefined ? { mtu } : {}),
      faults: v.faults ?? null,
      decoder: "none",
    });
  } catch (e) {
    if (e instanceof ToasimError) throw new ScenarioError("BAD_SCENARIO", `${where}: ${e.message}`);
    throw e;
  }
  const base = { config: r.config, extraRs: r.extraRs, faults: r.faults };
  if (dry) return { ...base, decoder: null, decoderName: "none" };
  const mod = moduleDecoder();
  if (v.decoder === "none") {
    if (mod !== null)
      throw new ScenarioError("RUN", `${where} wants no decoder, but ${mod} is loaded and decodes`);
    return { ...base, decoder: null, decoderName: "none" };
  }
  if (mod !== null) return { ...base, decoder: null, decoderName: mod };
  const d = chooseDecoder({ mode: "ebpf", settings: DEFAULT_SETTINGS });
  return { ...base, decoder: d.settings, decoderName: d.name };
}

/**
 * Runs one scenario's variants: each sets up an instance, a reader server
 * and captures of both sides, plays the steps and checks what the server
 * saw and the counters. A failed expectation is a result (pass: false); a
 * run that could not be carried out is an outcome with `error`.
 */
export async function runScenario(
  nameOrFile: string,
  opts: ScenarioRunOptions = {},
): Promise<ScenarioRun> {
  const [file] = scenarioFiles([nameOrFile]);
  const s = readScenario(file!);
  const which = opts.variant ?? "both";
  const outDir = resolve(opts.outDir ?? "out/scenarios");
  const variants: ("healthy" | "bug")[] =
    which === "both" ? (s.bug ? ["healthy", "bug"] : ["healthy"]) : [which];
  const results: VariantOutcome[] = [];
  const report = (o: VariantOutcome) => {
    results.push(o);
    opts.onOutcome?.(s, o);
  };
  for (const variant of variants) {
    if (variant === "bug" && !s.bug) {
      report({ variant, error: "the scenario has no bug variant", pass: false });
      continue;
    }
    // A loaded module decodes for every namespace: a bug that needs no
    // decoder cannot be shown here. Asked for by name it is an error.
    const mod = moduleDecoder();
    if (which === "both" && variant === "bug" && s.bug?.decoder === "none" && mod !== null) {
      report({ variant, skipped: `it wants no decoder, but ${mod} is loaded and decodes` });
      continue;
    }
    try {
      const setup = setupOf(variant === "bug" ? s.bug! : s.healthy, s, false);
      report(
        await runVariant(s, variant, setup, {
          outDir,
          progress: opts.onProgress ?? (() => {}),
        }),
      );
    } catch (e) {
      // Whatever stopped the run (no root, no decoder, a step that failed) is its outcome.
      const known = (e as { code?: unknown }).code;
      if (!(e instanceof Error) || typeof known !== "string") throw e;
      report({ variant, error: e.message, pass: false });
    }
  }
  return { name: s.name, file: s.file, symptom: s.symptom, results };
}

/** Did every run pass (skips aside)? */
export function scenarioPassed(run: ScenarioRun): boolean {
  return run.results.every((r) => "skipped" in r || r.pass);
}
