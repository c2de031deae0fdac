import { expect } from "vitest";
import { parseIp } from "../../../src/option-codec/address.js";
import { IpProtocol } from "../../../src/option-codec/ipv4.js";
import {
  emitPacket,
  ipHeaderFor,
  type L4Repr,
  PacketInfo,
} from "../../../src/option-codec/packet.js";
import { TcpFlag } from "../../../src/option-codec/tcp.js";
import { NOP, type TcpOption, timestampsOption } from "../../../src/option-codec/tcp-options.js";

export const C4 = parseIp("198.51.100.7");
export const V4 = parseIp("203.0.113.10");
export const L4 = parseIp("192.0.2.100");
export const R4 = parseIp("192.0.2.10");
export const C6 = parseIp("2001:db8:c::7");
export const V6 = parseIp("2001:db8:f::10");
export const L6 = parseIp("2001:db8:5::100");
export const R6 = parseIp("2001:db8:5::10");

/** The TCP fields a test sets; the rest default to a client's request. */
export interface TcpFields {
  sport?: number;
  dport?: number;
  seq?: number;
  ack?: number;
  flags?: number;
  window?: number;
  options?: TcpOption[];
  payload?: Uint8Array;
}

/** The one TCP packet builder of the unit tests (IPv4 or IPv6 by the addresses). */
export function tcpPacket(src: Uint8Array, dst: Uint8Array, o: TcpFields = {}): Uint8Array {
  const l4: L4Repr = {
    protocol: IpProtocol.tcp,
    tcp: {
      srcPort: o.sport ?? 40000,
      dstPort: o.dport ?? 80,
      seq: o.seq ?? 0x01020304,
      ack: o.ack ?? 0x0a0b0c0d,
      flags: o.flags ?? TcpFlag.ack | TcpFlag.psh,
      window: o.window ?? 502,
      urgent: 0,
      options: o.options ?? [NOP, NOP, timestampsOption(1, 2)],
      payload: o.payload ?? new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"),
    },
  };
  return emitPacket({ ip: ipHeaderFor(src, dst, l4), l4 });
}

/** The one UDP packet builder of the unit tests; `checksum: false` sends none (IPv4 only). */
export function udpPacket(
  src: Uint8Array,
  dst: Uint8Array,
  payload: Uint8Array,
  o: { sport?: number; dport?: number; checksum?: boolean } = {},
): Uint8Array {
  const l4: L4Repr = {
    protocol: IpProtocol.udp,
    udp: { srcPort: o.sport ?? 40000, dstPort: o.dport ?? 53, payload },
    udpChecksum: o.checksum ?? true,
  };
  return emitPacket({ ip: ipHeaderFor(src, dst, l4), l4 });
}

/** A buffer with room to grow, holding `p` at its start. */
export function roomy(p: Uint8Array, capacity = 2048): Uint8Array {
  const b = new Uint8Array(capacity);
  b.set(p);
  return b;
}

// Checksums recomputed naively, independent of src/option-codec/checksum.ts.
function naive(words: number[]): number {
  let s = 0;
  for (const w of words) {
    s += w;
    s = (s & 0xffff) + (s >>> 16);
  }
  return ~s & 0xffff;
}

function wordsOf(b: Uint8Array): number[] {
  const w: number[] = [];
  for (let i = 0; i < b.length; i += 2) w.push((b[i]! << 8) | (b[i + 1] ?? 0));
  return w;
}

/** Asserts that IPv4 header and TCP/UDP checksums are right, by a naive computation. */
export function expectValidChecksums(buf: Uint8Array, len: number): void {
  const info = new PacketInfo().parse(buf, len);
  if (info.family === 4) expect(naive(wordsOf(buf.slice(0, info.ipHeaderLength)))).toBe(0);
  if (info.protocol !== IpProtocol.tcp && info.protocol !== IpProtocol.udp) return;
  const seg = buf.slice(info.l4Offset, info.length);
  if (info.protocol === IpProtocol.udp && info.family === 4 && seg[6] === 0 && seg[7] === 0) return;
  const pseudo = [
    ...wordsOf(buf.slice(info.srcOffset, info.srcOffset + info.addrLength)),
    ...wordsOf(buf.slice(info.dstOffset, info.dstOffset + info.addrLength)),
    info.protocol,
    seg.length >>> 16,
    seg.length & 0xffff,
  ];
  expect(naive([...pseudo, ...wordsOf(seg)])).toBe(0);
}
