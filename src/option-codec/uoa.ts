import { familyOf, type IpAddress } from "./address.js";
import { readU16, writeU16 } from "./bytes.js";
import { CodecError, CodecErrorCode, need } from "./errors.js";
import { IpProtocol } from "./ipv4.js";

/** DPVS's UOA option: type 31 (copy bit clear), then port and address. */
export const UOA_OPTION_TYPE = 0x1f;
export const OPP_HEADER_LENGTH = 4;
export const OPP_PROTOCOL = IpProtocol.uoaOpp;
/** DPVS `uoa_max_trail`: the first N datagrams of a flow carry the option. */
export const UOA_DEFAULT_MAX_TRAIL = 3;

export interface UoaRepr {
  readonly addr: IpAddress;
  readonly port: number;
}

export function uoaOptionLength(family: 4 | 6): number {
  return family === 4 ? 8 : 20;
}

export function encodeUoaOption(repr: UoaRepr, buf: Uint8Array, off: number): number {
  const len = uoaOptionLength(familyOf(repr.addr));
  need(buf.length, off, len, "UOA option output");
  buf[off] = UOA_OPTION_TYPE;
  buf[off + 1] = len;
  writeU16(buf, off + 2, repr.port);
  buf.set(repr.addr, off + 4);
  return len;
}

export function decodeUoaOption(buf: Uint8Array, off: number, end: number): UoaRepr {
  need(end, off, 2, "UOA option");
  if (buf[off] !== UOA_OPTION_TYPE) {
    throw new CodecError(
      CodecErrorCode.badCarrier,
      off,
      `option type ${buf[off]}, expected UOA ${UOA_OPTION_TYPE}`,
    );
  }
  const len = buf[off + 1]!;
  if (len !== 8 && len !== 20) {
    throw new CodecError(
      CodecErrorCode.badOptionLength,
      off + 1,
      `UOA length ${len}, expected 8 or 20`,
    );
  }
  need(end, off, len, "UOA option");
  return { port: readU16(buf, off + 2), addr: buf.slice(off + 4, off + len) };
}

/**
 * The "opp" private header that sits between IP and UDP: version<<4
 * (1 = v4 address, 2 = v6), the inner protocol (17), and the length of
 * this header plus the option.
 */
export interface OppRepr {
  readonly protocol: number;
  readonly uoa: UoaRepr;
}

export function oppLength(repr: OppRepr): number {
  return OPP_HEADER_LENGTH + uoaOptionLength(familyOf(repr.uoa.addr));
}

export function encodeOpp(repr: OppRepr, buf: Uint8Array, off: number): number {
  const family = familyOf(repr.uoa.addr);
  const len = OPP_HEADER_LENGTH + uoaOptionLength(family);
  need(buf.length, off, len, "UOA opp header output");
  buf[off] = (family === 4 ? 1 : 2) << 4;
  buf[off + 1] = repr.protocol;
  writeU16(buf, off + 2, len);
  encodeUoaOption(repr.uoa, buf, off + OPP_HEADER_LENGTH);
  return len;
}

/** Decodes the opp header at `off`; `length` is where the inner header starts. */
export function decodeOpp(buf: Uint8Array, off: number, end: number): OppRepr & { length: number } {
  need(end, off, OPP_HEADER_LENGTH, "UOA opp header");
  const version = buf[off]! >> 4;
  if (version !== 1 && version !== 2) {
    throw new CodecError(CodecErrorCode.badVersion, off, `opp version ${version}, expected 1 or 2`);
  }
  const length = readU16(buf, off + 2);
  if (length < OPP_HEADER_LENGTH + 2) {
    throw new CodecError(CodecErrorCode.badTotalLength, off + 2, `opp length ${length} too short`);
  }
  need(end, off, length, "UOA opp header");
  const uoa = decodeUoaOption(buf, off + OPP_HEADER_LENGTH, off + length);
  if (OPP_HEADER_LENGTH + uoaOptionLength(familyOf(uoa.addr)) !== length) {
    throw new CodecError(
      CodecErrorCode.badTotalLength,
      off + 2,
      `opp length ${length} disagrees with its option`,
    );
  }
  if ((version === 1) !== (uoa.addr.length === 4)) {
    throw new CodecError(
      CodecErrorCode.badCarrier,
      off,
      `opp version ${version} with a ${uoa.addr.length}-byte address`,
    );
  }
  return { protocol: buf[off + 1]!, uoa, length };
}
