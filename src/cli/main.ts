import { Command, CommanderError } from "commander";
import { ToasimError } from "../api/errors.js";
import { DecoderError } from "../decoder/errors.js";
import { GatewayError } from "../fullnat-sim/errors.js";
import { ProfileError } from "../fullnat-sim/profiles.js";
import { CodecError } from "../option-codec/errors.js";
import { packageVersion } from "../package-files.js";
import { RuntimeError } from "../runtime/errors.js";
import { ScenarioError } from "../scenario/errors.js";
import { SockoptError } from "../sockopt/errors.js";
import { TunError } from "../tun/errors.js";
import { VmError } from "../vm/errors.js";
import { registerCheck } from "./check.js";
import { registerClient } from "./client.js";
import { registerCraft } from "./craft.js";
import { registerDecoder } from "./decoder.js";
import { registerDemo } from "./demo.js";
import { registerDoctor } from "./doctor.js";
import { asCliError, CliError, exitCodesHelp } from "./errors.js";
import { registerExamples } from "./examples.js";
import { registerFault } from "./fault.js";
import { registerInstanceCommands } from "./instance-commands.js";
import { type Io, processIo } from "./io.js";
import { registerScenario } from "./scenario.js";
import { registerUp } from "./up.js";
import { registerVm } from "./vm.js";

/** Errors of toasim's layers: their message is meant for the user as it is. */
const KNOWN = [
  ToasimError,
  RuntimeError,
  TunError,
  DecoderError,
  GatewayError,
  ProfileError,
  ScenarioError,
  VmError,
  CodecError,
  SockoptError,
] as const;

/** The whole command tree, writing to `io` (tests and the docs generator use other writers). */
export function program(io: Io = processIo): Command {
  const program = new Command("toasim")
    .description(
      "Emulates a FULLNAT L4 gateway (TOA / UOA / PROXY) to test the server side end to end. Run a command with --help for its flags and examples.",
    )
    .version(packageVersion())
    .addHelpText("after", exitCodesHelp())
    .showSuggestionAfterError()
    .exitOverride();
  registerUp(program, io);
  registerInstanceCommands(program, io);
  registerDemo(program, io);
  registerCraft(program, io);
  registerScenario(program, io);
  registerCheck(program, io);
  registerClient(program, io);
  registerFault(program, io);
  registerDecoder(program, io);
  registerVm(program, io);
  registerDoctor(program, io);
  registerExamples(program, io);
  const output = {
    writeOut: io.out,
    // Commander's own usage errors are reformatted below as one line.
    writeErr: () => {},
    outputError: () => {},
    // Help is wrapped once, here, to the terminal (descriptions are written unwrapped).
    getOutHelpWidth: () => io.columns ?? process.stdout.columns ?? 80,
  };
  const configure = (c: Command) => {
    c.exitOverride();
    c.configureOutput(output);
    c.commands.forEach(configure);
  };
  configure(program);
  return program;
}

/** Runs the CLI; returns the exit code instead of exiting, so tests can call it. */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const cmd = argv.find((a) => !a.startsWith("-")) ?? "";
  const where = `toasim${cmd ? ` ${cmd}` : ""}`;
  try {
    // A command that runs a child (exec, vm) passes on its exit code this way.
    process.exitCode = undefined;
    await program(io).parseAsync([...argv], { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (raw) {
    return reportError(raw, where, io);
  }
}

/**
 * One line for any failure, and the exit code: 2 for bad usage, the
 * command's own for its documented failures, 1 for what toasim's layers
 * report (their message is meant for the user), 70 for anything else (a
 * bug: the stack is printed only with TOASIM_DEBUG=1).
 */
export function reportError(raw: unknown, where: string, io: Io): number {
  const e = asCliError(raw);
  if (e instanceof CommanderError) {
    if (e.exitCode === 0 || e.code === "commander.help" || e.code === "commander.helpDisplayed")
      return 0;
    io.err(`toasim: ${e.message.replace(/^error: /, "").split("\n")[0]}\n`);
    return 2;
  }
  if (e instanceof CliError) {
    io.err(`${where}: ${e.message}\n`);
    return e.exitCode;
  }
  if (KNOWN.some((k) => e instanceof k)) {
    io.err(`${where}: ${(e as Error).message}\n`);
    debugStack(io, e);
    return 1;
  }
  const message = e instanceof Error ? e.message : String(e);
  io.err(
    `${where}: unexpected error: ${message.split("\n")[0]} (a bug in toasim: run again with TOASIM_DEBUG=1 to see where, and report it with that output)\n`,
  );
  debugStack(io, e);
  return 70;
}

function debugStack(io: Io, e: unknown): void {
  if (process.env["TOASIM_DEBUG"] === "1" && e instanceof Error && e.stack) io.err(`${e.stack}\n`);
}

/**
 * The process's entry (bin/toasim.js): a reader that went away (`toasim
 * stats | head -3`) ends the command quietly with exit 0, running the exit
 * hooks that remove what it set up; anything that escapes is one line.
 */
export async function runCli(argv: readonly string[]): Promise<void> {
  const closed = (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  };
  process.stdout.on("error", closed);
  process.stderr.on("error", closed);
  process.on("unhandledRejection", (e) => {
    const line = e instanceof Error ? e.message : String(e);
    process.stderr.write(`toasim: unexpected error: ${line} (TOASIM_DEBUG=1 shows where)\n`);
    if (process.env["TOASIM_DEBUG"] === "1" && e instanceof Error)
      process.stderr.write(`${e.stack}\n`);
    process.exit(70);
  });
  process.exitCode = await main(argv);
}
