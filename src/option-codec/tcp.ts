import { readU16, readU32, writeU16, writeU32 } from "./bytes.js";
import { CodecError, CodecErrorCode, need } from "./errors.js";
import {
  encodeTcpOptions,
  MAX_TCP_OPTIONS,
  parseTcpOptions,
  type TcpOption,
  tcpOptionsLength,
} from "./tcp-options.js";

export const TcpField = {
  srcPort: 0,
  dstPort: 2,
  seq: 4,
  ack: 8,
  dataOffset: 12,
  flags: 13,
  window: 14,
  checksum: 16,
  urgent: 18,
} as const;

export const TcpFlag = {
  fin: 0x01,
  syn: 0x02,
  rst: 0x04,
  psh: 0x08,
  ack: 0x10,
  urg: 0x20,
  ece: 0x40,
  cwr: 0x80,
} as const;

export const TCP_MIN_HEADER = 20;
export const TCP_MAX_HEADER = 60;

/** A checked view over a TCP header in [off, end). */
export class TcpSegment {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;
  end = 0;

  wrap(buf: Uint8Array, off: number, end: number): this {
    need(end, off, TCP_MIN_HEADER, "TCP header");
    const doff = buf[off + TcpField.dataOffset]! >> 4;
    if (doff < 5) {
      throw new CodecError(
        CodecErrorCode.badDataOffset,
        off + TcpField.dataOffset,
        `TCP data offset ${doff} < 5`,
      );
    }
    if (off + doff * 4 > end) {
      throw new CodecError(
        CodecErrorCode.badDataOffset,
        off + TcpField.dataOffset,
        `TCP data offset ${doff} (${doff * 4} bytes) runs past the segment of ${end - off}`,
      );
    }
    this.buf = buf;
    this.off = off;
    this.end = end;
    return this;
  }

  get srcPort(): number {
    return readU16(this.buf, this.off);
  }
  get dstPort(): number {
    return readU16(this.buf, this.off + 2);
  }
  get seq(): number {
    return readU32(this.buf, this.off + TcpField.seq);
  }
  get ack(): number {
    return readU32(this.buf, this.off + TcpField.ack);
  }
  get headerLength(): number {
    return (this.buf[this.off + TcpField.dataOffset]! >> 4) * 4;
  }
  get flags(): number {
    return this.buf[this.off + TcpField.flags]!;
  }
  get checksum(): number {
    return readU16(this.buf, this.off + TcpField.checksum);
  }
  get optionsOffset(): number {
    return this.off + TCP_MIN_HEADER;
  }
  get payloadOffset(): number {
    return this.off + this.headerLength;
  }
  get payloadLength(): number {
    return this.end - this.payloadOffset;
  }
}

export interface TcpRepr {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly window: number;
  readonly urgent: number;
  readonly options: readonly TcpOption[];
  readonly payload: Uint8Array;
}

const view = new TcpSegment();

export function parseTcp(buf: Uint8Array, off: number, end: number): TcpRepr {
  const s = view.wrap(buf, off, end);
  return {
    srcPort: s.srcPort,
    dstPort: s.dstPort,
    seq: s.seq,
    ack: s.ack,
    flags: s.flags,
    window: readU16(buf, off + TcpField.window),
    urgent: readU16(buf, off + TcpField.urgent),
    options: parseTcpOptions(buf, s.optionsOffset, s.payloadOffset),
    payload: buf.slice(s.payloadOffset, end),
  };
}

export function tcpHeaderLength(r: TcpRepr): number {
  return TCP_MIN_HEADER + ((tcpOptionsLength(r.options) + 3) & ~3);
}

export function tcpLength(r: TcpRepr): number {
  return tcpHeaderLength(r) + r.payload.length;
}

/** Writes header, options and payload with a zero checksum; returns the length. */
export function emitTcp(r: TcpRepr, buf: Uint8Array, off: number): number {
  const optLen = (tcpOptionsLength(r.options) + 3) & ~3;
  if (optLen > MAX_TCP_OPTIONS) {
    throw new CodecError(CodecErrorCode.noRoom, off, `TCP options of ${optLen} bytes exceed 40`);
  }
  const hl = TCP_MIN_HEADER + optLen;
  need(buf.length, off, hl + r.payload.length, "TCP segment output");
  writeU16(buf, off, r.srcPort);
  writeU16(buf, off + 2, r.dstPort);
  writeU32(buf, off + TcpField.seq, r.seq);
  writeU32(buf, off + TcpField.ack, r.ack);
  buf[off + TcpField.dataOffset] = (hl / 4) << 4;
  buf[off + TcpField.flags] = r.flags;
  writeU16(buf, off + TcpField.window, r.window);
  writeU16(buf, off + TcpField.checksum, 0);
  writeU16(buf, off + TcpField.urgent, r.urgent);
  encodeTcpOptions(r.options, buf, off + TCP_MIN_HEADER);
  buf.set(r.payload, off + hl);
  return hl + r.payload.length;
}
