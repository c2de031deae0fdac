import type { Command } from "commander";
import { decoderOptions } from "../api/options.js";
import { attach } from "../api/up.js";
import { ebpfUnavailable } from "../decoder/availability.js";
import type { DecoderStats } from "../decoder/decoder.js";
import { DecoderError } from "../decoder/errors.js";
import { statsRows } from "../decoder/maps.js";
import { listPinned, loadPinned, pinnedStats, unloadPinned } from "../decoder/pinned.js";
import { asCliError, CliError } from "./errors.js";
import type { Io } from "./io.js";
import { intFlag } from "./parse-flags.js";

/**
 * `toasim decoder`: the eBPF decoder outside an instance (load, unload) and
 * its counters (stats), in the rows and names of the kernel module's
 * /proc/net/toa_stats and uoa_stats.
 */

function decoderFailure(e: unknown): never {
  if (e instanceof DecoderError) throw new CliError("RUNTIME", null, e.message);
  throw e;
}

function printStats(io: Io, source: string, s: DecoderStats, json: boolean): void {
  const rows = statsRows(s);
  if (json) {
    io.out(`${JSON.stringify({ source, ...rows })}\n`);
    return;
  }
  io.out(`eBPF decoder (${source})\n`);
  for (const [file, r] of [
    ["toa_stats", rows.toa],
    ["uoa_stats", rows.uoa],
  ] as const) {
    io.out(`  ${file}\n`);
    for (const [k, v] of Object.entries(r)) io.out(`    ${k.padEnd(24)} ${v}\n`);
  }
}

interface LoadFlags {
  cgroup: string;
  dev?: string;
  netns?: string;
  name: string;
  trusted?: string;
  uoaTimeout?: string;
  l3Offset?: string;
}

export function registerDecoder(program: Command, io: Io): void {
  const cmd = program
    .command("decoder")
    .summary("the module-free eBPF decoder: load, unload, stats")
    .description(
      "The eBPF decoder answers what the kernel module answers (getpeername, getsockopt 2049, 4096, 1345, 2048) for the servers in one cgroup, and strips UOA opp headers on one device. toasim up loads one for its own server namespace (--decoder); these commands are for servers run outside toasim. Needs root, a kernel with BTF, cgroup v2, clang, bpftool and libbpf (toasim doctor says what is missing).",
    );

  cmd
    .command("load")
    .summary("attach the decoder to a cgroup (and a device), until unload")
    .requiredOption("--cgroup <dir>", "the cgroup v2 folder the servers run in")
    .option("--dev <ifname>", "the server's network device, for UOA (tc ingress)")
    .option("--netns <name>", "the named network namespace the device is in")
    .option("--name <name>", "several decoders can be loaded under different names", "default")
    .option("--trusted <list>", 'gateway source ranges (CIDR list, or "any")')
    .option("--uoa-timeout <s>", "seconds a UDP flow's client is kept")
    .option(
      "--l3-offset <n>",
      "bytes before the IP header on --dev: 0 (TUN, the default) or 14 (Ethernet)",
    )
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  mkdir /sys/fs/cgroup/unified/web && echo $PID > /sys/fs/cgroup/unified/web/cgroup.procs\n" +
        "  toasim decoder load --cgroup /sys/fs/cgroup/unified/web --dev eth0 --l3-offset 14 \\\n" +
        "      --trusted 192.0.2.0/24\n" +
        "  toasim decoder stats --name default\n" +
        "  toasim decoder unload",
    )
    .action(async (f: LoadFlags) => {
      const why = ebpfUnavailable();
      if (why !== null) throw new CliError("RUNTIME", null, why);
      let base: ReturnType<typeof decoderOptions>["settings"];
      try {
        base = decoderOptions({
          mode: "ebpf",
          ...(f.trusted === undefined ? {} : { trusted: f.trusted }),
          ...(f.uoaTimeout === undefined ? {} : { uoaTimeoutSec: f.uoaTimeout }),
        }).settings;
      } catch (e) {
        const c = asCliError(e);
        if (c instanceof CliError && c.flag !== null)
          throw new CliError(
            "BAD_FLAG",
            c.flag.replace("--decoder-", "--"),
            c.message.replace(/^--[\w-]+: /, ""),
          );
        throw c;
      }
      const l3Offset = f.l3Offset === undefined ? 0 : intFlag("--l3-offset", f.l3Offset, 0, 64);
      if (f.netns !== undefined && f.dev === undefined)
        throw new CliError("BAD_COMBINATION", "--netns", "needs --dev");
      try {
        const p = await loadPinned(
          f.name,
          { ...base, l3Offset },
          f.cgroup,
          f.dev === undefined ? null : { ifname: f.dev, netns: f.netns ?? null },
        );
        io.out(
          `toasim decoder: ${p.name} loaded for cgroup ${p.cgroup}${p.tc ? `, UOA on ${p.tc.ifname}${p.tc.netns ? ` (netns ${p.tc.netns})` : ""}` : ""}\n`,
        );
      } catch (e) {
        decoderFailure(e);
      }
    });

  cmd
    .command("unload")
    .summary("detach and remove a decoder that load attached")
    .option("--name <name>", "which one", "default")
    .addHelpText("after", "\nExample:\n  toasim decoder unload --name default")
    .action((f: { name: string }) => {
      try {
        unloadPinned(f.name);
        io.out(`toasim decoder: ${f.name} unloaded\n`);
      } catch (e) {
        decoderFailure(e);
      }
    });

  cmd
    .command("stats")
    .summary("the decoder's counters, as the module's toa_stats and uoa_stats")
    .option("--id <id>", "of a running instance's decoder")
    .option("--name <name>", "of a decoder that load attached")
    .option("--json", "one JSON object {source, toa, uoa}")
    .addHelpText(
      "after",
      "\nExamples:\n  toasim decoder stats\n  toasim decoder stats --id 3f2a1c --json",
    )
    .action(async (f: { id?: string; name?: string; json?: boolean }) => {
      if (f.id !== undefined && f.name !== undefined)
        throw new CliError("BAD_COMBINATION", "--name", "give --id or --name, not both");
      const pinned = listPinned();
      if (f.name !== undefined || (f.id === undefined && pinned.length > 0)) {
        const name = f.name ?? (pinned.length === 1 ? pinned[0]!.name : "default");
        try {
          printStats(io, `pinned ${name}`, pinnedStats(name), f.json === true);
        } catch (e) {
          decoderFailure(e);
        }
        return;
      }
      let inst: ReturnType<typeof attach>;
      try {
        inst = attach(f.id === undefined ? {} : { id: f.id });
      } catch (e) {
        throw asCliError(e);
      }
      const stats: DecoderStats | null = await inst.decoderStats();
      if (stats === null)
        throw new CliError("RUNTIME", null, `instance ${inst.id} runs without the eBPF decoder`);
      printStats(io, `instance ${inst.id}`, stats, f.json === true);
    });
}
