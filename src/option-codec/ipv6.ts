import type { IpAddress } from "./address.js";
import { readU16, readU32, writeU16, writeU32 } from "./bytes.js";
import { CodecError, CodecErrorCode, need } from "./errors.js";
import { IpProtocol } from "./ipv4.js";

export const Ipv6Field = {
  versionClassFlow: 0,
  payloadLength: 4,
  nextHeader: 6,
  hopLimit: 7,
  src: 8,
  dst: 24,
} as const;

export const IPV6_HEADER = 40;

/**
 * A chain longer than this is refused: real stacks see at most a handful,
 * and the bound keeps a crafted chain from costing more than a few steps.
 */
export const MAX_EXTENSION_HEADERS = 16;

/** A checked view over the fixed IPv6 header. */
export class Ipv6Packet {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(buf: Uint8Array, off = 0, end = buf.length): this {
    need(end, off, IPV6_HEADER, "IPv6 header");
    const v = buf[off]! >> 4;
    if (v !== 6)
      throw new CodecError(CodecErrorCode.badVersion, off, `IP version ${v}, expected 6`);
    const pl = readU16(buf, off + Ipv6Field.payloadLength);
    if (off + IPV6_HEADER + pl > end) {
      throw new CodecError(
        CodecErrorCode.badTotalLength,
        off + Ipv6Field.payloadLength,
        `IPv6 payload length ${pl} > ${end - off - IPV6_HEADER} bytes received`,
      );
    }
    this.buf = buf;
    this.off = off;
    return this;
  }

  get payloadLength(): number {
    return readU16(this.buf, this.off + Ipv6Field.payloadLength);
  }
  get nextHeader(): number {
    return this.buf[this.off + Ipv6Field.nextHeader]!;
  }
  get srcOffset(): number {
    return this.off + Ipv6Field.src;
  }
  get dstOffset(): number {
    return this.off + Ipv6Field.dst;
  }
  get end(): number {
    return this.off + IPV6_HEADER + this.payloadLength;
  }
}

export function isExtensionHeader(nh: number): boolean {
  return (
    nh === IpProtocol.hopByHop ||
    nh === IpProtocol.ipv6Route ||
    nh === IpProtocol.ipv6Fragment ||
    nh === IpProtocol.ipv6DestOpts ||
    nh === IpProtocol.ah ||
    nh === IpProtocol.mobility
  );
}

/** Result of walking the extension-header chain; reused between packets. */
export class Ipv6Chain {
  /** The upper-layer protocol (or 59 / an unknown value). */
  protocol = 0;
  /** Offset of the upper-layer header. */
  offset = 0;
  /** Offset of the next-header byte that names `protocol` (to rewrite it). */
  protocolFieldOffset = 0;
  count = 0;
  fragmentOffset = 0;
  isFragment = false;

  /**
   * Walks from the fixed header to the first non-extension header. Every
   * step moves forward by at least 8 bytes, so the walk ends; a chain that
   * overruns the payload, or is longer than MAX_EXTENSION_HEADERS, throws.
   */
  walk(buf: Uint8Array, off: number, end: number): this {
    need(Math.min(end, buf.length), off, IPV6_HEADER, "IPv6 header");
    let nh = buf[off + Ipv6Field.nextHeader]!;
    let field = off + Ipv6Field.nextHeader;
    let p = off + IPV6_HEADER;
    this.count = 0;
    this.isFragment = false;
    this.fragmentOffset = 0;
    while (isExtensionHeader(nh)) {
      if (++this.count > MAX_EXTENSION_HEADERS) {
        throw new CodecError(
          CodecErrorCode.extHeaderChainTooLong,
          p,
          `more than ${MAX_EXTENSION_HEADERS} IPv6 extension headers`,
        );
      }
      if (p + 8 > end) {
        throw new CodecError(
          CodecErrorCode.extHeaderOverrun,
          p,
          `IPv6 extension header ${nh} truncated`,
        );
      }
      let len: number;
      if (nh === IpProtocol.ipv6Fragment) {
        len = 8;
        const fo = readU16(buf, p + 2);
        this.isFragment = true;
        this.fragmentOffset = fo >> 3;
      } else if (nh === IpProtocol.ah) {
        len = (buf[p + 1]! + 2) * 4;
      } else {
        len = (buf[p + 1]! + 1) * 8;
      }
      if (p + len > end) {
        throw new CodecError(
          CodecErrorCode.extHeaderOverrun,
          p,
          `IPv6 extension header ${nh} of ${len} bytes runs past the packet`,
        );
      }
      field = p;
      nh = buf[p]!;
      p += len;
    }
    this.protocol = nh;
    this.offset = p;
    this.protocolFieldOffset = field;
    return this;
  }
}

export interface Ipv6ExtensionHeader {
  readonly type: number;
  /** The header's bytes after its next-header byte. */
  readonly data: Uint8Array;
}

export interface Ipv6Repr {
  readonly src: IpAddress;
  readonly dst: IpAddress;
  /** The upper-layer protocol after the extension headers. */
  readonly protocol: number;
  readonly hopLimit: number;
  readonly trafficClass: number;
  readonly flowLabel: number;
  readonly extensionHeaders: readonly Ipv6ExtensionHeader[];
  /** Bytes after the extension headers. */
  readonly payloadLength: number;
}

export function ipv6Defaults(
  src: IpAddress,
  dst: IpAddress,
  protocol: number,
  payloadLength: number,
): Ipv6Repr {
  return {
    src,
    dst,
    protocol,
    hopLimit: 64,
    trafficClass: 0,
    flowLabel: 0,
    extensionHeaders: [],
    payloadLength,
  };
}

const view = new Ipv6Packet();
const chain = new Ipv6Chain();

export function parseIpv6Header(
  buf: Uint8Array,
  off = 0,
  end = buf.length,
): Ipv6Repr & { headerLength: number } {
  const p = view.wrap(buf, off, end);
  const c = chain.walk(buf, off, p.end);
  const ext: Ipv6ExtensionHeader[] = [];
  let nh = p.nextHeader;
  let q = off + IPV6_HEADER;
  while (q < c.offset) {
    const len =
      nh === IpProtocol.ipv6Fragment
        ? 8
        : nh === IpProtocol.ah
          ? (buf[q + 1]! + 2) * 4
          : (buf[q + 1]! + 1) * 8;
    ext.push({ type: nh, data: buf.slice(q + 1, q + len) });
    nh = buf[q]!;
    q += len;
  }
  const vcf = readU32(buf, off);
  return {
    src: buf.slice(p.srcOffset, p.srcOffset + 16),
    dst: buf.slice(p.dstOffset, p.dstOffset + 16),
    protocol: c.protocol,
    hopLimit: buf[off + Ipv6Field.hopLimit]!,
    trafficClass: (vcf >>> 20) & 0xff,
    flowLabel: vcf & 0xfffff,
    extensionHeaders: ext,
    payloadLength: p.end - c.offset,
    headerLength: c.offset - off,
  };
}

export function ipv6HeaderLength(r: Ipv6Repr): number {
  let n = IPV6_HEADER;
  for (const e of r.extensionHeaders) n += 1 + e.data.length;
  return n;
}

/** Writes the fixed header and extension headers; returns their length. */
export function emitIpv6Header(r: Ipv6Repr, buf: Uint8Array, off = 0): number {
  const hl = ipv6HeaderLength(r);
  need(buf.length, off, hl, "IPv6 header output");
  if (r.src.length !== 16 || r.dst.length !== 16) {
    throw new CodecError(CodecErrorCode.badAddress, off, "IPv6 header needs 16-byte addresses");
  }
  writeU32(buf, off, (6 << 28) | ((r.trafficClass & 0xff) << 20) | (r.flowLabel & 0xfffff));
  writeU16(buf, off + Ipv6Field.payloadLength, hl - IPV6_HEADER + r.payloadLength);
  buf[off + Ipv6Field.hopLimit] = r.hopLimit;
  buf.set(r.src, off + Ipv6Field.src);
  buf.set(r.dst, off + Ipv6Field.dst);
  let field = off + Ipv6Field.nextHeader;
  let p = off + IPV6_HEADER;
  for (const e of r.extensionHeaders) {
    buf[field] = e.type;
    field = p;
    buf.set(e.data, p + 1);
    p += 1 + e.data.length;
  }
  buf[field] = r.protocol;
  return hl;
}
