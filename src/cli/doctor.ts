import type { Command } from "commander";
import {
  type DoctorReport,
  doctor,
  FEATURE_NAMES,
  type FeatureName,
  installPackages,
} from "../api/doctor.js";
import { CliError } from "./errors.js";
import type { Io } from "./io.js";

export function registerDoctor(program: Command, io: Io): void {
  program
    .command("doctor")
    .summary("say what this machine lacks for each feature, and the command that installs it")
    .description(
      "toasim is an npm package, but it drives programs npm cannot install: iproute2 and nftables for the namespaces, clang, bpftool and libbpf for the eBPF decoder, QEMU and a compiler for toasim vm. doctor checks each feature's programs and the kernel facts they need (root, /dev/net/tun, BTF, cgroup v2), prints what is missing, and the one apt-get command (Debian and Ubuntu) that installs the missing packages. Exit code 0 when every feature asked about is ready, 1 otherwise.",
    )
    .option(
      "--need <features>",
      `comma-separated features that must be ready (default all): ${FEATURE_NAMES.join(", ")}`,
    )
    .option("--install", "run the apt-get command (as root), then check again")
    .option("--json", "one JSON object: {ok, features: [...], packages, installCommand}")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  toasim doctor\n" +
        "  toasim doctor --need gateway,ebpf --install\n" +
        "  toasim doctor --json",
    )
    .action(async (f: { need?: string; install?: boolean; json?: boolean }) => {
      const features = needed(f.need);
      let report = doctor(features);
      if (f.install && report.packages.length > 0) {
        if (process.geteuid?.() !== 0)
          throw new CliError(
            "RUNTIME",
            "--install",
            "apt-get needs root: run as root, or with sudo",
          );
        io.err(`toasim doctor: installing ${report.packages.join(" ")}\n`);
        const r = await installPackages(report.packages, (line) => {
          if (!f.json) io.err(`  ${line}\n`);
        });
        if (r.code !== 0)
          throw new CliError(
            "RUNTIME",
            "--install",
            `apt-get failed (${r.code}): ${r.output.trim().split("\n").slice(-3).join("; ")}`,
          );
        report = doctor(features);
      }
      if (f.json) io.out(`${JSON.stringify(report)}\n`);
      else print(io, report);
      process.exitCode = report.ok ? 0 : 1;
    });
}

function needed(text: string | undefined): FeatureName[] {
  if (text === undefined) return FEATURE_NAMES;
  const items = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (items.length === 0) throw new CliError("BAD_FLAG", "--need", "empty list");
  for (const i of items) {
    if (!(FEATURE_NAMES as readonly string[]).includes(i))
      throw new CliError("BAD_FLAG", "--need", `"${i}" is not one of ${FEATURE_NAMES.join(", ")}`);
  }
  return items as FeatureName[];
}

function print(io: Io, r: DoctorReport): void {
  for (const f of r.features) {
    io.out(`${f.ok ? "ok     " : "MISSING"} ${f.name.padEnd(17)} ${f.title}\n`);
    for (const m of f.missing) io.out(`          ${m.program} (Debian package ${m.pkg})\n`);
    for (const p of f.problems) io.out(`          ${p}\n`);
  }
  if (r.installCommand !== null)
    io.out(`\nTo install what is missing, as root:\n  ${r.installCommand}\n`);
  const other = r.features.some((f) => f.problems.length > 0);
  if (other) io.out("\nThe other problems above are the machine's: no package changes them.\n");
  if (r.ok) io.out("\nEverything toasim needs is here.\n");
}
