import type { IpAddress } from "./address.js";
import { readU16, writeU16 } from "./bytes.js";
import { finish, sumBytes } from "./checksum.js";
import { CodecError, CodecErrorCode, need } from "./errors.js";
import { encodeIpOptions, type IpOption, ipOptionsLength, parseIpOptions } from "./ip-options.js";

/** Field offsets in the IPv4 header (RFC 791). */
export const Ipv4Field = {
  versionIhl: 0,
  tos: 1,
  totalLength: 2,
  id: 4,
  flagsFragment: 6,
  ttl: 8,
  protocol: 9,
  checksum: 10,
  src: 12,
  dst: 16,
} as const;

export const IPV4_MIN_HEADER = 20;
export const IPV4_MAX_HEADER = 60;

export const IpProtocol = {
  hopByHop: 0,
  icmp: 1,
  tcp: 6,
  udp: 17,
  ipv6Route: 43,
  ipv6Fragment: 44,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  ipv6NoNext: 59,
  ipv6DestOpts: 60,
  mobility: 135,
  /** DPVS UOA "opp" mode: a private header between IP and UDP. */
  uoaOpp: 248,
} as const;

/**
 * A checked view over an IPv4 header (smoltcp's Ipv4Packet). `wrap` checks
 * that the header and the total length fit in [off, end); after it, every
 * accessor is in bounds. Reusable: wrap it again for the next packet.
 */
export class Ipv4Packet {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(buf: Uint8Array, off = 0, end = buf.length): this {
    need(end, off, IPV4_MIN_HEADER, "IPv4 header");
    const vihl = buf[off]!;
    if (vihl >> 4 !== 4)
      throw new CodecError(CodecErrorCode.badVersion, off, `IP version ${vihl >> 4}, expected 4`);
    const hl = (vihl & 0x0f) * 4;
    if (hl < IPV4_MIN_HEADER)
      throw new CodecError(CodecErrorCode.badHeaderLength, off, `IPv4 IHL ${hl / 4} < 5`);
    need(end, off, hl, "IPv4 header with options");
    const total = readU16(buf, off + Ipv4Field.totalLength);
    if (total < hl) {
      throw new CodecError(
        CodecErrorCode.badTotalLength,
        off + 2,
        `IPv4 total length ${total} < header ${hl}`,
      );
    }
    if (off + total > end) {
      throw new CodecError(
        CodecErrorCode.badTotalLength,
        off + 2,
        `IPv4 total length ${total} > ${end - off} bytes received`,
      );
    }
    this.buf = buf;
    this.off = off;
    return this;
  }

  get headerLength(): number {
    return (this.buf[this.off]! & 0x0f) * 4;
  }
  get totalLength(): number {
    return readU16(this.buf, this.off + Ipv4Field.totalLength);
  }
  get protocol(): number {
    return this.buf[this.off + Ipv4Field.protocol]!;
  }
  get checksum(): number {
    return readU16(this.buf, this.off + Ipv4Field.checksum);
  }
  get fragmentOffset(): number {
    return readU16(this.buf, this.off + Ipv4Field.flagsFragment) & 0x1fff;
  }
  get moreFragments(): boolean {
    return (this.buf[this.off + Ipv4Field.flagsFragment]! & 0x20) !== 0;
  }
  get srcOffset(): number {
    return this.off + Ipv4Field.src;
  }
  get dstOffset(): number {
    return this.off + Ipv4Field.dst;
  }
  get payloadOffset(): number {
    return this.off + this.headerLength;
  }
  get end(): number {
    return this.off + this.totalLength;
  }

  computeChecksum(): number {
    const b = this.buf;
    const o = this.off;
    const saved = readU16(b, o + Ipv4Field.checksum);
    writeU16(b, o + Ipv4Field.checksum, 0);
    const c = finish(sumBytes(b, o, this.headerLength));
    writeU16(b, o + Ipv4Field.checksum, saved);
    return c;
  }
  fillChecksum(): void {
    writeU16(this.buf, this.off + Ipv4Field.checksum, 0);
    writeU16(
      this.buf,
      this.off + Ipv4Field.checksum,
      finish(sumBytes(this.buf, this.off, this.headerLength)),
    );
  }
  verifyChecksum(): boolean {
    return finish(sumBytes(this.buf, this.off, this.headerLength)) === 0;
  }
}

export interface Ipv4Repr {
  readonly src: IpAddress;
  readonly dst: IpAddress;
  readonly protocol: number;
  readonly ttl: number;
  readonly tos: number;
  readonly id: number;
  readonly dontFragment: boolean;
  readonly moreFragments: boolean;
  readonly fragmentOffset: number;
  readonly options: readonly IpOption[];
  readonly payloadLength: number;
}

export function ipv4Defaults(
  src: IpAddress,
  dst: IpAddress,
  protocol: number,
  payloadLength: number,
): Ipv4Repr {
  return {
    src,
    dst,
    protocol,
    ttl: 64,
    tos: 0,
    id: 0,
    dontFragment: true,
    moreFragments: false,
    fragmentOffset: 0,
    options: [],
    payloadLength,
  };
}

const view = new Ipv4Packet();

export function parseIpv4Header(buf: Uint8Array, off = 0, end = buf.length): Ipv4Repr {
  const p = view.wrap(buf, off, end);
  const ff = readU16(buf, off + Ipv4Field.flagsFragment);
  return {
    src: buf.slice(p.srcOffset, p.srcOffset + 4),
    dst: buf.slice(p.dstOffset, p.dstOffset + 4),
    protocol: p.protocol,
    ttl: buf[off + Ipv4Field.ttl]!,
    tos: buf[off + Ipv4Field.tos]!,
    id: readU16(buf, off + Ipv4Field.id),
    dontFragment: (ff & 0x4000) !== 0,
    moreFragments: (ff & 0x2000) !== 0,
    fragmentOffset: ff & 0x1fff,
    options: parseIpOptions(buf, off + IPV4_MIN_HEADER, off + p.headerLength),
    payloadLength: p.totalLength - p.headerLength,
  };
}

export function ipv4HeaderLength(r: Ipv4Repr): number {
  return IPV4_MIN_HEADER + ipOptionsLength(r.options);
}

/** Writes the header with a valid checksum; returns its length. */
export function emitIpv4Header(r: Ipv4Repr, buf: Uint8Array, off = 0): number {
  const optLen = ipOptionsLength(r.options);
  const hl = IPV4_MIN_HEADER + optLen;
  if (hl > IPV4_MAX_HEADER)
    throw new CodecError(CodecErrorCode.noRoom, off, `IPv4 options of ${optLen} bytes exceed 40`);
  need(buf.length, off, hl, "IPv4 header output");
  if (r.src.length !== 4 || r.dst.length !== 4) {
    throw new CodecError(CodecErrorCode.badAddress, off, "IPv4 header needs 4-byte addresses");
  }
  if (hl + r.payloadLength > 0xffff) {
    throw new CodecError(
      CodecErrorCode.badValue,
      off,
      `IPv4 packet of ${hl + r.payloadLength} bytes`,
    );
  }
  buf[off] = 0x40 | (hl / 4);
  buf[off + Ipv4Field.tos] = r.tos;
  writeU16(buf, off + Ipv4Field.totalLength, hl + r.payloadLength);
  writeU16(buf, off + Ipv4Field.id, r.id);
  writeU16(
    buf,
    off + Ipv4Field.flagsFragment,
    (r.dontFragment ? 0x4000 : 0) | (r.moreFragments ? 0x2000 : 0) | (r.fragmentOffset & 0x1fff),
  );
  buf[off + Ipv4Field.ttl] = r.ttl;
  buf[off + Ipv4Field.protocol] = r.protocol;
  buf.set(r.src, off + Ipv4Field.src);
  buf.set(r.dst, off + Ipv4Field.dst);
  encodeIpOptions(r.options, buf, off + IPV4_MIN_HEADER);
  view.buf = buf;
  view.off = off;
  view.fillChecksum();
  return hl;
}
