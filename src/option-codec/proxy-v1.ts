import { type Endpoint, formatIp, type IpAddress, parseIpv4, parseIpv6 } from "./address.js";
import { CodecError, CodecErrorCode } from "./errors.js";

// HAProxy PROXY protocol v1 (doc/proxy-protocol.txt, section 2.1): one US-ASCII
// line "PROXY TCP4|TCP6 src dst sport dport\r\n" or "PROXY UNKNOWN...\r\n".

/** Longest line a receiver must accept, CRLF included (the UNKNOWN worst case). */
export const PROXY_V1_MAX_LENGTH = 107;
export const PROXY_V1_PREFIX = "PROXY ";

export type ProxyV1Repr =
  | {
      readonly protocol: "TCP4" | "TCP6";
      readonly source: Endpoint;
      readonly destination: Endpoint;
    }
  /** Whatever followed UNKNOWN is dropped: the spec tells receivers to ignore it. */
  | { readonly protocol: "UNKNOWN" };

const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const ADDRESS_BYTES = { TCP4: 4, TCP6: 16 } as const;

function badValue(offset: number, message: string): CodecError {
  return new CodecError(CodecErrorCode.badValue, offset, message);
}

// --- encoding -------------------------------------------------------------

function checkEndpoint(e: Endpoint, bytes: number, what: string): void {
  if (e.addr.length !== bytes) throw badValue(0, `${what} address of ${e.addr.length} bytes`);
  if (!Number.isInteger(e.port) || e.port < 0 || e.port > 0xffff) {
    throw badValue(0, `${what} port ${e.port} is not in 0-65535`);
  }
}

function formatLine(repr: ProxyV1Repr): string {
  if (repr.protocol === "UNKNOWN") return `${PROXY_V1_PREFIX}UNKNOWN\r\n`;
  const bytes = ADDRESS_BYTES[repr.protocol];
  if (bytes === undefined) throw badValue(0, `unknown protocol "${repr.protocol}"`);
  const { source: s, destination: d } = repr;
  checkEndpoint(s, bytes, "source");
  checkEndpoint(d, bytes, "destination");
  const fields = [repr.protocol, formatIp(s.addr), formatIp(d.addr), s.port, d.port];
  return `${PROXY_V1_PREFIX}${fields.join(" ")}\r\n`;
}

/** Bytes `encodeProxyV1` writes for `repr`; throws BAD_VALUE like the encoder. */
export function proxyV1Length(repr: ProxyV1Repr): number {
  return formatLine(repr).length;
}

/** Writes the line at `offset`; returns the bytes written. */
export function encodeProxyV1(repr: ProxyV1Repr, buf: Uint8Array, offset: number): number {
  const line = formatLine(repr);
  if (offset < 0 || offset + line.length > buf.length) {
    throw new CodecError(
      CodecErrorCode.noRoom,
      offset,
      `PROXY v1 line needs ${line.length} bytes, buffer has ${Math.max(0, buf.length - offset)}`,
    );
  }
  for (let i = 0; i < line.length; i++) buf[offset + i] = line.charCodeAt(i);
  return line.length;
}

// --- decoding -------------------------------------------------------------

/** True when the bytes at `offset` start with "PROXY ". */
export function isProxyV1(buf: Uint8Array, offset: number, end: number): boolean {
  const stop = Math.min(end, buf.length);
  if (offset < 0 || offset + PROXY_V1_PREFIX.length > stop) return false;
  for (let i = 0; i < PROXY_V1_PREFIX.length; i++) {
    if (buf[offset + i] !== PROXY_V1_PREFIX.charCodeAt(i)) return false;
  }
  return true;
}

function checkPrefix(buf: Uint8Array, offset: number, stop: number): void {
  const n = PROXY_V1_PREFIX.length;
  const avail = Math.min(n, Math.max(0, stop - offset));
  for (let i = 0; i < avail; i++) {
    if (buf[offset + i] !== PROXY_V1_PREFIX.charCodeAt(i)) {
      throw new CodecError(CodecErrorCode.badSignature, offset + i, 'not a "PROXY " line');
    }
  }
  if (avail < n) throw new CodecError(CodecErrorCode.truncated, offset, "PROXY v1 line cut short");
}

/** Offset of the CR of the line's CRLF; a lone CR or LF does not end the line. */
function findCrlf(buf: Uint8Array, offset: number, stop: number): number {
  const limit = Math.min(stop, offset + PROXY_V1_MAX_LENGTH);
  for (let i = offset; i + 1 < limit; i++) {
    if (buf[i] === CR && buf[i + 1] === LF) return i;
  }
  if (stop - offset >= PROXY_V1_MAX_LENGTH) {
    throw new CodecError(
      CodecErrorCode.badTotalLength,
      offset + PROXY_V1_MAX_LENGTH - 1,
      `no CRLF within the first ${PROXY_V1_MAX_LENGTH} bytes of a PROXY v1 line`,
    );
  }
  throw new CodecError(CodecErrorCode.truncated, offset, "PROXY v1 line has no CRLF yet");
}

interface Field {
  readonly text: string;
  readonly at: number;
}

/** Splits on single spaces; an empty field means a doubled, leading or trailing space. */
function splitFields(buf: Uint8Array, start: number, stop: number): Field[] {
  const fields: Field[] = [];
  let at = start;
  for (let i = start; i <= stop; i++) {
    if (i < stop && buf[i] !== SPACE) continue;
    if (i === at) throw badValue(at, "PROXY v1 fields must be separated by exactly one space");
    fields.push({ text: String.fromCharCode(...buf.subarray(at, i)), at });
    at = i + 1;
  }
  return fields;
}

function parseAddress(f: Field, protocol: "TCP4" | "TCP6"): IpAddress {
  try {
    return protocol === "TCP4" ? parseIpv4(f.text) : parseIpv6(f.text);
  } catch (e) {
    // address.ts cannot know where in the packet the text was; re-anchor it.
    const why = e instanceof CodecError ? e.message : String(e);
    throw new CodecError(CodecErrorCode.badAddress, f.at, `${protocol} address: ${why}`);
  }
}

function parsePort(f: Field): number {
  if (!/^(0|[1-9]\d{0,4})$/.test(f.text) || Number(f.text) > 0xffff) {
    throw badValue(f.at, `"${f.text}" is not a port (decimal 0-65535, no leading zeros)`);
  }
  return Number(f.text);
}

function parseTcp(protocol: "TCP4" | "TCP6", fields: Field[], lineEnd: number): ProxyV1Repr {
  if (fields.length !== 5) {
    const at = fields.length > 5 ? fields[5]!.at : lineEnd;
    throw badValue(
      at,
      `PROXY ${protocol} needs 4 fields after the protocol, not ${fields.length - 1}`,
    );
  }
  const [, src, dst, sport, dport] = fields as [Field, Field, Field, Field, Field];
  const srcAddr = parseAddress(src, protocol);
  const dstAddr = parseAddress(dst, protocol);
  return {
    protocol,
    source: { addr: srcAddr, port: parsePort(sport) },
    destination: { addr: dstAddr, port: parsePort(dport) },
  };
}

function isUnknown(buf: Uint8Array, at: number, lineEnd: number): boolean {
  const word = "UNKNOWN";
  if (at + word.length > lineEnd) return false;
  for (let i = 0; i < word.length; i++) if (buf[at + i] !== word.charCodeAt(i)) return false;
  return at + word.length === lineEnd || buf[at + word.length] === SPACE;
}

/** Strict decoder; `length` includes the CRLF. */
export function decodeProxyV1(
  buf: Uint8Array,
  offset: number,
  end: number,
): { repr: ProxyV1Repr; length: number } {
  const stop = Math.min(end, buf.length);
  checkPrefix(buf, offset, stop);
  const lineEnd = findCrlf(buf, offset, stop);
  const length = lineEnd + 2 - offset;
  const protoAt = offset + PROXY_V1_PREFIX.length;
  if (isUnknown(buf, protoAt, lineEnd)) return { repr: { protocol: "UNKNOWN" }, length };
  const fields = splitFields(buf, protoAt, lineEnd);
  const protocol = fields[0]!.text;
  if (protocol !== "TCP4" && protocol !== "TCP6") {
    throw badValue(protoAt, `"${protocol}" is not TCP4, TCP6 or UNKNOWN`);
  }
  return { repr: parseTcp(protocol, fields, lineEnd), length };
}
