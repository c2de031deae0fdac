import { constants } from "node:os";
import type { Command } from "commander";
import type { Instance } from "../api/instance.js";
import { attach, down } from "../api/up.js";
import { DROP_REASONS, STAT_NAMES } from "../fullnat-sim/stats.js";
import { asCliError, CliError } from "./errors.js";
import type { Io } from "./io.js";

// Commands that act on a running instance (or on what a dead one left).

/** The running instance a command talks to: --id, or the only one. */
export function attached(id: string | undefined): Instance {
  try {
    return attach(id === undefined ? {} : { id });
  } catch (e) {
    throw asCliError(e);
  }
}

export function registerInstanceCommands(program: Command, io: Io): void {
  program
    .command("exec")
    .summary("run a command in the client or server namespace of a running instance")
    .description(
      "Runs CMD in the client or the server namespace of the running instance and exits with its exit code (128 + the signal's number when a signal ended it). Servers run on the rs side join the cgroup the instance's eBPF decoder serves. Signals toasim gets are passed on to CMD.",
    )
    .argument("<side>", "client or rs")
    .argument("<cmd...>", "the command and its arguments (put -- before them)")
    .option("--id <id>", "instance id (when several are running)")
    .option(
      "--as <addr>",
      "client only: the source address the program's connections use (198.51.100.0/24 or 2001:db8:c::/64)",
    )
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  toasim exec rs -- python3 -m http.server 8080 --bind 192.0.2.10\n" +
        "  toasim exec client --as 198.51.100.42 -- curl -s http://203.0.113.10/\n" +
        "  toasim exec client -- curl -s http://203.0.113.10/\n" +
        "  toasim exec client -- curl -s --interface 198.51.100.42 http://203.0.113.10/   (any 198.51.100.0/24 source)\n" +
        "  toasim exec client -- curl -s 'http://[2001:db8:f::64]/'                       (NAT64)",
    )
    .action(async (side: string, cmd: string[], f: { id?: string; as?: string }) => {
      if (side !== "client" && side !== "rs")
        throw new CliError("BAD_FLAG", "<side>", `"${side}" is not one of client, rs`);
      if (f.as !== undefined && side !== "client")
        throw new CliError("BAD_COMBINATION", "--as", "applies to the client side only");
      const inst = attached(f.id);
      let p: ReturnType<Instance["spawn"]>;
      try {
        p = inst.spawn(side, cmd, {
          stdio: "inherit",
          ...(f.as !== undefined ? { as: f.as } : {}),
        });
      } catch (e) {
        throw asCliError(e);
      }
      // Ctrl-C reaches CMD from the terminal; toasim waits for it to end and cleans up.
      const pass = (sig: NodeJS.Signals) => () => p.kill(sig);
      const handlers = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((s) => [s, pass(s)] as const);
      for (const [s, h] of handlers) process.on(s, h);
      try {
        const status = await p.exited;
        const failed = p.startFailure();
        if (failed !== null && status.code === null)
          throw new CliError("RUNTIME", null, `cannot run ${cmd[0]}: ${failed}`);
        process.exitCode =
          status.code ?? 128 + (status.signal === null ? 9 : signalNumber(status.signal));
      } finally {
        for (const [s, h] of handlers) process.off(s, h);
      }
    });

  program
    .command("stats")
    .summary("print the live counters of a running instance")
    .option("--id <id>", "instance id (when several are running)")
    .option("--json", "one JSON object")
    .addHelpText("after", "\nExamples:\n  toasim stats\n  toasim stats --json")
    .action(async (f: { id?: string; json?: boolean }) => {
      const inst = attached(f.id);
      const stats = await inst.stats();
      if (f.json) {
        io.out(`${JSON.stringify({ id: inst.id, ...stats })}\n`);
        return;
      }
      const v = (k: keyof typeof stats) => String(stats[k] ?? 0);
      io.out(`instance ${inst.id}\n`);
      io.out(
        `  connections   active ${v("connectionsActive")}, created ${v("connectionsCreated")}, expired ${v("connectionsExpired")}\n`,
      );
      io.out(
        `  to server     ${v("packetsToServer")} packets, ${v("bytesToServer")} bytes (from client ${v("packetsFromClient")})\n`,
      );
      io.out(
        `  to client     ${v("packetsToClient")} packets, ${v("bytesToClient")} bytes (from server ${v("packetsFromServer")})\n`,
      );
      io.out(
        `  carriers      inserted ${v("carriersInserted")}, after pruning ${v("carriersPruned")}, failed ${v("carriersFailed")}, UOA probes ${v("uoaProbes")}, client TOAs stripped ${v("clientToaStripped")}\n`,
      );
      io.out(
        `  faults        dropped ${v("faultDropped")}, duplicated ${v("faultDuplicated")}, delayed ${v("faultDelayed")}, reordered ${v("faultReordered")}, corrupted ${v("faultCorrupted")}, truncated ${v("faultTruncated")}, over the link MTU ${v("faultMtuDropped")}\n`,
      );
      io.out("  drops\n");
      for (const [reason, i] of Object.entries(DROP_REASONS)) {
        const name = STAT_NAMES[i];
        io.out(`    ${reason.padEnd(22)} ${name === undefined ? 0 : stats[name]}\n`);
      }
    });

  program
    .command("capture")
    .summary("write a pcap of what crosses one side of a running instance")
    .requiredOption("--out <file>", "pcap file to write")
    .option("--side <side>", "client or server", "server")
    .option("--count <n>", "stop after this many packets (0: until Ctrl-C or --seconds)", "0")
    .option("--seconds <n>", "stop after this many seconds (0: no limit)", "0")
    .option("--id <id>", "instance id (when several are running)")
    .addHelpText(
      "after",
      "\nExamples:\n  toasim capture --side server --count 20 --out server.pcap\n  toasim capture --side client --seconds 10 --out client.pcap",
    )
    .action(
      async (f: { out: string; side: string; count: string; seconds: string; id?: string }) => {
        if (f.side !== "client" && f.side !== "server")
          throw new CliError("BAD_FLAG", "--side", `"${f.side}" is not one of client, server`);
        const count = whole("--count", f.count, 100_000_000);
        const seconds = whole("--seconds", f.seconds, 86_400);
        const inst = attached(f.id);
        const cap = await inst.capture({ side: f.side, path: f.out, count });
        io.err(`capturing the ${f.side} side into ${cap.path}\n`);
        // Ctrl-C, SIGTERM or the time limit close the file; the instance says how many packets.
        const stop = () => {
          void cap.stop();
        };
        const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
        for (const s of signals) process.on(s, stop);
        const timer = seconds > 0 ? setTimeout(stop, seconds * 1000) : undefined;
        try {
          const packets = await cap.done;
          io.out(`${cap.path}: ${packets} packets\n`);
        } finally {
          clearTimeout(timer);
          for (const s of signals) process.off(s, stop);
        }
      },
    );

  program
    .command("down")
    .summary("stop running instances and remove what killed ones left behind")
    .option("--id <id>", "only this instance")
    .addHelpText("after", "\nExamples:\n  toasim down\n  toasim down --id 3f2a1c")
    .action(async (f: { id?: string }) => {
      const r = await down(f.id === undefined ? {} : { id: f.id });
      // Idempotent, as rm -f: asked to stop what is already gone is no failure, but it is said.
      if (f.id !== undefined && r.stopped.length === 0 && !r.removedStates.includes(f.id))
        io.err(`toasim down: no instance ${f.id} is running or left behind\n`);
      io.out(
        `toasim down: ${r.stopped.length} instance(s) stopped, ${r.removedNamespaces.length} namespace(s) and ${r.removedStates.length} state file(s) removed\n`,
      );
    });
}

function whole(flag: string, text: string, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) > max)
    throw new CliError("BAD_FLAG", flag, `"${text}" is not a number from 0 to ${max}`);
  return Number(text);
}

function signalNumber(sig: NodeJS.Signals): number {
  return constants.signals[sig] ?? 9;
}
