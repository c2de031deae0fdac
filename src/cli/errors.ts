import { ToasimError, ToasimErrorCode } from "../api/errors.js";

/**
 * The CLI layer's error: bad user input, reported as one line naming the
 * flag with exit code 2 (the usage-error convention of most Unix tools);
 * a failure to do the work is given exit code 1 (or the command's own).
 */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    readonly code: "BAD_FLAG" | "BAD_COMBINATION" | "IO" | "NO_INSTANCE" | "RUNTIME",
    readonly flag: string | null,
    message: string,
    readonly exitCode = 2,
  ) {
    super(flag ? `${flag}: ${message}` : message);
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
