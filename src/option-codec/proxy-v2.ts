import type { Endpoint } from "./address.js";
import { readU16, writeU16 } from "./bytes.js";
import { CodecError, CodecErrorCode, need } from "./errors.js";

// HAProxy PROXY protocol v2 (doc/proxy-protocol.txt, section 2.2): a 16-byte
// header (signature, ver_cmd, fam, be16 length), the address block, then TLVs
// up to the declared length.

/** 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A: the bytes spell this string. */
export const PROXY_V2_SIGNATURE = Uint8Array.from("\r\n\r\n\0\r\nQUIT\n", (c) => c.charCodeAt(0));

export const PROXY_V2_HEADER_LENGTH = 16;

/** Registered TLV types (PP2_TYPE_*); the SSL subtypes live inside an SSL TLV's value. */
export const ProxyV2Tlv = {
  alpn: 0x01,
  authority: 0x02,
  crc32c: 0x03,
  noop: 0x04,
  uniqueId: 0x05,
  ssl: 0x20,
  netns: 0x30,
} as const;

export type ProxyV2Command = "local" | "proxy";
export type ProxyV2Transport = "unspec" | "stream" | "dgram";

export interface ProxyV2TlvEntry {
  readonly type: number;
  readonly value: Uint8Array;
}

/**
 * Source and destination are both present (AF_INET or AF_INET6, told apart by
 * address length) or both absent (AF_UNSPEC, which the spec pairs only with
 * transport "unspec"). A LOCAL header keeps whatever addresses it carried, so
 * that decoding and re-encoding reproduces the bytes; receivers ignore them.
 */
export interface ProxyV2Repr {
  readonly command: ProxyV2Command;
  readonly transport: ProxyV2Transport;
  readonly source?: Endpoint;
  readonly destination?: Endpoint;
  readonly tlvs: readonly ProxyV2TlvEntry[];
}

const VERSION = 0x2;
const COMMAND = { local: 0x0, proxy: 0x1 } as const;
const TRANSPORT = { unspec: 0x0, stream: 0x1, dgram: 0x2 } as const;
const TRANSPORT_BY_NIBBLE = ["unspec", "stream", "dgram"] as const;
const FAMILY = { unspec: 0x0, inet: 0x1, inet6: 0x2, unix: 0x3 } as const;
/** Address block size per family nibble: two addresses plus two ports (none for UNIX). */
const ADDRESS_BLOCK = [0, 12, 36, 216] as const;
const TLV_HEADER = 3;
const U16_MAX = 0xffff;

function badValue(offset: number, message: string): CodecError {
  return new CodecError(CodecErrorCode.badValue, offset, message);
}

// --- encoding -------------------------------------------------------------

interface Plan {
  readonly fam: number;
  readonly bodyLength: number;
}

function checkPort(port: number, at: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > U16_MAX) {
    throw badValue(at, `${what} port ${port} is not in 0-65535`);
  }
}

/** The fam byte for a repr, or BAD_VALUE when the repr names no valid combination. */
function famByte(repr: ProxyV2Repr, at: number): number {
  const { source, destination } = repr;
  const transport = TRANSPORT[repr.transport];
  if (transport === undefined) throw badValue(at, `unknown transport "${repr.transport}"`);
  if (source === undefined && destination === undefined) {
    if (transport !== TRANSPORT.unspec) {
      throw badValue(at, `transport ${repr.transport} needs source and destination`);
    }
    return FAMILY.unspec << 4;
  }
  if (source === undefined || destination === undefined) {
    throw badValue(at, "source and destination must be given together");
  }
  if (transport === TRANSPORT.unspec) {
    throw badValue(at, "transport unspec cannot carry addresses");
  }
  const len = source.addr.length;
  if (len !== destination.addr.length) {
    throw badValue(at, "source and destination are of different families");
  }
  if (len !== 4 && len !== 16) throw badValue(at, `address of ${len} bytes`);
  checkPort(source.port, at, "source");
  checkPort(destination.port, at, "destination");
  return ((len === 4 ? FAMILY.inet : FAMILY.inet6) << 4) | transport;
}

function tlvsLength(tlvs: readonly ProxyV2TlvEntry[], at: number): number {
  let total = 0;
  for (const { type, value } of tlvs) {
    if (!Number.isInteger(type) || type < 0 || type > 0xff) {
      throw badValue(at, `TLV type ${type} is not a byte`);
    }
    if (value.length > U16_MAX) {
      throw badValue(at, `TLV ${type} value of ${value.length} bytes exceeds 65535`);
    }
    total += TLV_HEADER + value.length;
  }
  return total;
}

function plan(repr: ProxyV2Repr, at: number): Plan {
  if (COMMAND[repr.command] === undefined) throw badValue(at, `unknown command "${repr.command}"`);
  const fam = famByte(repr, at);
  const bodyLength = ADDRESS_BLOCK[fam >> 4]! + tlvsLength(repr.tlvs, at);
  // The length field is 16 bits: a larger header cannot be expressed at all.
  if (bodyLength > U16_MAX) throw badValue(at, `header body of ${bodyLength} bytes exceeds 65535`);
  return { fam, bodyLength };
}

/** Total bytes `encodeProxyV2` writes for `repr`; throws BAD_VALUE like the encoder. */
export function proxyV2Length(repr: ProxyV2Repr): number {
  return PROXY_V2_HEADER_LENGTH + plan(repr, 0).bodyLength;
}

function ensureRoom(buf: Uint8Array, offset: number, n: number): void {
  if (offset < 0 || offset + n > buf.length) {
    throw new CodecError(
      CodecErrorCode.noRoom,
      offset,
      `PROXY v2 header needs ${n} bytes, buffer has ${Math.max(0, buf.length - offset)}`,
    );
  }
}

function writeAddresses(buf: Uint8Array, p: number, src: Endpoint, dst: Endpoint): number {
  const n = src.addr.length;
  buf.set(src.addr, p);
  buf.set(dst.addr, p + n);
  writeU16(buf, p + 2 * n, src.port);
  writeU16(buf, p + 2 * n + 2, dst.port);
  return p + 2 * n + 4;
}

/** Writes the header at `offset`; returns the bytes written. */
export function encodeProxyV2(repr: ProxyV2Repr, buf: Uint8Array, offset: number): number {
  const { fam, bodyLength } = plan(repr, offset);
  const total = PROXY_V2_HEADER_LENGTH + bodyLength;
  ensureRoom(buf, offset, total);
  buf.set(PROXY_V2_SIGNATURE, offset);
  buf[offset + 12] = (VERSION << 4) | COMMAND[repr.command];
  buf[offset + 13] = fam;
  writeU16(buf, offset + 14, bodyLength);
  let p = offset + PROXY_V2_HEADER_LENGTH;
  if (repr.source !== undefined && repr.destination !== undefined) {
    p = writeAddresses(buf, p, repr.source, repr.destination);
  }
  for (const { type, value } of repr.tlvs) {
    buf[p] = type;
    writeU16(buf, p + 1, value.length);
    buf.set(value, p + TLV_HEADER);
    p += TLV_HEADER + value.length;
  }
  return total;
}

// --- decoding -------------------------------------------------------------

/** Signature check only: true when the 12 signature bytes are all there and match. */
export function isProxyV2(buf: Uint8Array, offset: number, end: number): boolean {
  const stop = Math.min(end, buf.length);
  if (offset < 0 || offset + PROXY_V2_SIGNATURE.length > stop) return false;
  return PROXY_V2_SIGNATURE.every((b, i) => buf[offset + i] === b);
}

/**
 * A mismatch in a partial signature is already a wrong protocol, so it is
 * reported as such rather than as TRUNCATED.
 */
function checkSignature(buf: Uint8Array, offset: number, stop: number): void {
  const avail = Math.min(PROXY_V2_SIGNATURE.length, Math.max(0, stop - offset));
  for (let i = 0; i < avail; i++) {
    if (buf[offset + i] !== PROXY_V2_SIGNATURE[i]) {
      throw new CodecError(CodecErrorCode.badSignature, offset + i, "not a PROXY v2 signature");
    }
  }
  need(stop, offset, PROXY_V2_HEADER_LENGTH, "PROXY v2 header");
}

function readCommand(verCmd: number, at: number): ProxyV2Command {
  if (verCmd >> 4 !== VERSION) {
    throw new CodecError(CodecErrorCode.badVersion, at, `PROXY v2 version ${verCmd >> 4}`);
  }
  const cmd = verCmd & 0x0f;
  if (cmd === COMMAND.local) return "local";
  if (cmd === COMMAND.proxy) return "proxy";
  throw new CodecError(CodecErrorCode.badVersion, at, `PROXY v2 command ${cmd}`);
}

interface Family {
  readonly addrLength: 0 | 4 | 16;
  readonly transport: ProxyV2Transport;
}

/** Only the fam bytes the spec lists are accepted; it tells receivers to reject the rest. */
function readFamily(fam: number, at: number): Family {
  const family = fam >> 4;
  if (family === FAMILY.unix) {
    throw new CodecError(CodecErrorCode.unsupported, at, "PROXY v2 AF_UNIX addresses");
  }
  const transport = TRANSPORT_BY_NIBBLE[fam & 0x0f];
  if (family > FAMILY.unix || transport === undefined) {
    throw badValue(at, `PROXY v2 family/transport byte 0x${fam.toString(16)}`);
  }
  if ((family === FAMILY.unspec) !== (transport === "unspec")) {
    throw badValue(at, `PROXY v2 family/transport byte 0x${fam.toString(16)} is not defined`);
  }
  if (family === FAMILY.unspec) return { addrLength: 0, transport };
  return { addrLength: family === FAMILY.inet ? 4 : 16, transport };
}

function readTlvs(buf: Uint8Array, start: number, stop: number): ProxyV2TlvEntry[] {
  const tlvs: ProxyV2TlvEntry[] = [];
  for (let p = start; p < stop; ) {
    if (p + TLV_HEADER > stop) {
      throw new CodecError(CodecErrorCode.optionOverrun, p, "TLV header runs past the header");
    }
    const end = p + TLV_HEADER + readU16(buf, p + 1);
    if (end > stop) {
      throw new CodecError(CodecErrorCode.optionOverrun, p, `TLV ${buf[p]} runs past the header`);
    }
    tlvs.push({ type: buf[p]!, value: buf.slice(p + TLV_HEADER, end) });
    p = end;
  }
  return tlvs;
}

function readEndpoint(buf: Uint8Array, addrAt: number, n: number, portAt: number): Endpoint {
  return { addr: buf.slice(addrAt, addrAt + n), port: readU16(buf, portAt) };
}

/**
 * Strict decoder. Addresses and TLV values are copied, so the repr outlives
 * `buf`. TLV contents (CRC32C, SSL sub-TLVs) are returned as found, not checked.
 */
export function decodeProxyV2(
  buf: Uint8Array,
  offset: number,
  end: number,
): { repr: ProxyV2Repr; length: number } {
  const stop = Math.min(end, buf.length);
  checkSignature(buf, offset, stop);
  const command = readCommand(buf[offset + 12]!, offset + 12);
  const { addrLength, transport } = readFamily(buf[offset + 13]!, offset + 13);
  const bodyLength = readU16(buf, offset + 14);
  const addrBlock = addrLength * 2 + (addrLength ? 4 : 0);
  if (bodyLength < addrBlock) {
    throw new CodecError(
      CodecErrorCode.badTotalLength,
      offset + 14,
      `PROXY v2 length ${bodyLength} is shorter than its ${addrBlock}-byte address block`,
    );
  }
  const body = offset + PROXY_V2_HEADER_LENGTH;
  need(stop, body, bodyLength, "PROXY v2 body");
  const tlvs = readTlvs(buf, body + addrBlock, body + bodyLength);
  const length = PROXY_V2_HEADER_LENGTH + bodyLength;
  if (addrLength === 0) return { repr: { command, transport, tlvs }, length };
  const ports = body + 2 * addrLength;
  const source = readEndpoint(buf, body, addrLength, ports);
  const destination = readEndpoint(buf, body + addrLength, addrLength, ports + 2);
  return { repr: { command, transport, source, destination, tlvs }, length };
}
