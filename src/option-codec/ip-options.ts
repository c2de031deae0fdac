import { encodeOption, OptionByte, OptionCursor, optionLength } from "./option-walk.js";

// IPv4 options (RFC 791): the grammar of option-walk.ts. The representation
// keeps the options before EOL; the encoder pads with EOL.

export const IpOptionType = {
  ...OptionByte,
  /** DPVS's UOA option: copy bit clear, class 0, number 31. */
  uoa: 0x1f,
} as const;

export interface IpOption {
  readonly type: number;
  readonly data: Uint8Array;
}

/** The walk over an IPv4 option area (option-walk.ts: EOL ends it). */
export class IpOptionCursor extends OptionCursor {
  constructor() {
    super("IP option");
  }
}

const cursor = new IpOptionCursor();

export function parseIpOptions(buf: Uint8Array, start: number, end: number): IpOption[] {
  const out: IpOption[] = [];
  const c = cursor.reset(buf, start, end);
  while (c.next()) {
    const dataStart = c.length === 1 ? c.at + 1 : c.at + 2;
    out.push({ type: c.kind, data: buf.slice(dataStart, c.at + c.length) });
  }
  return out;
}

export function ipOptionsLength(options: readonly IpOption[]): number {
  let n = 0;
  for (const o of options) n += optionLength(o.type, o.data.length);
  return (n + 3) & ~3;
}

/** Writes the options padded with EOL to a multiple of 4; returns the padded length. */
export function encodeIpOptions(
  options: readonly IpOption[],
  buf: Uint8Array,
  off: number,
): number {
  let p = off;
  for (const o of options) p += encodeOption(o.type, o.data, buf, p, "IP option");
  while ((p - off) % 4 !== 0) buf[p++] = IpOptionType.eol;
  return p - off;
}
