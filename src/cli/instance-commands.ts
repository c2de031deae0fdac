import { spawnSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { DROP_REASONS } from "../fullnat-sim/stats.js";
import { cleanupRsCgroups } from "../runtime/rs-decoder.js";
import { type ClientSource, cleanupClientSources, clientSource } from "../tun/client-source.js";
import { TunError } from "../tun/errors.js";
import {
  cleanupStale,
  listStates,
  nsExecArgs,
  ownerAlive,
  removeState,
  STATE_DIR,
} from "../tun/topology.js";
import { request } from "./control-client.js";
import { CliError } from "./errors.js";
import { findInstance } from "./instances.js";
import type { Io } from "./main.js";
import { choiceFlag, clientAddressFlag, intFlag } from "./parse-flags.js";

// Commands that act on a running instance (or on what a dead one left).

export function registerInstanceCommands(program: Command, io: Io): void {
  program
    .command("exec")
    .summary("run a command in the client or server namespace of a running instance")
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
    .action((side: string, cmd: string[], f: { id?: string; as?: string }) => {
      const s = choiceFlag("<side>", side, ["client", "rs"] as const);
      if (f.as !== undefined && s !== "client") {
        throw new CliError("BAD_COMBINATION", "--as", "applies to the client side only");
      }
      const as = f.as === undefined ? null : clientAddressFlag(f.as);
      const inst = findInstance(f.id);
      const ns = s === "client" ? inst.state.clientNs : inst.state.serverNs;
      let argv = nsExecArgs(ns, cmd);
      // Servers join the instance's decoder cgroup (before `ip netns exec`,
      // which remounts /sys): the eBPF decoder answers their sockets.
      const rsCgroup = inst.state["rsCgroup"];
      if (s === "rs" && typeof rsCgroup === "string")
        argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', rsCgroup, ...argv];
      let source: ClientSource | null = null;
      if (as !== null) {
        try {
          source = clientSource(inst.id, ns, as, argv);
        } catch (e) {
          if (e instanceof TunError) throw new CliError("RUNTIME", "--as", e.message, 1);
          throw e;
        }
        argv = source.argv;
      }
      try {
        const r = spawnSync(argv[0]!, argv.slice(1), { stdio: "inherit" });
        if (r.error)
          throw new CliError("RUNTIME", null, `cannot run ${cmd[0]}: ${r.error.message}`, 1);
        process.exitCode = r.status ?? 128 + 9;
      } finally {
        source?.cleanup();
      }
    });

  program
    .command("stats")
    .summary("print the live counters of a running instance")
    .option("--id <id>", "instance id (when several are running)")
    .option("--json", "one JSON object")
    .addHelpText("after", "\nExample:\n  toasim stats --json")
    .action(async (f: { id?: string; json?: boolean }) => {
      const inst = findInstance(f.id);
      let stats: Record<string, number> = {};
      await request(String(inst.state["socket"]), { cmd: "stats" }, (m) => {
        stats = (m["stats"] as Record<string, number>) ?? {};
      }).done;
      if (f.json) {
        io.out(`${JSON.stringify({ id: inst.id, ...stats })}\n`);
        return;
      }
      const v = (k: string) => String(stats[k] ?? 0);
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
        const name = Object.keys(stats)[i] ?? "";
        io.out(`    ${reason.padEnd(22)} ${stats[name] ?? 0}\n`);
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
    .addHelpText("after", "\nExample:\n  toasim capture --side server --count 20 --out server.pcap")
    .action(
      async (f: { out: string; side: string; count: string; seconds: string; id?: string }) => {
        const side = choiceFlag("--side", f.side, ["client", "server"] as const);
        const count = intFlag("--count", f.count, 0, 100_000_000);
        const seconds = intFlag("--seconds", f.seconds, 0, 86_400);
        const inst = findInstance(f.id);
        const path = resolve(f.out);
        let packets = 0;
        const session = request(
          String(inst.state["socket"]),
          { cmd: "capture", side, path, count },
          (m) => {
            if (m["type"] === "capture-started")
              io.err(`capturing the ${side} side into ${path}\n`);
            if (m["type"] === "capture-done") packets = Number(m["packets"]);
          },
        );
        // Ctrl-C or the time limit ask the instance to close the file; it then
        // reports the count and closes the connection.
        const stop = () => session.send({ cmd: "capture-stop" });
        process.once("SIGINT", stop);
        const timer = seconds > 0 ? setTimeout(stop, seconds * 1000) : undefined;
        try {
          await session.done;
        } finally {
          clearTimeout(timer);
          process.off("SIGINT", stop);
        }
        io.out(`${path}: ${packets} packets\n`);
      },
    );

  program
    .command("down")
    .summary("stop running instances and remove what killed ones left behind")
    .option("--id <id>", "only this instance")
    .addHelpText("after", "\nExample:\n  toasim down")
    .action(async (f: { id?: string }) => {
      const targets = listStates().filter((e) => f.id === undefined || e.id === f.id);
      let stopped = 0;
      for (const e of targets) {
        if (!ownerAlive(e.state)) continue;
        try {
          process.kill(e.state.pid, "SIGTERM");
        } catch {
          // Gone meanwhile.
        }
        const deadline = Date.now() + 5000;
        while (ownerAlive(e.state) && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 50));
        if (ownerAlive(e.state)) {
          process.kill(e.state.pid, "SIGKILL");
          removeState(e.id);
        }
        stopped++;
      }
      const { removed, removedStates } = cleanupStale();
      const live = listStates()
        .filter((e) => ownerAlive(e.state))
        .map((e) => e.id);
      cleanupClientSources(live);
      cleanupRsCgroups(live);
      removeStaleSockets(live);
      io.out(
        `toasim down: ${stopped} instance(s) stopped, ${removed.length} namespace(s) and ${removedStates.length} state file(s) removed\n`,
      );
    });
}

/** Control sockets of instances that are gone (a SIGKILL leaves them). */
function removeStaleSockets(live: readonly string[]): void {
  let names: string[] = [];
  try {
    names = readdirSync(STATE_DIR);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^(.+)\.sock$/.exec(n);
    if (m && !live.includes(m[1]!)) rmSync(join(STATE_DIR, n), { force: true });
  }
}
