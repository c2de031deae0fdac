import { Command, CommanderError } from "commander";
import { registerClient } from "./client.js";
import { registerCraft } from "./craft.js";
import { registerDecoder } from "./decoder.js";
import { registerDemo } from "./demo.js";
import { CliError } from "./errors.js";
import { registerFault } from "./fault.js";
import { registerInstanceCommands } from "./instance-commands.js";
import { registerScenario } from "./scenario.js";
import { registerUp } from "./up.js";
import { registerVm } from "./vm.js";

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const processIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

/** Runs the CLI; returns the exit code instead of exiting, so tests can call it. */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const program = new Command("toasim")
    .description(
      "Emulates a FULLNAT L4 gateway (TOA / UOA / PROXY) to test the server side end to end",
    )
    .version("0.1.0")
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: io.out,
      // Commander's own usage errors are reformatted below as one line.
      writeErr: () => {},
      outputError: () => {},
    });
  registerCraft(program, io);
  registerUp(program, io);
  registerInstanceCommands(program, io);
  registerDemo(program, io);
  registerVm(program, io);
  registerDecoder(program, io);
  registerFault(program, io);
  registerClient(program, io);
  registerScenario(program, io);
  program.commands.forEach((c) => {
    c.exitOverride();
    c.configureOutput({ writeOut: io.out, writeErr: () => {}, outputError: () => {} });
  });
  try {
    // A command that runs a child (exec) passes on its exit code this way.
    process.exitCode = undefined;
    await program.parseAsync([...argv], { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === "commander.helpDisplayed" ||
        e.code === "commander.version" ||
        e.exitCode === 0
      )
        return 0;
      if (e.code === "commander.help") return 0;
      io.err(`toasim: ${e.message.replace(/^error: /, "").split("\n")[0]}\n`);
      return 2;
    }
    if (e instanceof CliError) {
      const cmd = argv.find((a) => !a.startsWith("-")) ?? "";
      io.err(`toasim${cmd ? ` ${cmd}` : ""}: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
}
