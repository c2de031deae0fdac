import { readU16, readU32, writeU32 } from "../option-codec/bytes.js";
import { adjust } from "../option-codec/checksum.js";
import type { PacketInfo } from "../option-codec/packet.js";
import { TcpField, TcpFlag } from "../option-codec/tcp.js";
import type { Timeouts } from "./config.js";
import { ConnFlag, ConnState, type ConnTable } from "./conn-table.js";
import { PacketClass } from "./packet-class.js";

/**
 * The gateway's view of a TCP connection: enough state to expire it as
 * LVS does (SYN, established, FIN, close timers) and to know which client
 * ACK completes the handshake. It never judges sequence numbers: the
 * endpoints do that.
 */

const SYN_ACK_RST = TcpFlag.syn | TcpFlag.ack | TcpFlag.rst;

/** The classes a TCP segment has by its flags and length alone. */
export function tcpClass(flags: number, hasData: boolean): number {
  let c = hasData ? PacketClass.data : 0;
  if (flags & TcpFlag.syn) c |= flags & TcpFlag.ack ? PacketClass.synAck : PacketClass.syn;
  if (flags & TcpFlag.fin) c |= PacketClass.fin;
  if (flags & TcpFlag.rst) c |= PacketClass.rst;
  return c;
}

/** A segment that may open a connection: SYN alone (no ACK, no RST). */
export function isBareSyn(flags: number): boolean {
  return (flags & SYN_ACK_RST) === TcpFlag.syn;
}

/**
 * A client segment of connection c: moves its state and timer; returns
 * PacketClass.handshakeAck for the client's first ACK after the server's
 * SYN-ACK (one per connection), 0 otherwise.
 */
export function clientSegment(
  conns: ConnTable,
  c: number,
  flags: number,
  now: number,
  t: Timeouts,
): number {
  let cls = 0;
  const cf = conns.flags[c]!;
  if (
    (flags & SYN_ACK_RST) === TcpFlag.ack &&
    (cf & (ConnFlag.serverIsnSeen | ConnFlag.clientAcked)) === ConnFlag.serverIsnSeen
  ) {
    cls = PacketClass.handshakeAck;
    conns.flags[c] = cf | ConnFlag.clientAcked;
  }
  if (flags & TcpFlag.rst) {
    conns.state[c] = ConnState.closing;
    conns.expires[c] = now + t.tcpClose;
    return cls;
  }
  if (flags & TcpFlag.fin) conns.flags[c] = conns.flags[c]! | ConnFlag.clientFin;
  advance(conns, c, now, t);
  return cls;
}

/** A server segment of connection c: learns the server's ISN from its SYN-ACK, moves the state and timer. */
export function serverSegment(
  conns: ConnTable,
  c: number,
  buf: Uint8Array,
  info: PacketInfo,
  flags: number,
  now: number,
  t: Timeouts,
): void {
  if (flags & TcpFlag.syn && flags & TcpFlag.ack) {
    conns.serverIsnPlus1[c] = (readU32(buf, info.l4Offset + TcpField.seq) + 1) | 0;
    conns.flags[c] = conns.flags[c]! | ConnFlag.serverIsnSeen;
    if (conns.state[c] === ConnState.synSent) conns.state[c] = ConnState.synReceived;
  }
  if (flags & TcpFlag.rst) {
    conns.state[c] = ConnState.closing;
    conns.expires[c] = now + t.tcpClose;
    return;
  }
  if (flags & TcpFlag.fin) conns.flags[c] = conns.flags[c]! | ConnFlag.serverFin;
  advance(conns, c, now, t);
}

function advance(conns: ConnTable, c: number, now: number, t: Timeouts): void {
  const f = conns.flags[c]!;
  const st = conns.state[c]!;
  if (f & ConnFlag.clientFin && f & ConnFlag.serverFin) {
    conns.state[c] = ConnState.closing;
    conns.expires[c] = now + t.tcpClose;
  } else if (f & (ConnFlag.clientFin | ConnFlag.serverFin)) {
    conns.state[c] = ConnState.finWait;
    conns.expires[c] = now + t.tcpFin;
  } else if (st === ConnState.synSent) {
    conns.expires[c] = now + t.tcpSyn;
  } else if (st === ConnState.synReceived || st === ConnState.established) {
    conns.state[c] = ConnState.established;
    conns.expires[c] = now + t.tcpEstablished;
  }
}

/**
 * Does this segment acknowledge exactly the server's SYN (ack = ISN + 1)?
 * Compared by 16-bit halves: a 32-bit value returned by a call that V8 did
 * not inline is boxed, which would allocate on every packet.
 */
export function acksServerSyn(
  conns: ConnTable,
  c: number,
  buf: Uint8Array,
  info: PacketInfo,
): boolean {
  const isn = conns.serverIsnPlus1[c]!;
  const at = info.l4Offset + TcpField.ack;
  return readU16(buf, at) === isn >>> 16 && readU16(buf, at + 2) === (isn & 0xffff);
}

/**
 * Shifts a sequence (or acknowledgement) number by `delta`, the length of
 * a prefix the gateway put into the stream (PROXY, SPP), checksum adjusted.
 */
export function shiftSeq(buf: Uint8Array, info: PacketInfo, field: number, delta: number): void {
  const at = info.l4Offset + field;
  const old = readU32(buf, at);
  const v = (old + delta) >>> 0;
  writeU32(buf, at, v);
  const c = info.l4Offset + TcpField.checksum;
  const cs = readU16(buf, c);
  const n = adjust(cs, (old >>> 16) + (old & 0xffff), (v >>> 16) + (v & 0xffff));
  buf[c] = n >> 8;
  buf[c + 1] = n & 0xff;
}
