import { type Endpoint, parseEndpoint } from "../option-codec/address.js";
import { CodecError } from "../option-codec/errors.js";
import { CliError } from "./errors.js";

// Flag values are untrusted: each parser names the flag in its error.

export function endpointFlag(flag: string, text: string): Endpoint {
  try {
    return parseEndpoint(text);
  } catch (e) {
    if (e instanceof CodecError)
      throw new CliError("BAD_FLAG", flag, `"${text}" is not ADDR:PORT or [V6ADDR]:PORT`);
    throw e;
  }
}

export function intFlag(flag: string, text: string, min: number, max: number): number {
  if (!/^(0|[1-9]\d*|0x[0-9a-fA-F]+)$/.test(text))
    throw new CliError("BAD_FLAG", flag, `"${text}" is not a number`);
  const n = Number(text);
  if (n < min || n > max) throw new CliError("BAD_FLAG", flag, `${n} is outside ${min}..${max}`);
  return n;
}

export function choiceFlag<T extends string>(flag: string, text: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(text)) return text as T;
  throw new CliError("BAD_FLAG", flag, `"${text}" is not one of ${choices.join(", ")}`);
}

export function listFlag<T extends string>(flag: string, text: string, choices: readonly T[]): T[] {
  const items = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (items.length === 0) throw new CliError("BAD_FLAG", flag, "empty list");
  return items.map((s) => choiceFlag(flag, s, choices));
}
