import { writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import {
  checkScenario,
  listScenarios,
  runScenario,
  type ScenarioRun,
  scenarioFiles,
  scenarioLibrary,
  scenarioPassed,
  type VariantOutcome,
} from "../api/scenarios.js";
import { scenarioReportHtml } from "../check/report-html.js";
import { packageVersion } from "../package-files.js";
import { ScenarioError } from "../scenario/errors.js";
import type { Scenario } from "../scenario/format.js";
import { CliError } from "./errors.js";
import type { Io } from "./io.js";

interface RunFlags {
  all?: boolean;
  report?: string;
  variant: string;
  json?: boolean;
  out: string;
}

export function registerScenario(program: Command, io: Io): void {
  const sc = program
    .command("scenario")
    .summary("run scripted reproductions of gateway bugs (the shipped library, or your files)");
  sc.command("run")
    .summary("run scenarios: pass/fail per expectation, pcaps of both sides")
    .argument(
      "<scenarios...>",
      "names from the shipped library (toasim scenario list), files, or folders of them",
    )
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
    .option(
      "--report <file>",
      "also write an HTML report (expectations, ladder diagrams of the pcaps)",
    )
    .description(
      "Each scenario sets up an instance (profile, services, faults, the decoder this machine has: a loaded TOA/UOA module, else the eBPF decoder), starts a reader server, plays its steps, and checks what the server saw and the counters. Its bug variant is the same run with the gateway's fault switched on: it passes when the documented symptom appears and exactly the documented healthy expectations fail. With a TOA/UOA module loaded, --variant both skips (and says so) a bug variant that needs no decoder. Exit code 0 only when every variant run passed. The format is described in docs/scenarios.md.",
    )
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  toasim scenario run handshake-ack-lost\n" +
        "  toasim scenario run --all\n" +
        "  toasim scenario run handshake-ack-lost --variant bug --json\n" +
        "  toasim scenario run my-scenarios/ --out /tmp/pcaps",
    )
    .action(async (names: string[], f: RunFlags) => {
      if (f.all === true && names.length > 0)
        throw new CliError("BAD_COMBINATION", "--all", "give scenarios or --all, not both");
      if (f.all !== true && names.length === 0)
        throw new CliError("BAD_FLAG", "<scenarios>", "name the scenarios to run, or --all");
      const which = f.all === true ? [scenarioLibrary()] : names;
      // A signal ends the run through process.exit, whose hooks remove the
      // instance (namespaces with their processes, the decoder's cgroup).
      const bye = () => process.exit(130);
      const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
      for (const sig of signals) process.on(sig, bye);
      try {
        process.exitCode = await runAll(which, f, io);
      } finally {
        for (const sig of signals) process.off(sig, bye);
      }
    });
  sc.command("check")
    .summary("read scenarios and report what is wrong with them, without running")
    .argument("<scenarios...>", "names, files, or folders of them")
    .addHelpText(
      "after",
      "\nExamples:\n  toasim scenario check my-scenario.json\n  toasim scenario check my-scenarios/",
    )
    .action((names: string[]) => {
      for (const file of files(names)) {
        const s = checked(file);
        io.out(
          `${file}: ok (${s.name}: ${s.steps.length} steps, ${s.healthy.expect.length} expectations${s.bug ? ", a bug variant" : ""})\n`,
        );
      }
    });
  sc.command("list")
    .summary("name and symptom of each scenario (default: the shipped library)")
    .argument("[dirs...]", "folders of scenario files")
    .addHelpText(
      "after",
      "\nExamples:\n  toasim scenario list\n  toasim scenario list my-scenarios/",
    )
    .action((dirs: string[]) => {
      const list = dirs.length > 0 ? listScenarios(files(dirs)) : listScenarios();
      for (const s of list) io.out(`${s.name}\n  ${s.symptom}\n`);
    });
}

/** Names, files and folders, as the files they stand for; not found is a usage error. */
function files(args: readonly string[]): string[] {
  try {
    return scenarioFiles(args);
  } catch (e) {
    if (e instanceof Error && (e as { code?: unknown }).code === "IO")
      throw new CliError("BAD_INPUT", "<scenarios>", e.message);
    throw e;
  }
}

/** A scenario that cannot be used is bad input: one line, exit code 2. */
function checked(file: string): Scenario {
  try {
    return checkScenario(file);
  } catch (e) {
    if (e instanceof ScenarioError)
      throw new CliError(e.code === "IO" ? "IO" : "BAD_FLAG", null, e.message);
    throw e;
  }
}

function outcomeLines(s: Scenario, o: VariantOutcome): string[] {
  if ("skipped" in o) return [`  ${o.variant}: SKIP: ${o.skipped}`];
  if ("error" in o) return [`  ${o.variant}: FAIL: could not run: ${o.error}`];
  const lines = [`  ${o.variant} (decoder ${o.decoder}):`];
  for (const x of o.outcomes)
    lines.push(`    ${x.pass ? "PASS" : "FAIL"} ${x.expected}: ${x.actual}`);
  if (o.variant === "bug" && s.bug) {
    const want = s.bug.breaks.join(", ") || "none";
    const got = o.broken.join(", ") || "none";
    lines.push(
      `    ${want === got ? "PASS" : "FAIL"} healthy expectations that fail: ${got} (documented: ${want})`,
    );
  }
  lines.push(`    pcaps: ${o.pcaps.join(" ")}`);
  return lines;
}

async function runAll(names: string[], f: RunFlags, io: Io): Promise<number> {
  if (!["healthy", "bug", "both"].includes(f.variant))
    throw new CliError("BAD_FLAG", "--variant", `"${f.variant}" is not one of healthy, bug, both`);
  const variant = f.variant as "healthy" | "bug" | "both";
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  // Every file is read and checked before anything runs.
  const list = files(names).map((file) => ({ file, s: checked(file) }));
  const say = (line: string) => (f.json ? io.err(`${line}\n`) : io.out(`${line}\n`));
  const ran: ScenarioRun[] = [];
  for (const { file, s } of list) {
    say(`${s.name} (${file})`);
    const run = await runScenario(file, {
      variant,
      outDir: f.out,
      onProgress: (l) => io.err(`${l}\n`),
      onOutcome: (sc, o) => {
        for (const l of outcomeLines(sc, o)) say(l);
      },
    });
    ran.push(run);
  }
  if (f.report !== undefined) {
    try {
      writeFileSync(
        f.report,
        scenarioReportHtml(ran, {
          reportDir: dirname(resolve(f.report)),
          toasimVersion: packageVersion(),
          startedAt,
          durationMs: Date.now() - t0,
        }),
      );
    } catch (e) {
      throw new CliError("IO", "--report", `cannot write ${f.report}: ${(e as Error).message}`);
    }
    io.err(`toasim scenario: report in ${f.report}\n`);
  }
  const runs = ran.flatMap((r) => r.results.filter((x) => !("skipped" in x)));
  const skipped = ran.reduce((n, r) => n + r.results.filter((x) => "skipped" in x).length, 0);
  const ok = ran.every(scenarioPassed);
  const passed = runs.filter((x) => "pass" in x && x.pass).length;
  if (f.json) io.out(`${JSON.stringify({ ok, scenarios: ran })}\n`);
  else
    io.out(
      `${ok ? "PASS" : "FAIL"}: ${passed}/${runs.length} scenario runs passed${skipped ? ` (${skipped} skipped)` : ""}\n`,
    );
  return ok ? 0 : 1;
}
