import { readU16, readU32, writeU16, writeU32 } from "./bytes.js";
import { encodeOption, OptionByte, OptionCursor, optionLength } from "./option-walk.js";

export const TcpOptionKind = {
  ...OptionByte,
  mss: 2,
  windowScale: 3,
  sackPermitted: 4,
  sack: 5,
  timestamps: 8,
  userTimeout: 28,
  fastOpen: 34,
  /** RFC 4727 experimental kinds: TOA lives here for most vendors. */
  experimental1: 253,
  experimental2: 254,
} as const;

/** The experimental TCP Fast Open ExID (RFC 7413 §4.1.1): never a TOA. */
export const TFO_EXID = 0xf989;

export const MAX_TCP_OPTIONS = 40;

/** One option as on the wire; EOL and NOP have empty data and take one byte. */
export interface TcpOption {
  readonly kind: number;
  readonly data: Uint8Array;
}

/** The walk over a TCP option area (option-walk.ts: EOL ends it, as in tcp_parse_options). */
export class TcpOptionCursor extends OptionCursor {
  constructor() {
    super("TCP option");
  }
}

const cursor = new TcpOptionCursor();

/** The options before EOL; EOL and what follows it are padding and are not kept. */
export function parseTcpOptions(buf: Uint8Array, start: number, end: number): TcpOption[] {
  const out: TcpOption[] = [];
  const c = cursor.reset(buf, start, end);
  while (c.next()) {
    const dataStart = c.length === 1 ? c.at + 1 : c.at + 2;
    out.push({ kind: c.kind, data: buf.slice(dataStart, c.at + c.length) });
  }
  return out;
}

export function tcpOptionLength(o: TcpOption): number {
  return optionLength(o.kind, o.data.length);
}

/** Unpadded length of a list of options. */
export function tcpOptionsLength(options: readonly TcpOption[]): number {
  let n = 0;
  for (const o of options) n += tcpOptionLength(o);
  return n;
}

export function encodeTcpOption(o: TcpOption, buf: Uint8Array, off: number): number {
  return encodeOption(o.kind, o.data, buf, off, "TCP option");
}

/** Writes the options and pads with EOL to a multiple of 4; returns the padded length. */
export function encodeTcpOptions(
  options: readonly TcpOption[],
  buf: Uint8Array,
  off: number,
): number {
  let p = off;
  for (const o of options) p += encodeTcpOption(o, buf, p);
  while ((p - off) % 4 !== 0) buf[p++] = TcpOptionKind.eol;
  return p - off;
}

// Typed constructors and readers for the options the gateway touches.

export function mssOption(mss: number): TcpOption {
  const data = new Uint8Array(2);
  writeU16(data, 0, mss);
  return { kind: TcpOptionKind.mss, data };
}

export function windowScaleOption(shift: number): TcpOption {
  return { kind: TcpOptionKind.windowScale, data: Uint8Array.of(shift) };
}

export function sackPermittedOption(): TcpOption {
  return { kind: TcpOptionKind.sackPermitted, data: new Uint8Array(0) };
}

export function timestampsOption(tsval: number, tsecr: number): TcpOption {
  const data = new Uint8Array(8);
  writeU32(data, 0, tsval);
  writeU32(data, 4, tsecr);
  return { kind: TcpOptionKind.timestamps, data };
}

export function sackOption(blocks: readonly (readonly [number, number])[]): TcpOption {
  const data = new Uint8Array(8 * blocks.length);
  blocks.forEach(([l, r], i) => {
    writeU32(data, 8 * i, l);
    writeU32(data, 8 * i + 4, r);
  });
  return { kind: TcpOptionKind.sack, data };
}

export const NOP: TcpOption = { kind: TcpOptionKind.nop, data: new Uint8Array(0) };

export function readMss(o: TcpOption): number | undefined {
  return o.kind === TcpOptionKind.mss && o.data.length === 2 ? readU16(o.data, 0) : undefined;
}

export function readTimestamps(o: TcpOption): { tsval: number; tsecr: number } | undefined {
  if (o.kind !== TcpOptionKind.timestamps || o.data.length !== 8) return undefined;
  return { tsval: readU32(o.data, 0), tsecr: readU32(o.data, 4) };
}
