import { familyOf, type IpAddress } from "./address.js";
import { readU16, writeU16 } from "./bytes.js";
import { CodecError, CodecErrorCode, need } from "./errors.js";
import { TcpOptionKind, TFO_EXID } from "./tcp-options.js";

/**
 * How a dialect lays out the client address inside its TCP option
 * (docs/dialects.md). The kind is separate because vendors reuse one layout
 * under different kinds, and the same kind with different layouts.
 */
export const ToaLayout = {
  /** port(2) addr(4|16): DPVS, LVS, Tencent, noa, UCloud, ByteDance short form. */
  portAddr: "port-addr",
  /** port(2) addr(4) pad(2) vport(2) vaddr(4): ByteDance's 16-byte v4 form. */
  portAddrVaddr: "port-addr-vaddr",
  /** Kingsoft kgwttm `struct ttm_peer`: af(2) port(2) addr(16). */
  ttm: "ttm",
  /** version(1) addr(4|16), no port: Aliyun CDN (version 1 = v4, 2 = v6). */
  versionAddr: "version-addr",
} as const;
export type ToaLayout = (typeof ToaLayout)[keyof typeof ToaLayout];

export const TOA_LAYOUTS: readonly ToaLayout[] = Object.values(ToaLayout);

/**
 * Byte order of ttm_peer.af: unconfirmed (docs/dialects.md), so it is a setting.
 * "host" means the gateway host's order, little-endian on x86.
 */
export type ByteOrder = "host" | "network";

export interface ToaFormat {
  readonly kind: number;
  readonly layout: ToaLayout;
  readonly afOrder?: ByteOrder;
}

export interface ToaRepr {
  readonly addr: IpAddress;
  /** Absent in the version-addr layout, which carries no port. */
  readonly port?: number;
  readonly vaddr?: IpAddress;
  readonly vport?: number;
}

/** Linux address-family numbers, as ttm_peer carries them. */
export const LinuxAf = { inet: 2, inet6: 10 } as const;

export function toaLength(format: ToaFormat, family: 4 | 6): number {
  switch (format.layout) {
    case ToaLayout.portAddr:
      return family === 4 ? 8 : 20;
    case ToaLayout.portAddrVaddr:
      if (family !== 4)
        throw new CodecError(CodecErrorCode.unsupported, 0, "port-addr-vaddr TOA is IPv4 only");
      return 16;
    case ToaLayout.ttm:
      return 22;
    case ToaLayout.versionAddr:
      return family === 4 ? 7 : 19;
  }
}

function writeAf(buf: Uint8Array, off: number, af: number, order: ByteOrder): void {
  if (order === "network") writeU16(buf, off, af);
  else {
    buf[off] = af & 0xff;
    buf[off + 1] = af >> 8;
  }
}

function readAf(buf: Uint8Array, off: number, order: ByteOrder): number {
  return order === "network" ? readU16(buf, off) : buf[off]! | (buf[off + 1]! << 8);
}

/** Writes the whole option (kind and length included); returns its length. */
export function encodeToa(format: ToaFormat, repr: ToaRepr, buf: Uint8Array, off: number): number {
  const family = familyOf(repr.addr);
  const len = toaLength(format, family);
  need(buf.length, off, len, "TOA option output");
  if (format.kind < 2 || format.kind > 255) {
    throw new CodecError(
      CodecErrorCode.badValue,
      off,
      `TOA kind ${format.kind} is not an option kind`,
    );
  }
  buf[off] = format.kind;
  buf[off + 1] = len;
  const port = repr.port ?? 0;
  switch (format.layout) {
    case ToaLayout.portAddr:
      writeU16(buf, off + 2, port);
      buf.set(repr.addr, off + 4);
      break;
    case ToaLayout.portAddrVaddr: {
      writeU16(buf, off + 2, port);
      buf.set(repr.addr, off + 4);
      writeU16(buf, off + 8, 0);
      writeU16(buf, off + 10, repr.vport ?? 0);
      const vaddr = repr.vaddr ?? new Uint8Array(4);
      if (vaddr.length !== 4)
        throw new CodecError(CodecErrorCode.badAddress, off + 12, "vaddr must be IPv4");
      buf.set(vaddr, off + 12);
      break;
    }
    case ToaLayout.ttm:
      writeAf(buf, off + 2, family === 4 ? LinuxAf.inet : LinuxAf.inet6, format.afOrder ?? "host");
      writeU16(buf, off + 4, port);
      buf.fill(0, off + 6, off + 22);
      buf.set(repr.addr, off + 6);
      break;
    case ToaLayout.versionAddr:
      buf[off + 2] = family === 4 ? 1 : 2;
      buf.set(repr.addr, off + 3);
      break;
  }
  return len;
}

function badCarrier(off: number, why: string): CodecError {
  return new CodecError(CodecErrorCode.badCarrier, off, why);
}

/**
 * Decodes the option at `off` (its kind byte) as `format`. The length byte
 * decides the family, since one kind carries both (docs/dialects.md); a length
 * the layout does not define is BAD_CARRIER, as is TCP Fast Open's
 * experimental form, which shares kind 254.
 */
export function decodeToa(format: ToaFormat, buf: Uint8Array, off: number, end: number): ToaRepr {
  need(end, off, 2, "TOA option");
  const kind = buf[off]!;
  const len = buf[off + 1]!;
  if (kind !== format.kind) throw badCarrier(off, `option kind ${kind}, expected ${format.kind}`);
  if (len < 2)
    throw new CodecError(CodecErrorCode.badOptionLength, off + 1, `TOA length ${len} < 2`);
  need(end, off, len, "TOA option");
  if (
    kind === TcpOptionKind.experimental2 &&
    len >= 4 &&
    readU16(buf, off + 2) === TFO_EXID &&
    format.layout !== ToaLayout.ttm
  ) {
    throw badCarrier(off, "kind 254 with ExID 0xF989 is TCP Fast Open, not a TOA");
  }
  switch (format.layout) {
    case ToaLayout.portAddr:
      if (len !== 8 && len !== 20) throw badCarrier(off + 1, `TOA length ${len}, expected 8 or 20`);
      return { port: readU16(buf, off + 2), addr: buf.slice(off + 4, off + len) };
    case ToaLayout.portAddrVaddr:
      if (len === 8) return { port: readU16(buf, off + 2), addr: buf.slice(off + 4, off + 8) };
      if (len !== 16) throw badCarrier(off + 1, `TOA length ${len}, expected 8 or 16`);
      return {
        port: readU16(buf, off + 2),
        addr: buf.slice(off + 4, off + 8),
        vport: readU16(buf, off + 10),
        vaddr: buf.slice(off + 12, off + 16),
      };
    case ToaLayout.ttm: {
      if (len !== 22) throw badCarrier(off + 1, `ttm_peer option length ${len}, expected 22`);
      const af = readAf(buf, off + 2, format.afOrder ?? "host");
      if (af === LinuxAf.inet)
        return { port: readU16(buf, off + 4), addr: buf.slice(off + 6, off + 10) };
      if (af === LinuxAf.inet6)
        return { port: readU16(buf, off + 4), addr: buf.slice(off + 6, off + 22) };
      throw badCarrier(off + 2, `ttm_peer af ${af} is neither AF_INET nor AF_INET6`);
    }
    case ToaLayout.versionAddr: {
      const version = buf[off + 2] ?? 0;
      if (len === 7 && version === 1) return { addr: buf.slice(off + 3, off + 7) };
      if (len === 19 && version === 2) return { addr: buf.slice(off + 3, off + 19) };
      throw badCarrier(off + 1, `version-addr TOA length ${len} version ${version}`);
    }
  }
}
