import type { Command } from "commander";
import type { DecoderStats } from "../decoder/decoder.js";
import { DecoderError } from "../decoder/errors.js";
import { statsRows } from "../decoder/maps.js";
import { listPinned, loadPinned, pinnedStats, unloadPinned } from "../decoder/pinned.js";
import { request } from "./control-client.js";
import { ebpfUnavailable, settingsFrom } from "./decoder-flags.js";
import { CliError } from "./errors.js";
import { findInstance } from "./instances.js";
import type { Io } from "./main.js";
import { intFlag } from "./parse-flags.js";

/**
 * `toasim decoder`: the eBPF decoder outside an instance (load, unload) and
 * its counters (stats), in the rows and names of the kernel module's
 * /proc/net/toa_stats and uoa_stats.
 */

function decoderFailure(e: unknown): never {
  if (e instanceof DecoderError) throw new CliError("RUNTIME", null, e.message, 1);
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
      "The eBPF decoder answers what the kernel module answers (getpeername, getsockopt 2049,\n" +
        "4096, 1345, 2048) for the servers in one cgroup, and strips UOA opp headers on one\n" +
        "device. toasim up loads one for its own server namespace (--decoder); these commands\n" +
        "are for servers run outside toasim. Needs root, a kernel with BTF, cgroup v2, clang,\n" +
        "bpftool and libbpf (npm run setup).",
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
        "      --trusted 10.0.0.0/8\n" +
        "  toasim decoder stats --name default\n" +
        "  toasim decoder unload",
    )
    .action(async (f: LoadFlags) => {
      const why = ebpfUnavailable();
      if (why !== null) throw new CliError("RUNTIME", null, why, 1);
      const base = settingsFrom({
        decoder: "ebpf",
        ...(f.trusted === undefined ? {} : { decoderTrusted: f.trusted }),
        ...(f.uoaTimeout === undefined ? {} : { decoderUoaTimeout: f.uoaTimeout }),
      });
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
      const inst = findInstance(f.id);
      let stats: DecoderStats | null = null;
      await request(String(inst.state["socket"]), { cmd: "decoder" }, (m) => {
        stats = (m["decoder"] as DecoderStats | null) ?? null;
      }).done;
      if (stats === null)
        throw new CliError("RUNTIME", null, `instance ${inst.id} runs without the eBPF decoder`, 1);
      printStats(io, `instance ${inst.id}`, stats, f.json === true);
    });
}
