import { ToasimError, ToasimErrorCode } from "../api/errors.js";

/**
 * The CLI layer's error codes, each with its exit status: usage errors 2
 * (the convention of most Unix tools), a failure to do the work 1, and
 * toasim vm's own, as timeout(1) and env(1) give them.
 */
export const CliErrorCode = {
  BAD_FLAG: { exit: 2, means: "a flag or argument is wrong" },
  BAD_COMBINATION: { exit: 2, means: "flags that do not go together" },
  BAD_INPUT: { exit: 2, means: "a file named on the command line cannot be read" },
  IO: { exit: 1, means: "an output (--out, --report) cannot be written" },
  RUNTIME: { exit: 1, means: "the work failed (toasim's layers say why)" },
  VM_TIMEOUT: { exit: 124, means: "toasim vm: the time limit passed" },
  VM_FAILED: { exit: 125, means: "toasim vm: the VM could not run the command" },
} as const;
export type CliErrorCode = keyof typeof CliErrorCode;

/** The exit statuses of every command, for the root --help (and so docs/cli.md). */
export function exitCodesHelp(): string {
  const rows = new Map<number, string[]>([[0, ["done; a check or a test found nothing wrong"]]]);
  rows.set(1, ["a check or a test found a failure"]);
  for (const { exit, means } of Object.values(CliErrorCode))
    rows.set(exit, [...(rows.get(exit) ?? []), means]);
  rows.set(70, ["a bug in toasim (TOASIM_DEBUG=1 shows where)"]);
  const lines = [...rows]
    .sort(([a], [b]) => a - b)
    .flatMap(([exit, all]) =>
      all.map((m, i) => `  ${(i === 0 ? String(exit) : "").padEnd(5)}${m}`),
    );
  return `\nExit codes:\n${lines.join("\n")}\ntoasim exec and toasim vm otherwise exit with their command's code.\n`;
}

/** The error of the CLI layer: one line naming the flag, and the exit status of its code. */
export class CliError extends Error {
  override readonly name = "CliError";
  readonly exitCode: number;
  constructor(
    readonly code: CliErrorCode,
    readonly flag: string | null,
    message: string,
  ) {
    super(flag ? `${flag}: ${message}` : message);
    this.exitCode = CliErrorCode[code].exit;
  }
}

/** API option paths that are not `--` + the option's name in kebab case. */
const OPTION_FLAGS: Readonly<Record<string, string>> = {
  services: "--service",
  decoder: "--decoder",
  "decoder.mode": "--decoder",
  "decoder.trusted": "--decoder-trusted",
  "decoder.uoaTimeoutSec": "--decoder-uoa-timeout",
  "faults.mtu": "--link-mtu",
  "faults.seed": "--fault-seed",
  "faults.rules": "--fault",
  settings: "--profile",
  options: "--config",
  timeouts: "--timeout",
  // toasim check's lists.
  profiles: "--profile",
  cases: "--case",
  families: "--family",
  readers: "--reader",
  kernels: "--kernel",
};

const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * The flag that sets an API option: `settings.maxTrail` is --max-trail,
 * `services[2]` is --service. `fromFile`: the top-level options that a
 * --config file gave (flags not given): their errors blame --config.
 */
export function flagOf(option: string, fromFile: ReadonlySet<string> = new Set()): string {
  const top = option.split(/[.[]/)[0] ?? option;
  const second = option.match(/^\w+\.(\w+)/)?.[0];
  if (fromFile.has(top) || (second !== undefined && fromFile.has(second))) return "--config";
  for (const key of [second, option.replace(/\[.*$/, "")]) {
    if (key !== undefined && OPTION_FLAGS[key] !== undefined) return OPTION_FLAGS[key];
  }
  if (top === "settings" && second !== undefined) return `--${kebab(second.slice(9))}`;
  return OPTION_FLAGS[top] ?? `--${kebab(top)}`;
}

/** A ToasimError about an option, as the CliError that names its flag. */
export function asCliError(e: unknown, fromFile?: ReadonlySet<string>): unknown {
  if (e instanceof ToasimError && e.code === ToasimErrorCode.badOption && e.option !== null) {
    const flag = flagOf(e.option, fromFile);
    // The flag says it all for a plain option; a value inside a list or a
    // file keeps its path (faults.rules[1].count), which says which one.
    const plain =
      /^(\w+|settings\.\w+|decoder\.\w+)(\[\d+\])?$/.test(e.option) && flag !== "--config";
    return new CliError("BAD_FLAG", flag, plain ? e.detail : e.message);
  }
  return e;
}
