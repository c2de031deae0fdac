import {
  checkPort,
  type Family,
  formatAddress,
  formatIPv6,
  parseAddress,
  type SockAddr,
} from "./address.js";
import { SockoptError, SockoptErrorCode } from "./errors.js";

/**
 * The getsockopt ABIs of kmod/include/uapi/toasim.h, as tables and pure
 * encode/decode functions over byte buffers (no socket needed, so they are
 * unit-tested against byte vectors). test/unit/sockopt-abi.test.ts compiles
 * the header and compares every offset and size with these tables, so the
 * two cannot drift apart.
 */

/** getsockopt level of every option here (IPPROTO_IP = SOL_IP). */
export const SOL_IP = 0;

/** Linux AF_* values, as the layouts carry them (host order where 16 bits). */
export const AddressFamily = { INET: 2, INET6: 10 } as const;

/** The optnames of toasim.h, keyed by their C macro names. */
export const Optname = {
  TOASIM_SO_TTM_PEER: 1345,
  TOASIM_SO_UOA: 2048,
  TOASIM_SO_TOA_CTL: 2049,
  TOASIM_SO_TOA_LOOKUP: 4096,
} as const;

/** Offsets and sizes of every member, by its C name. */
export const Layout = {
  toaCtl: {
    struct: "toasim_toa_ctl",
    optname: Optname.TOASIM_SO_TOA_CTL,
    size: 20,
    fields: {
      addr: { offset: 0, size: 16 },
      port: { offset: 16, size: 2 },
      family: { offset: 18, size: 1 },
      toa_set: { offset: 19, size: 1 },
    },
  },
  toaLookup: {
    struct: "toasim_toa_lookup",
    optname: Optname.TOASIM_SO_TOA_LOOKUP,
    size: 20,
    fields: {
      saddr: { offset: 0, size: 16 },
      port: { offset: 16, size: 2 },
      pad: { offset: 18, size: 2 },
    },
  },
  ttmPeer: {
    struct: "toasim_ttm_peer",
    optname: Optname.TOASIM_SO_TTM_PEER,
    size: 20,
    fields: {
      af: { offset: 0, size: 2 },
      port: { offset: 2, size: 2 },
      addr: { offset: 4, size: 16 },
    },
  },
  uoaNoa: {
    struct: "toasim_uoa_noa",
    optname: Optname.TOASIM_SO_UOA,
    size: 56,
    fields: {
      saddr: { offset: 0, size: 16 },
      daddr: { offset: 16, size: 16 },
      sport: { offset: 32, size: 2 },
      dport: { offset: 34, size: 2 },
      af: { offset: 36, size: 1 },
      real_saddr: { offset: 37, size: 16 },
      real_sport: { offset: 53, size: 2 },
      real_af: { offset: 55, size: 1 },
    },
  },
  uoaDpvs: {
    struct: "toasim_uoa_dpvs",
    optname: Optname.TOASIM_SO_UOA,
    size: 58,
    fields: {
      af: { offset: 0, size: 2 },
      saddr: { offset: 2, size: 16 },
      daddr: { offset: 18, size: 16 },
      sport: { offset: 34, size: 2 },
      dport: { offset: 36, size: 2 },
      real_af: { offset: 38, size: 2 },
      real_saddr: { offset: 40, size: 16 },
      real_sport: { offset: 56, size: 2 },
    },
  },
} as const;

export type LayoutName = keyof typeof Layout;

/** The two buffer forms of optname 2048; the kernel side tells them apart by length. */
export type UoaForm = "noa" | "dpvs";

export interface ToaCtl extends SockAddr {
  /** false: no TOA was seen, and the address is the socket's own peer. */
  readonly toaSet: boolean;
}

/** Input of a UOA lookup: the datagram's source as received and the server's bound address. */
export interface UoaQuery {
  readonly source: SockAddr;
  readonly dest: SockAddr;
}

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function need(b: Uint8Array, size: number, what: string): void {
  if (b.length < size) {
    throw new SockoptError(
      SockoptErrorCode.shortBuffer,
      `${what}: ${b.length} bytes, the layout needs ${size}`,
      null,
      { got: b.length },
    );
  }
}

/** AF_INET / AF_INET6 -> 4 / 6. */
export function familyOfAf(af: number, what: string): Family {
  if (af === AddressFamily.INET) return 4;
  if (af === AddressFamily.INET6) return 6;
  throw new SockoptError(
    SockoptErrorCode.badFamily,
    `${what}: address family ${af} is neither AF_INET (2) nor AF_INET6 (10)`,
    null,
    { got: af },
  );
}

export function afOfFamily(family: Family): number {
  return family === 4 ? AddressFamily.INET : AddressFamily.INET6;
}

/** An address into a 16-byte field: IPv4 in its first 4 bytes, the rest zero. */
function putAddr(b: Uint8Array, at: number, a: SockAddr): void {
  const bytes = parseAddress(a.family, a.address);
  b.fill(0, at, at + 16);
  b.set(bytes, at);
}

function getAddr(b: Uint8Array, at: number, family: Family, port: number): SockAddr {
  return { family, address: formatAddress(family, b, at), port };
}

function checkAddr(a: SockAddr, what: string): void {
  if (a.family !== 4 && a.family !== 6) {
    throw new SockoptError(
      SockoptErrorCode.invalidArgument,
      `${what}: family must be 4 or 6, got ${String(a.family)}`,
    );
  }
  checkPort(a.port, what);
}

function newBuffer(name: LayoutName, out: Uint8Array | undefined): Uint8Array {
  const size = Layout[name].size;
  const b = out ?? new Uint8Array(size);
  need(b, size, `${Layout[name].struct} buffer`);
  b.fill(0, 0, size);
  return b;
}

// --- 2049 TOA_CTL ---------------------------------------------------------

export function decodeToaCtl(b: Uint8Array): ToaCtl {
  const L = Layout.toaCtl;
  need(b, L.size, L.struct);
  const f = L.fields;
  const family = familyOfAf(b[f.family.offset] ?? 0, L.struct);
  const port = view(b).getUint16(f.port.offset, false);
  return { ...getAddr(b, f.addr.offset, family, port), toaSet: b[f.toa_set.offset] !== 0 };
}

/** The reply a decoder writes (for tests and fakes); zeroes `out` first. */
export function encodeToaCtl(v: ToaCtl, out?: Uint8Array): Uint8Array {
  checkAddr(v, Layout.toaCtl.struct);
  const b = newBuffer("toaCtl", out);
  const f = Layout.toaCtl.fields;
  putAddr(b, f.addr.offset, v);
  view(b).setUint16(f.port.offset, v.port, false);
  b[f.family.offset] = afOfFamily(v.family);
  b[f.toa_set.offset] = v.toaSet ? 1 : 0;
  return b;
}

// --- 4096 TOA_SO_GET_LOOKUP ------------------------------------------------

/** Always an IPv6 address (the ABI is for v6 clients of v4 sockets). */
export function decodeToaLookup(b: Uint8Array): SockAddr {
  const L = Layout.toaLookup;
  need(b, L.size, L.struct);
  return {
    family: 6,
    address: formatIPv6(b, L.fields.saddr.offset),
    port: view(b).getUint16(L.fields.port.offset, false),
  };
}

export function encodeToaLookup(v: SockAddr, out?: Uint8Array): Uint8Array {
  checkAddr(v, Layout.toaLookup.struct);
  if (v.family !== 6) {
    throw new SockoptError(
      SockoptErrorCode.invalidArgument,
      `${Layout.toaLookup.struct} holds an IPv6 address only`,
    );
  }
  const b = newBuffer("toaLookup", out);
  putAddr(b, Layout.toaLookup.fields.saddr.offset, v);
  view(b).setUint16(Layout.toaLookup.fields.port.offset, v.port, false);
  return b;
}

// --- 1345 ttm_peer ----------------------------------------------------------

export function decodeTtmPeer(b: Uint8Array): SockAddr {
  const L = Layout.ttmPeer;
  need(b, L.size, L.struct);
  const dv = view(b);
  const family = familyOfAf(dv.getUint16(L.fields.af.offset, HOST_LE), L.struct);
  return getAddr(b, L.fields.addr.offset, family, dv.getUint16(L.fields.port.offset, false));
}

export function encodeTtmPeer(v: SockAddr, out?: Uint8Array): Uint8Array {
  checkAddr(v, Layout.ttmPeer.struct);
  const b = newBuffer("ttmPeer", out);
  const f = Layout.ttmPeer.fields;
  const dv = view(b);
  dv.setUint16(f.af.offset, afOfFamily(v.family), HOST_LE);
  dv.setUint16(f.port.offset, v.port, false);
  putAddr(b, f.addr.offset, v);
  return b;
}

// --- 2048 UOA, both forms ---------------------------------------------------

function checkQuery(q: UoaQuery, what: string): Family {
  checkAddr(q.source, `${what} source`);
  checkAddr(q.dest, `${what} dest`);
  if (q.source.family !== q.dest.family) {
    throw new SockoptError(
      SockoptErrorCode.invalidArgument,
      `${what}: source and dest must have the same family (got ${q.source.family} and ${q.dest.family})`,
    );
  }
  return q.source.family;
}

/** The 56-byte noa request; the reply part is left zero. */
export function encodeUoaNoaRequest(q: UoaQuery, out?: Uint8Array): Uint8Array {
  const family = checkQuery(q, Layout.uoaNoa.struct);
  const b = newBuffer("uoaNoa", out);
  const f = Layout.uoaNoa.fields;
  const dv = view(b);
  putAddr(b, f.saddr.offset, q.source);
  putAddr(b, f.daddr.offset, q.dest);
  dv.setUint16(f.sport.offset, q.source.port, false);
  dv.setUint16(f.dport.offset, q.dest.port, false);
  b[f.af.offset] = afOfFamily(family);
  return b;
}

export function decodeUoaNoaRequest(b: Uint8Array): UoaQuery {
  const L = Layout.uoaNoa;
  need(b, L.size, L.struct);
  const f = L.fields;
  const dv = view(b);
  const family = familyOfAf(b[f.af.offset] ?? 0, L.struct);
  return {
    source: getAddr(b, f.saddr.offset, family, dv.getUint16(f.sport.offset, false)),
    dest: getAddr(b, f.daddr.offset, family, dv.getUint16(f.dport.offset, false)),
  };
}

/** Writes the reply part of a noa buffer, keeping the request part. */
export function encodeUoaNoaReply(v: SockAddr, b: Uint8Array): Uint8Array {
  const L = Layout.uoaNoa;
  checkAddr(v, L.struct);
  need(b, L.size, L.struct);
  const f = L.fields;
  putAddr(b, f.real_saddr.offset, v);
  view(b).setUint16(f.real_sport.offset, v.port, false);
  b[f.real_af.offset] = afOfFamily(v.family);
  return b;
}

export function decodeUoaNoaReply(b: Uint8Array): SockAddr {
  const L = Layout.uoaNoa;
  need(b, L.size, L.struct);
  const f = L.fields;
  const family = familyOfAf(b[f.real_af.offset] ?? 0, `${L.struct} real_af`);
  return getAddr(b, f.real_saddr.offset, family, view(b).getUint16(f.real_sport.offset, false));
}

/** The 58-byte DPVS request; the reply part is left zero. */
export function encodeUoaDpvsRequest(q: UoaQuery, out?: Uint8Array): Uint8Array {
  const family = checkQuery(q, Layout.uoaDpvs.struct);
  const b = newBuffer("uoaDpvs", out);
  const f = Layout.uoaDpvs.fields;
  const dv = view(b);
  dv.setUint16(f.af.offset, afOfFamily(family), HOST_LE);
  putAddr(b, f.saddr.offset, q.source);
  putAddr(b, f.daddr.offset, q.dest);
  dv.setUint16(f.sport.offset, q.source.port, false);
  dv.setUint16(f.dport.offset, q.dest.port, false);
  return b;
}

export function decodeUoaDpvsRequest(b: Uint8Array): UoaQuery {
  const L = Layout.uoaDpvs;
  need(b, L.size, L.struct);
  const f = L.fields;
  const dv = view(b);
  const family = familyOfAf(dv.getUint16(f.af.offset, HOST_LE), L.struct);
  return {
    source: getAddr(b, f.saddr.offset, family, dv.getUint16(f.sport.offset, false)),
    dest: getAddr(b, f.daddr.offset, family, dv.getUint16(f.dport.offset, false)),
  };
}

export function encodeUoaDpvsReply(v: SockAddr, b: Uint8Array): Uint8Array {
  const L = Layout.uoaDpvs;
  checkAddr(v, L.struct);
  need(b, L.size, L.struct);
  const f = L.fields;
  const dv = view(b);
  dv.setUint16(f.real_af.offset, afOfFamily(v.family), HOST_LE);
  putAddr(b, f.real_saddr.offset, v);
  dv.setUint16(f.real_sport.offset, v.port, false);
  return b;
}

export function decodeUoaDpvsReply(b: Uint8Array): SockAddr {
  const L = Layout.uoaDpvs;
  need(b, L.size, L.struct);
  const f = L.fields;
  const dv = view(b);
  const family = familyOfAf(dv.getUint16(f.real_af.offset, HOST_LE), `${L.struct} real_af`);
  return getAddr(b, f.real_saddr.offset, family, dv.getUint16(f.real_sport.offset, false));
}
