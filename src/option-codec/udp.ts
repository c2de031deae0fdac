import { readU16, writeU16 } from "./bytes.js";
import { CodecError, CodecErrorCode, need } from "./errors.js";

export const UdpField = { srcPort: 0, dstPort: 2, length: 4, checksum: 6 } as const;
export const UDP_HEADER = 8;

/** A checked view over a UDP datagram; its length field must fit in [off, end). */
export class UdpDatagram {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(buf: Uint8Array, off: number, end: number): this {
    need(end, off, UDP_HEADER, "UDP header");
    const len = readU16(buf, off + UdpField.length);
    if (len < UDP_HEADER || off + len > end) {
      throw new CodecError(
        CodecErrorCode.badTotalLength,
        off + UdpField.length,
        `UDP length ${len} outside 8..${end - off}`,
      );
    }
    this.buf = buf;
    this.off = off;
    return this;
  }

  get srcPort(): number {
    return readU16(this.buf, this.off);
  }
  get dstPort(): number {
    return readU16(this.buf, this.off + 2);
  }
  get length(): number {
    return readU16(this.buf, this.off + UdpField.length);
  }
  get checksum(): number {
    return readU16(this.buf, this.off + UdpField.checksum);
  }
  get payloadOffset(): number {
    return this.off + UDP_HEADER;
  }
  get end(): number {
    return this.off + this.length;
  }
}

export interface UdpRepr {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly payload: Uint8Array;
}

const view = new UdpDatagram();

export function parseUdp(buf: Uint8Array, off: number, end: number): UdpRepr {
  const d = view.wrap(buf, off, end);
  return { srcPort: d.srcPort, dstPort: d.dstPort, payload: buf.slice(d.payloadOffset, d.end) };
}

export function udpLength(r: UdpRepr): number {
  return UDP_HEADER + r.payload.length;
}

/** Writes the datagram with a zero checksum; returns its length. */
export function emitUdp(r: UdpRepr, buf: Uint8Array, off: number): number {
  const len = UDP_HEADER + r.payload.length;
  if (len > 0xffff)
    throw new CodecError(CodecErrorCode.badValue, off, `UDP datagram of ${len} bytes`);
  need(buf.length, off, len, "UDP datagram output");
  writeU16(buf, off, r.srcPort);
  writeU16(buf, off + 2, r.dstPort);
  writeU16(buf, off + UdpField.length, len);
  writeU16(buf, off + UdpField.checksum, 0);
  buf.set(r.payload, off + UDP_HEADER);
  return len;
}
