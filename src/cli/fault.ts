import { readFileSync } from "node:fs";
import type { Command } from "commander";
import type { FaultsSpec } from "../api/options.js";
import { faultConfig } from "../api/options.js";
import { CliError } from "./errors.js";
import {
  addFaultOptions,
  type FaultFlags,
  faultSpecHelp,
  faultsOf,
  fileRuleCount,
} from "./fault-flags.js";
import { helpWidth } from "./help-text.js";
import { attached } from "./instance-commands.js";
import type { Io } from "./io.js";
import { upError } from "./up.js";
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
      `\n${faultSpecHelp(helpWidth(io))}\n\nExamples:\n` +
        "  toasim fault set --fault to-server:handshake-ack:drop,count=1\n" +
        "  toasim fault set --fault to-client:syn-ack:delay=300 --fault both:data:duplicate,probability=0.1\n" +
        "  toasim fault set --file faults.json",
    )
    .action(async (f: FaultFlags & { file?: string; id?: string }) => {
      const file = f.file === undefined ? undefined : readJson(f.file);
      const plain = faultsOf(f, file) ?? file ?? {};
      // Checked before looking for an instance: a bad rule names its flag, exit code 2.
      try {
        faultConfig(plain);
      } catch (e) {
        const blamed = upError(e, new Set(), fileRuleCount(file));
        throw blamed instanceof CliError && blamed.flag === "--config"
          ? new CliError("BAD_FLAG", "--file", blamed.message.replace(/^--config: /, ""))
          : blamed;
      }
      const inst = attached(f.id);
      const { rules } = await inst.setFaults(plain as FaultsSpec);
      io.out(`instance ${inst.id}: ${rules} fault rule(s) on\n`);
    });
  fault
    .command("clear")
    .summary("switch fault injection off (held packets are sent)")
    .option("--id <id>", "instance id (when several are running)")
    .addHelpText("after", "\nExample:\n  toasim fault clear")
    .action(async (f: { id?: string }) => {
      const inst = attached(f.id);
      await inst.clearFaults();
      io.out(`instance ${inst.id}: faults off\n`);
    });

  program
    .command("restart")
    .summary("restart the gateway of a running instance: its connection table starts empty")
    .description(
      "What a gateway restart does to open connections: the namespaces, servers and clients stay, the gateway forgets every connection (their next packets are dropped as belonging to none) and new connections work at once.",
    )
    .option("--id <id>", "instance id (when several are running)")
    .addHelpText("after", "\nExample:\n  toasim restart")
    .action(async (f: { id?: string }) => {
      const inst = attached(f.id);
      await inst.restart();
      io.out(`instance ${inst.id}: gateway restarted, connection table empty\n`);
    });
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new CliError("BAD_INPUT", "--file", `cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new CliError("BAD_FLAG", "--file", `${path} is not JSON: ${(e as Error).message}`);
  }
}
