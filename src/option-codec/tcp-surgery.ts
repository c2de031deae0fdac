import { readU16, writeU16 } from "./bytes.js";
import { adjust, sumBytes, sumCovering } from "./checksum.js";
import { CodecError } from "./errors.js";
import { Ipv4Field } from "./ipv4.js";
import {
  fillIpv4Checksum,
  fillL4Checksum,
  growthLimit,
  type PacketInfo,
  setIpLength,
} from "./packet.js";
import { TCP_MAX_HEADER, TCP_MIN_HEADER, TcpField, TcpFlag } from "./tcp.js";
import { TcpOptionCursor, TcpOptionKind } from "./tcp-options.js";

// Edits of TCP segments in place, with checksums kept valid. Each works on
// a packet already checked by PacketInfo.parse and updates that info.

export const InsertResult = {
  /** Inserted without touching the other options. */
  inserted: 0,
  /** Inserted after removing NOPs, stale TOAs or other options (DPVS order). */
  insertedAfterPruning: 1,
  /** No room within 40 option bytes, the MTU or the buffer: packet unchanged. */
  noRoom: 2,
} as const;
export type InsertResult = (typeof InsertResult)[keyof typeof InsertResult];

export interface InsertPolicy {
  /** Largest packet allowed after insertion (the path MTU toward the server). */
  readonly mtu: number;
  /** DPVS-style pruning when the option does not fit; false: give up instead. */
  readonly prune: boolean;
  /** Option kinds a client may have forged, removed first when pruning. */
  readonly staleKinds: readonly number[];
}

const cursor = new TcpOptionCursor();
const scratch = new Uint8Array(TCP_MAX_HEADER);

function ipLengthChanged(buf: Uint8Array, info: PacketInfo, newLength: number): void {
  if (info.family === 4) {
    const old = readU16(buf, Ipv4Field.totalLength);
    writeU16(buf, Ipv4Field.checksum, adjust(readU16(buf, Ipv4Field.checksum), old, newLength));
  }
  setIpLength(buf, info, newLength);
}

/**
 * Inserts the option `opt[optOff .. optOff+optLen)` right after the fixed
 * TCP header, NOP-padded to a multiple of 4, moving options and payload.
 * Fast path: one copyWithin and an RFC 1624 checksum update (the moved bytes
 * shift by a multiple of 4, so their sum is unchanged).
 */
export function insertTcpOption(
  buf: Uint8Array,
  info: PacketInfo,
  opt: Uint8Array,
  optOff: number,
  optLen: number,
  policy: InsertPolicy,
): InsertResult {
  const t = info.l4Offset;
  const hl = info.tcpHeaderLength;
  const padded = (optLen + 3) & ~3;
  const limit = growthLimit(buf, info, policy.mtu);
  if (hl + padded <= TCP_MAX_HEADER && info.length + padded <= limit) {
    const oldWord = readU16(buf, t + TcpField.dataOffset);
    const oldLen = info.length - t;
    const at = t + TCP_MIN_HEADER;
    buf.copyWithin(at + padded, at, info.length);
    for (let i = 0; i < optLen; i++) buf[at + i] = opt[optOff + i]!;
    for (let i = optLen; i < padded; i++) buf[at + i] = TcpOptionKind.nop;
    buf[t + TcpField.dataOffset] =
      (((hl + padded) / 4) << 4) | (buf[t + TcpField.dataOffset]! & 0x0f);
    const newWord = readU16(buf, t + TcpField.dataOffset);
    const newLen = oldLen + padded;
    const csum = readU16(buf, t + TcpField.checksum);
    const oldSum = oldWord + (oldLen >>> 16) + (oldLen & 0xffff);
    const newSum = sumBytes(buf, at, padded, newWord + (newLen >>> 16) + (newLen & 0xffff));
    writeU16(buf, t + TcpField.checksum, adjust(csum, oldSum, newSum));
    ipLengthChanged(buf, info, info.length + padded);
    info.tcpHeaderLength = hl + padded;
    info.payloadOffset = t + hl + padded;
    return InsertResult.inserted;
  }
  if (!policy.prune) return InsertResult.noRoom;
  return insertWithPruning(buf, info, opt, optOff, optLen, policy, limit);
}

function isSyn(buf: Uint8Array, info: PacketInfo): boolean {
  return (buf[info.l4Offset + TcpField.flags]! & TcpFlag.syn) !== 0;
}

/** Copies the kept options into scratch after the TOA; returns the end, or -1 if over 40 bytes. */
function gatherOptions(
  buf: Uint8Array,
  info: PacketInfo,
  start: number,
  policy: InsertPolicy,
  stage: 1 | 2,
): number {
  const t = info.l4Offset;
  const syn = isSyn(buf, info);
  let p = start;
  cursor.reset(buf, t + TCP_MIN_HEADER, t + info.tcpHeaderLength);
  while (cursor.next()) {
    const k = cursor.kind;
    if (k === TcpOptionKind.nop || policy.staleKinds.includes(k)) continue;
    if (stage === 2) {
      const keep =
        k === TcpOptionKind.timestamps ||
        (syn &&
          (k === TcpOptionKind.mss ||
            k === TcpOptionKind.windowScale ||
            k === TcpOptionKind.sackPermitted));
      if (!keep) continue;
    }
    if (p + cursor.length > scratch.length) return -1;
    for (let i = 0; i < cursor.length; i++) scratch[p + i] = buf[cursor.at + i]!;
    p += cursor.length;
  }
  return p;
}

// The rare path: DPVS's order is NOPs and client-sent TOAs first, then every
// option but timestamps. Built in scratch so a failure leaves the packet as it was.
function insertWithPruning(
  buf: Uint8Array,
  info: PacketInfo,
  opt: Uint8Array,
  optOff: number,
  optLen: number,
  policy: InsertPolicy,
  limit: number,
): InsertResult {
  const t = info.l4Offset;
  const payloadLen = info.length - info.payloadOffset;
  const head = (optLen + 3) & ~3;
  if (head > TCP_MAX_HEADER - TCP_MIN_HEADER) return InsertResult.noRoom;
  let end = -1;
  let used = 0;
  for (const stage of [1, 2] as const) {
    try {
      end = gatherOptions(buf, info, head, policy, stage);
    } catch (e) {
      // Malformed client options: drop them all rather than forward garbage.
      if (!(e instanceof CodecError)) throw e;
      end = head;
    }
    used = (end + 3) & ~3;
    const fits = end >= 0 && used <= TCP_MAX_HEADER - TCP_MIN_HEADER;
    if (fits && t + TCP_MIN_HEADER + used + payloadLen <= limit) break;
    end = -1;
  }
  if (end < 0) return InsertResult.noRoom;
  for (let i = 0; i < optLen; i++) scratch[i] = opt[optOff + i]!;
  for (let i = optLen; i < head; i++) scratch[i] = TcpOptionKind.nop;
  for (let i = end; i < used; i++) scratch[i] = TcpOptionKind.eol;
  const newHl = TCP_MIN_HEADER + used;
  buf.copyWithin(t + newHl, info.payloadOffset, info.length);
  for (let i = 0; i < used; i++) buf[t + TCP_MIN_HEADER + i] = scratch[i]!;
  buf[t + TcpField.dataOffset] = ((newHl / 4) << 4) | (buf[t + TcpField.dataOffset]! & 0x0f);
  setIpLength(buf, info, t + newHl + payloadLen);
  info.tcpHeaderLength = newHl;
  info.payloadOffset = t + newHl;
  fillIpv4Checksum(buf, info);
  fillL4Checksum(buf, info);
  return InsertResult.insertedAfterPruning;
}

/**
 * Rewrites `len` bytes at `at` inside the TCP segment through `write` and
 * updates the checksum incrementally; works for fields at odd offsets.
 */
function editInPlace(
  buf: Uint8Array,
  info: PacketInfo,
  at: number,
  len: number,
  fill: number,
): void {
  const t = info.l4Offset;
  const before = sumCovering(buf, t, at, len);
  buf.fill(fill, at, at + len);
  const after = sumCovering(buf, t, at, len);
  writeU16(buf, t + TcpField.checksum, adjust(readU16(buf, t + TcpField.checksum), before, after));
}

/** Replaces every option of the given kinds with NOPs; returns how many. */
export function nopOutTcpOptions(
  buf: Uint8Array,
  info: PacketInfo,
  kinds: readonly number[],
): number {
  const t = info.l4Offset;
  let n = 0;
  cursor.reset(buf, t + TCP_MIN_HEADER, t + info.tcpHeaderLength);
  while (cursor.next()) {
    if (cursor.length > 1 && kinds.includes(cursor.kind)) {
      editInPlace(buf, info, cursor.at, cursor.length, TcpOptionKind.nop);
      n++;
    }
  }
  return n;
}

/**
 * Lowers the MSS option by `delta` (room for the TOA the gateway will add),
 * not below `floor`. Returns the new MSS, or -1 when there is no MSS option.
 */
export function lowerMss(buf: Uint8Array, info: PacketInfo, delta: number, floor = 536): number {
  const t = info.l4Offset;
  cursor.reset(buf, t + TCP_MIN_HEADER, t + info.tcpHeaderLength);
  while (cursor.next()) {
    if (cursor.kind !== TcpOptionKind.mss || cursor.length !== 4) continue;
    const at = cursor.at + 2;
    const old = readU16(buf, at);
    const mss = Math.max(Math.min(old, floor), old - delta);
    const before = sumCovering(buf, t, at, 2);
    writeU16(buf, at, mss);
    const after = sumCovering(buf, t, at, 2);
    writeU16(
      buf,
      t + TcpField.checksum,
      adjust(readU16(buf, t + TcpField.checksum), before, after),
    );
    return mss;
  }
  return -1;
}

/** Offset of the first option of `kind` with length `len` (any length if 0), or -1. */
export function findTcpOption(buf: Uint8Array, info: PacketInfo, kind: number, len = 0): number {
  const t = info.l4Offset;
  cursor.reset(buf, t + TCP_MIN_HEADER, t + info.tcpHeaderLength);
  while (cursor.next()) {
    if (cursor.kind === kind && (len === 0 || cursor.length === len)) return cursor.at;
  }
  return -1;
}
