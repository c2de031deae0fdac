import { readFileSync } from "node:fs";
import { CliError } from "./errors.js";

/**
 * `toasim up --config FILE`: the options of an instance as JSON, in the
 * words of the API's up() ({"profile", "settings", "services", "scheduler",
 * "mtu", "maxConnections", "timeouts", "faults", "decoder"}); values are checked by the
 * API, which names the key at fault.
 */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new CliError("BAD_INPUT", "--config", `cannot read ${path}: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CliError("BAD_FLAG", "--config", `${path} is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new CliError("BAD_FLAG", "--config", `${path}: expected a JSON object`);
  return v as Record<string, unknown>;
}
