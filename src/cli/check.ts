import { writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type Command, Option } from "commander";
import { type CheckReport, check, checkGuest } from "../api/check.js";
import { CASES } from "../check/cases.js";
import { reportHtml } from "../check/report-html.js";
import { reportText } from "../check/report-text.js";
import { READERS } from "../check/result.js";
import { packageRoot } from "../package-files.js";
import { SERIES_NAMES } from "../vm/kernels.js";
import { asCliError, CliError } from "./errors.js";
import type { Io } from "./io.js";

interface CheckFlags {
  kernel?: string;
  build?: string;
  module?: string;
  profile: string;
  case?: string;
  family?: string;
  reader?: string;
  decoder?: string;
  out: string;
  keepPcaps: string;
  rsNetns?: string;
  json?: boolean;
  report?: string;
  guest?: string;
  guestOut?: string;
}

const split = (v: string | undefined): string[] | undefined =>
  v === undefined
    ? undefined
    : v
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");

export function registerCheck(program: Command, io: Io): void {
  program
    .command("check")
    .summary("a conformance suite for a TOA/UOA decoder: cases x readers x kernels, and a report")
    .description(
      "Runs a battery of cases through the real gateway to a real server (the reader server, which asks the decoder with every ABI) and judges each reader: pass, fail with a one-line diagnosis, unsupported (the decoder does not offer that reader), or error (the harness could not run it). Without --kernel it checks this host's decoder: the eBPF decoder toasim loads, or a TOA/UOA module loaded here. With --kernel it builds (--build) or takes (--module) a module and checks it on each kernel under QEMU, with the kernel's health: its log (oops, WARN, BUG), the slab counts after the module is unloaded, the unload itself; a module that does not build is a result too, with the compiler's first error. Exit code 0 only when nothing failed.\n\n" +
        `Cases: ${CASES.map((c) => c.id).join(", ")} (docs/check.md says what each sends and what a correct decoder answers).`,
    )
    .option("--kernel <list>", `kernels to check a module on: ${SERIES_NAMES.join(", ")}`)
    .option(
      "--build <spec>",
      "the module's source and insmod parameters: 'DIR [NAME=VALUE ...]' (toasim: toasim's own)",
    )
    .option("--module <spec>", "a built module and its parameters: 'FILE.ko [NAME=VALUE ...]'")
    .option("--profile <list>", "gateway profiles whose carriers are checked", "dpvs")
    .option("--case <list>", "only these cases")
    .option("--family <list>", "only these families: v4, v6, nat64")
    .option("--reader <list>", `only these readers: ${READERS.join(", ")}`)
    .option("--decoder <mode>", "this host only: auto (the default), ebpf, none")
    .option("--out <dir>", "where the pcaps and results go", "out/check")
    .option("--keep-pcaps <which>", "failed (the default), all, none", "failed")
    .option(
      "--rs-netns <where>",
      "where the server runs in each guest: toasim (the default), a namespace of toasim's; root, the guest's root namespace, for modules that hook only there; toasim,root: the battery in each",
    )
    .option("--json", "one JSON object: {ok, decoder, kernels, cases: [...]}")
    .option("--report <file>", "also write the HTML report to FILE")
    .addOption(hidden("--guest <module>"))
    .addOption(hidden("--guest-out <file>"))
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  toasim check\n" +
        "  toasim check --kernel 5.10,6.1,6.12,sid --build 'vendor/toa' --profile dpvs\n" +
        "  toasim check --kernel 6.1 --module 'toa.ko' --profile tencent,dpvs --json\n" +
        "  toasim check --kernel 6.12 --module 'uoa.ko' --profile dpvs --rs-netns toasim,root\n" +
        "  toasim check --case tcp.syn-only,tcp.handshake-ack-lost --report check.html",
    )
    .action(async (f: CheckFlags) => {
      const options = {
        ...(f.kernel !== undefined ? { kernels: split(f.kernel) ?? [] } : {}),
        ...(f.build !== undefined ? { build: f.build } : {}),
        ...(f.module !== undefined ? { module: f.module } : {}),
        profiles: split(f.profile) ?? [],
        ...(f.case !== undefined ? { cases: split(f.case) ?? [] } : {}),
        ...(f.family !== undefined ? { families: split(f.family) ?? [] } : {}),
        ...(f.reader !== undefined ? { readers: split(f.reader) ?? [] } : {}),
        ...(f.decoder !== undefined ? { decoder: f.decoder as "auto" } : {}),
        outDir: f.out,
        keepPcaps: f.keepPcaps as "failed",
        ...(f.rsNetns !== undefined ? { rsNetns: (split(f.rsNetns) ?? []) as "root"[] } : {}),
        onProgress: (l: string) => io.err(`${l}\n`),
      };
      if (!["failed", "all", "none"].includes(f.keepPcaps))
        throw new CliError(
          "BAD_FLAG",
          "--keep-pcaps",
          `"${f.keepPcaps}" is not one of failed, all, none`,
        );
      if (f.decoder !== undefined && !["auto", "ebpf", "none"].includes(f.decoder))
        throw new CliError(
          "BAD_FLAG",
          "--decoder",
          `"${f.decoder}" is not one of auto, ebpf, none`,
        );
      try {
        if (f.guest !== undefined) {
          await checkGuest(f.guest, f.guestOut ?? "guest.json", options);
          return;
        }
        const r = await check(options);
        if (f.report !== undefined) {
          writeReport(f.report, r, f.out);
          io.err(`toasim check: report in ${f.report}\n`);
        }
        io.out(f.json ? `${JSON.stringify(r)}\n` : reportText(r));
        process.exitCode = r.ok ? 0 : 1;
      } catch (e) {
        throw asCliError(e);
      }
    });
}

/** Flags of the guest's run, not for users. */
function hidden(flags: string): Option {
  return new Option(flags).hideHelp();
}

/**
 * The HTML report, with the pcaps linked relative to where it is written
 * and the documentation linked in the installed package.
 */
function writeReport(file: string, r: CheckReport, outDir: string): void {
  const dir = dirname(resolve(file));
  const rel = (p: string) => relative(dir, join(resolve(outDir), p));
  const cases = r.cases.map((c) =>
    c.pcaps === null
      ? c
      : { ...c, pcaps: { client: rel(c.pcaps.client), server: rel(c.pcaps.server) } },
  );
  try {
    writeFileSync(
      file,
      reportHtml(
        { ...r, cases },
        { pcapDir: dir, docBase: pathToFileURL(`${packageRoot()}/`).href },
      ),
    );
  } catch (e) {
    throw new CliError("IO", "--report", `cannot write ${file}: ${(e as Error).message}`);
  }
}
