import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { DecoderError } from "../decoder/errors.js";
import { ScenarioError } from "../scenario/errors.js";
import { readScenario, type Scenario, type Variant } from "../scenario/format.js";
import { runVariant, type Setup, type VariantResult } from "../scenario/run.js";
import { TunError } from "../tun/errors.js";
import { moduleDecoder, resolveDecoder } from "./decoder-flags.js";
import { CliError } from "./errors.js";
import { faultsFrom } from "./fault-flags.js";
import type { Io } from "./main.js";
import { choiceFlag } from "./parse-flags.js";
import { buildConfig } from "./up.js";

interface RunFlags {
  variant: string;
  json?: boolean;
  out: string;
}

export function registerScenario(program: Command, io: Io): void {
  const sc = program
    .command("scenario")
    .summary("run scripted reproductions of gateway bugs (scenarios/*.json)");
  sc.command("run")
    .summary("run scenario files: pass/fail per expectation, pcaps of both sides")
    .argument("<files...>", "scenario files, or folders of them")
    .option(
      "--variant <v>",
      "healthy (the gateway as it should be), bug (its fault on), or both",
      "both",
    )
    .option(
      "--out <dir>",
      "where the pcaps go: DIR/NAME[-bug]/{client,server}.pcap",
      "out/scenarios",
    )
    .option("--json", "one JSON object: {ok, scenarios: [{name, file, results: [...]}]}")
    .description(
      "Each scenario sets up an instance (profile, services, faults, the decoder this machine\n" +
        "has: a loaded TOA/UOA module, else the eBPF decoder), starts a reader server, plays\n" +
        "its steps, and checks what the server saw and the counters. Its bug variant is the\n" +
        "same run with the gateway's fault switched on: it passes when the documented symptom\n" +
        "appears and exactly the documented healthy expectations fail. With a TOA/UOA module\n" +
        "loaded, --variant both skips (and says so) a bug variant that needs no decoder. Exit\n" +
        "code 0 only when every variant run passed. See scenarios/README.md for the format.",
    )
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  toasim scenario run scenarios/\n" +
        "  toasim scenario run scenarios/handshake-ack-lost.json --variant bug\n" +
        "  toasim scenario run scenarios/ --json --out /tmp/pcaps",
    )
    .action(async (files: string[], f: RunFlags) => {
      // A signal ends the run through process.exit, whose hooks remove the
      // instance (namespaces with their processes, the decoder's cgroup).
      const bye = () => process.exit(130);
      const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
      for (const sig of signals) process.on(sig, bye);
      try {
        process.exitCode = await runAll(files, f, io);
      } finally {
        for (const sig of signals) process.off(sig, bye);
      }
    });
  sc.command("check")
    .summary("read scenario files and report what is wrong with them, without running")
    .argument("<files...>", "scenario files, or folders of them")
    .addHelpText("after", "\nExample:\n  toasim scenario check scenarios/")
    .action((files: string[]) => {
      for (const file of expand(files)) {
        const s = load(file);
        for (const v of s.bug ? [s.healthy, s.bug] : [s.healthy]) setupOf(v, s, true);
        io.out(
          `${file}: ok (${s.name}: ${s.steps.length} steps, ${s.healthy.expect.length} expectations${s.bug ? ", a bug variant" : ""})\n`,
        );
      }
    });
  sc.command("list")
    .summary("name and symptom of each scenario")
    .argument("[dirs...]", "folders of scenario files", ["scenarios"])
    .addHelpText("after", "\nExample:\n  toasim scenario list")
    .action((dirs: string[]) => {
      for (const file of expand(dirs)) {
        const s = load(file);
        io.out(`${s.name}\n  ${s.symptom}\n`);
      }
    });
}

/** Files as given, folders as their *.json files (schema files aside). */
function expand(args: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(a);
    } catch {
      throw new CliError("IO", "<files>", `${a}: no such file or folder`);
    }
    if (st.isDirectory()) {
      for (const n of readdirSync(a).sort()) {
        if (n.endsWith(".json") && !n.endsWith(".schema.json")) out.push(join(a, n));
      }
    } else out.push(a);
  }
  if (out.length === 0) throw new CliError("IO", "<files>", "no scenario files found");
  return out;
}

function load(file: string): Scenario {
  try {
    return readScenario(file);
  } catch (e) {
    if (e instanceof ScenarioError)
      throw new CliError(e.code === "IO" ? "IO" : "BAD_FLAG", null, e.message);
    throw e;
  }
}

/** A variant as an instance's configuration; `dry`: no decoder check (scenario check). */
function setupOf(v: Variant, s: Scenario, dry: boolean): Setup {
  const where = `${s.file}${v === s.healthy ? "" : " (bug)"}`;
  for (const k of Object.keys(v.settings)) {
    if (!SETTINGS.includes(k)) {
      throw new CliError(
        "BAD_FLAG",
        null,
        `${where}: settings.${k}: unknown (known: ${SETTINGS.join(", ")})`,
      );
    }
  }
  let built: ReturnType<typeof buildConfig>;
  try {
    built = buildConfig({
      ...v.settings,
      profile: v.profile,
      ...(s.services.length > 0 ? { service: [...s.services] } : {}),
      scheduler: "rr",
      mtu: v.settings["mtu"] ?? "1500",
      maxConnections: "1000000",
      decoder: "none",
    });
  } catch (e) {
    if (e instanceof CliError) throw new CliError("BAD_FLAG", null, `${where}: ${e.message}`);
    throw e;
  }
  let faults: Setup["faults"];
  try {
    faults = faultsFrom({}, v.faults);
  } catch (e) {
    if (e instanceof CliError) throw new CliError("BAD_FLAG", null, `${where}: ${e.message}`);
    throw e;
  }
  const base = { config: built.config, extraRs: built.extraRs, faults };
  const mod = moduleDecoder();
  if (dry) return { ...base, decoder: null, decoderName: "none" };
  if (v.decoder === "none") {
    if (mod !== null) {
      throw new ScenarioError("RUN", `${where} wants no decoder, but ${mod} is loaded and decodes`);
    }
    return { ...base, decoder: null, decoderName: "none" };
  }
  if (mod !== null) return { ...base, decoder: null, decoderName: mod };
  return { ...base, decoder: resolveDecoder({ decoder: "ebpf" }).settings, decoderName: "ebpf" };
}

/** Scenario settings: the gateway flags of `toasim up`, by their option names. */
const SETTINGS = [
  "uoa",
  "maxTrail",
  "toaKind",
  "toaKindV6",
  "toaLayout",
  "afOrder",
  "carry",
  "mssClamp",
  "prune",
  "stripClientToa",
  "mtu",
];

interface Ran {
  name: string;
  file: string;
  symptom: string;
  results: (
    | VariantResult
    | { variant: string; error: string; pass: false }
    | { variant: string; skipped: string }
  )[];
}

async function runAll(files: string[], f: RunFlags, io: Io): Promise<number> {
  const which = choiceFlag("--variant", f.variant, ["healthy", "bug", "both"] as const);
  const scenarios = expand(files).map(load);
  const out = resolve(f.out);
  const ran: Ran[] = [];
  const say = (line: string) => {
    if (!f.json) io.out(`${line}\n`);
    else io.err(`${line}\n`);
  };
  for (const s of scenarios) {
    say(`${s.name} (${s.file})`);
    const variants: ("healthy" | "bug")[] =
      which === "both" ? (s.bug ? ["healthy", "bug"] : ["healthy"]) : [which];
    const r: Ran = { name: s.name, file: s.file, symptom: s.symptom, results: [] };
    for (const variant of variants) {
      if (variant === "bug" && !s.bug) {
        r.results.push({ variant, error: "the scenario has no bug variant", pass: false });
        say("  bug: FAIL: the scenario has no bug variant");
        continue;
      }
      // A loaded module decodes for every namespace: a bug that needs no
      // decoder cannot be shown here. Asked for by name it is an error.
      const mod = moduleDecoder();
      if (which === "both" && variant === "bug" && s.bug?.decoder === "none" && mod !== null) {
        const why = `it wants no decoder, but ${mod} is loaded and decodes`;
        r.results.push({ variant, skipped: why });
        say(`  bug: SKIP: ${why}`);
        continue;
      }
      try {
        const setup = setupOf(variant === "bug" ? s.bug! : s.healthy, s, false);
        const res = await runVariant(s, variant, setup, {
          outDir: out,
          progress: (l) => io.err(`${l}\n`),
        });
        r.results.push(res);
        say(`  ${variant} (decoder ${res.decoder}):`);
        for (const o of res.outcomes)
          say(`    ${o.pass ? "PASS" : "FAIL"} ${o.expected}: ${o.actual}`);
        if (variant === "bug" && s.bug) {
          const want = s.bug.breaks.join(", ") || "none";
          const got = res.broken.join(", ") || "none";
          say(
            `    ${want === got ? "PASS" : "FAIL"} healthy expectations that fail: ${got} (documented: ${want})`,
          );
        }
        say(`    pcaps: ${res.pcaps.join(" ")}`);
      } catch (e) {
        if (
          e instanceof ScenarioError ||
          e instanceof TunError ||
          e instanceof DecoderError ||
          e instanceof CliError
        ) {
          r.results.push({ variant, error: e.message, pass: false });
          say(`  ${variant}: FAIL: could not run: ${e.message}`);
        } else throw e;
      }
    }
    ran.push(r);
  }
  const runs = ran.flatMap((r) => r.results.filter((x) => !("skipped" in x)));
  const skipped = ran.reduce((n, r) => n + r.results.filter((x) => "skipped" in x).length, 0);
  const ok = runs.every((x) => "pass" in x && x.pass);
  const passed = runs.filter((x) => "pass" in x && x.pass).length;
  if (f.json) io.out(`${JSON.stringify({ ok, scenarios: ran })}\n`);
  else
    io.out(
      `${ok ? "PASS" : "FAIL"}: ${passed}/${runs.length} scenario runs passed${skipped ? ` (${skipped} skipped)` : ""}\n`,
    );
  return ok ? 0 : 1;
}
