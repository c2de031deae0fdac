import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { request } from "./control-client.js";
import { CliError } from "./errors.js";
import {
  addFaultOptions,
  FAULT_SPEC_HELP,
  type FaultFlags,
  faultsFrom,
  faultsPlain,
} from "./fault-flags.js";
import { findInstance } from "./instances.js";
import type { Io } from "./main.js";

// Faults and restarts of a running instance, for scripts that switch a
// gateway's misbehaviour on and off in the middle of a test.

export function registerFault(program: Command, io: Io): void {
  const fault = program
    .command("fault")
    .summary("switch fault injection on or off in a running instance");
  const set = fault
    .command("set")
    .summary("replace the fault rules of a running instance")
    .option("--file <json>", 'a JSON file: {"rules": [...], "mtu": {...}, "seed": N}')
    .option("--id <id>", "instance id (when several are running)");
  addFaultOptions(set)
    .addHelpText(
      "after",
      `\n${FAULT_SPEC_HELP}\n\nExamples:\n` +
        "  toasim fault set --fault to-server:handshake-ack:drop,count=1\n" +
        "  toasim fault set --fault to-client:syn-ack:delay=300 --fault both:data:duplicate,probability=0.1\n" +
        "  toasim fault set --file faults.json",
    )
    .action(async (f: FaultFlags & { file?: string; id?: string }) => {
      const file = f.file === undefined ? undefined : readJson(f.file);
      // Checked here too, so a bad rule gets the flag's name and exit code 2.
      faultsFrom(f, file, "--file");
      const { plain } = faultsPlain(f, file, "--file");
      const inst = findInstance(f.id);
      const answer = await send(String(inst.state["socket"]), { cmd: "faults", faults: plain });
      io.out(`instance ${inst.id}: ${String(answer["rules"])} fault rule(s) on\n`);
    });
  fault
    .command("clear")
    .summary("switch fault injection off (held packets are sent)")
    .option("--id <id>", "instance id (when several are running)")
    .addHelpText("after", "\nExample:\n  toasim fault clear")
    .action(async (f: { id?: string }) => {
      const inst = findInstance(f.id);
      await send(String(inst.state["socket"]), { cmd: "faults", faults: null });
      io.out(`instance ${inst.id}: faults off\n`);
    });

  program
    .command("restart")
    .summary("restart the gateway of a running instance: its connection table starts empty")
    .description(
      "What a gateway restart does to open connections: the namespaces, servers and\n" +
        "clients stay, the gateway forgets every connection (their next packets are\n" +
        "dropped as belonging to none) and new connections work at once.",
    )
    .option("--id <id>", "instance id (when several are running)")
    .addHelpText("after", "\nExample:\n  toasim restart")
    .action(async (f: { id?: string }) => {
      const inst = findInstance(f.id);
      await send(String(inst.state["socket"]), { cmd: "restart" });
      io.out(`instance ${inst.id}: gateway restarted, connection table empty\n`);
    });
}

async function send(socket: string, req: object): Promise<Record<string, unknown>> {
  let answer: Record<string, unknown> = {};
  await request(socket, req, (m) => {
    answer = m;
  }).done;
  if (answer["ok"] !== true) {
    throw new CliError(
      "RUNTIME",
      null,
      String(answer["error"] ?? "no answer from the instance"),
      1,
    );
  }
  return answer;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new CliError("IO", "--file", `cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new CliError("BAD_FLAG", "--file", `${path} is not JSON: ${(e as Error).message}`);
  }
}
