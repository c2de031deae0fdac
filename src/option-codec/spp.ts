import { type Endpoint, isV4Mapped, v4Mapped } from "./address.js";
import { readU16, writeU16 } from "./bytes.js";
import { CodecError, CodecErrorCode, need } from "./errors.js";

// Simple Proxy Protocol (Cloudflare Spectrum UDP, Tencent EdgeOne): a fixed
// header in front of every datagram's payload:
//   be16 magic 0x56EC, client addr(16), proxy addr(16), be16 client port, be16 proxy port.

export const SPP_MAGIC = 0x56ec;
export const SPP_LENGTH = 38;

/**
 * Addresses are 4 bytes for IPv4 and 16 for IPv6. The wire always carries 16,
 * with IPv4 as ::ffff:a.b.c.d; the decoder unmaps such addresses to 4 bytes
 * because that is what an SPP sender means by them, and it matches how the
 * other carriers hand out v4 clients. So a 16-byte v4-mapped address given to
 * the encoder comes back from the decoder as 4 bytes.
 */
export interface SppRepr {
  readonly client: Endpoint;
  readonly proxy: Endpoint;
}

const CLIENT_ADDR = 2;
const PROXY_ADDR = 18;
const CLIENT_PORT = 34;
const PROXY_PORT = 36;

function wireAddress(e: Endpoint, what: string, at: number): Uint8Array {
  if (!Number.isInteger(e.port) || e.port < 0 || e.port > 0xffff) {
    throw new CodecError(CodecErrorCode.badValue, at, `${what} port ${e.port} is not in 0-65535`);
  }
  if (e.addr.length === 4) return v4Mapped(e.addr);
  if (e.addr.length === 16) return e.addr;
  throw new CodecError(CodecErrorCode.badValue, at, `${what} address of ${e.addr.length} bytes`);
}

/** Writes the 38-byte header at `offset`; returns SPP_LENGTH. */
export function encodeSpp(repr: SppRepr, buf: Uint8Array, offset: number): number {
  const client = wireAddress(repr.client, "client", offset);
  const proxy = wireAddress(repr.proxy, "proxy", offset);
  if (offset < 0 || offset + SPP_LENGTH > buf.length) {
    throw new CodecError(
      CodecErrorCode.noRoom,
      offset,
      `SPP header needs ${SPP_LENGTH} bytes, buffer has ${Math.max(0, buf.length - offset)}`,
    );
  }
  writeU16(buf, offset, SPP_MAGIC);
  buf.set(client, offset + CLIENT_ADDR);
  buf.set(proxy, offset + PROXY_ADDR);
  writeU16(buf, offset + CLIENT_PORT, repr.client.port);
  writeU16(buf, offset + PROXY_PORT, repr.proxy.port);
  return SPP_LENGTH;
}

/** Magic check only; two bytes say little, so use it where SPP is expected anyway. */
export function isSpp(buf: Uint8Array, offset: number, end: number): boolean {
  const stop = Math.min(end, buf.length);
  return offset >= 0 && offset + 2 <= stop && readU16(buf, offset) === SPP_MAGIC;
}

/** A wrong first byte is already a wrong magic, even when the second is missing. */
function checkMagic(buf: Uint8Array, offset: number, stop: number): void {
  if (offset < stop && buf[offset] !== SPP_MAGIC >> 8) {
    throw new CodecError(CodecErrorCode.badSignature, offset, "not an SPP magic");
  }
  if (offset + 1 < stop && buf[offset + 1] !== (SPP_MAGIC & 0xff)) {
    throw new CodecError(CodecErrorCode.badSignature, offset + 1, "not an SPP magic");
  }
  need(stop, offset, SPP_LENGTH, "SPP header");
}

function readAddress(buf: Uint8Array, at: number): Uint8Array {
  const addr = buf.slice(at, at + 16);
  return isV4Mapped(addr) ? addr.slice(12) : addr;
}

/** Decodes the header at `offset`; it is always SPP_LENGTH bytes long. */
export function decodeSpp(buf: Uint8Array, offset: number, end: number): SppRepr {
  const stop = Math.min(end, buf.length);
  checkMagic(buf, offset, stop);
  return {
    client: {
      addr: readAddress(buf, offset + CLIENT_ADDR),
      port: readU16(buf, offset + CLIENT_PORT),
    },
    proxy: { addr: readAddress(buf, offset + PROXY_ADDR), port: readU16(buf, offset + PROXY_PORT) },
  };
}

function writeMapped(
  buf: Uint8Array,
  at: number,
  addr: Uint8Array,
  off: number,
  len: number,
): void {
  if (len === 16) {
    for (let i = 0; i < 16; i++) buf[at + i] = addr[off + i]!;
    return;
  }
  buf.fill(0, at, at + 10);
  buf[at + 10] = 0xff;
  buf[at + 11] = 0xff;
  for (let i = 0; i < 4; i++) buf[at + 12 + i] = addr[off + i]!;
}

/**
 * encodeSpp without the Endpoint objects, for the gateway's per-datagram
 * path: addresses are (array, offset, 4 | 16). The caller has checked room.
 */
export function writeSppHeader(
  buf: Uint8Array,
  offset: number,
  client: Uint8Array,
  clientOff: number,
  clientLen: 4 | 16,
  clientPort: number,
  proxy: Uint8Array,
  proxyOff: number,
  proxyLen: 4 | 16,
  proxyPort: number,
): number {
  writeU16(buf, offset, SPP_MAGIC);
  writeMapped(buf, offset + CLIENT_ADDR, client, clientOff, clientLen);
  writeMapped(buf, offset + PROXY_ADDR, proxy, proxyOff, proxyLen);
  writeU16(buf, offset + CLIENT_PORT, clientPort);
  writeU16(buf, offset + PROXY_PORT, proxyPort);
  return SPP_LENGTH;
}
