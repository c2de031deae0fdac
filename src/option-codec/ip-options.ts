import { CodecError, CodecErrorCode } from "./errors.js";

// IPv4 options (RFC 791): type 0 ends the list, type 1 is a one-byte no-op,
// every other type is type, length (counting both), data.

export const IpOptionType = {
  eol: 0,
  nop: 1,
  /** DPVS's UOA option: copy bit clear, class 0, number 31. */
  uoa: 0x1f,
} as const;

export interface IpOption {
  readonly type: number;
  readonly data: Uint8Array;
}

/**
 * Non-allocating walk over an IPv4 option area. `next()` advances to the
 * next option and returns false at the end (or after EOL); on a bad length
 * it throws with the offset of the option.
 */
export class IpOptionCursor {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  /** Offset of the current option's type byte. */
  at = 0;
  type = 0;
  /** Total length of the current option, type byte included. */
  length = 0;

  reset(buf: Uint8Array, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    return this;
  }

  next(): boolean {
    if (this.pos >= this.end) return false;
    const b = this.buf;
    this.at = this.pos;
    this.type = b[this.pos]!;
    if (this.type === IpOptionType.eol) {
      this.length = 1;
      this.pos = this.end;
      return true;
    }
    if (this.type === IpOptionType.nop) {
      this.length = 1;
      this.pos += 1;
      return true;
    }
    if (this.pos + 2 > this.end) {
      throw new CodecError(
        CodecErrorCode.optionOverrun,
        this.pos,
        `IP option ${this.type} has no length byte`,
      );
    }
    const len = b[this.pos + 1]!;
    if (len < 2) {
      throw new CodecError(
        CodecErrorCode.badOptionLength,
        this.pos,
        `IP option ${this.type} length ${len} < 2`,
      );
    }
    if (this.pos + len > this.end) {
      throw new CodecError(
        CodecErrorCode.optionOverrun,
        this.pos,
        `IP option ${this.type} length ${len} runs past the header`,
      );
    }
    this.length = len;
    this.pos += len;
    return true;
  }
}

const cursor = new IpOptionCursor();

export function parseIpOptions(buf: Uint8Array, start: number, end: number): IpOption[] {
  const out: IpOption[] = [];
  const c = cursor.reset(buf, start, end);
  while (c.next()) {
    if (c.type === IpOptionType.eol) break;
    const dataStart = c.length === 1 ? c.at + 1 : c.at + 2;
    out.push({ type: c.type, data: buf.slice(dataStart, c.at + c.length) });
  }
  return out;
}

export function ipOptionsLength(options: readonly IpOption[]): number {
  let n = 0;
  for (const o of options)
    n += o.type === IpOptionType.nop || o.type === IpOptionType.eol ? 1 : 2 + o.data.length;
  return (n + 3) & ~3;
}

/** Writes the options padded with EOL to a multiple of 4; returns the padded length. */
export function encodeIpOptions(
  options: readonly IpOption[],
  buf: Uint8Array,
  off: number,
): number {
  let p = off;
  for (const o of options) {
    buf[p++] = o.type;
    if (o.type === IpOptionType.nop || o.type === IpOptionType.eol) continue;
    if (o.data.length > 38)
      throw new CodecError(CodecErrorCode.badValue, p, "IP option data over 38 bytes");
    buf[p++] = o.data.length + 2;
    buf.set(o.data, p);
    p += o.data.length;
  }
  while ((p - off) % 4 !== 0) buf[p++] = IpOptionType.eol;
  return p - off;
}
