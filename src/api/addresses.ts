import { formatIp, parseIp } from "../option-codec/address.js";
import { CodecError } from "../option-codec/errors.js";
import { inPlan, planRanges } from "../runtime/defaults.js";
import { badOption } from "./errors.js";

/** An address the client namespace owns (the plan's client ranges), canonical. */
export function clientAddress(text: string, option: string): string {
  let a: Uint8Array;
  try {
    a = parseIp(text);
  } catch (e) {
    if (e instanceof CodecError) badOption(option, `"${text}" is not an IP address`, e);
    throw e;
  }
  if (!inPlan("client", a))
    badOption(option, `${text} is outside the client ranges ${planRanges("client")}`);
  return formatIp(a);
}
