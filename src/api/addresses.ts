import { familyOf, formatIp, parseIp } from "../option-codec/address.js";
import { CodecError } from "../option-codec/errors.js";
import { badOption } from "./errors.js";

const CLIENT6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0x0c, 0, 0] as const;

/** An address the client namespace owns: 198.51.100.0/24 or 2001:db8:c::/64, canonical. */
export function clientAddress(text: string, option: string): string {
  let a: Uint8Array;
  try {
    a = parseIp(text);
  } catch (e) {
    if (e instanceof CodecError) badOption(option, `"${text}" is not an IP address`, e);
    throw e;
  }
  const ok =
    familyOf(a) === 4
      ? a[0] === 198 && a[1] === 51 && a[2] === 100
      : CLIENT6.every((b, i) => a[i] === b);
  if (!ok)
    badOption(option, `${text} is outside the client ranges 198.51.100.0/24 and 2001:db8:c::/64`);
  return formatIp(a);
}
