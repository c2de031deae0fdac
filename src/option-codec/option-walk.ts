import { CodecError, CodecErrorCode } from "./errors.js";

/** The two kinds both option grammars give one byte. */
export const OptionByte = { eol: 0, nop: 1 } as const;

/**
 * Non-allocating walk over an option area of the IPv4 header (RFC 791
 * §3.1) or the TCP header (RFC 9293 §3.1): the grammar is the same. EOL
 * ends the list and what follows it is padding, not read (as the kernel's
 * tcp_parse_options and ip_options_compile stop there); NOP is one byte;
 * every other kind has a length byte counting the kind and itself, which
 * must exist, be >= 2 ("silly") and not run past the area ("partial").
 * Where the kernel silently stops, this throws, so callers can count the
 * reason. `next()` returns false at the end and at EOL.
 */
export class OptionCursor {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  /** Offset of the current option's kind byte. */
  at = 0;
  kind = 0;
  /** Total length of the current option, kind byte included. */
  length = 0;

  /** `what`: how errors name an option, "IP option" or "TCP option". */
  constructor(private readonly what: string) {}

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
    this.kind = b[this.pos]!;
    if (this.kind === OptionByte.eol) {
      this.length = 1;
      this.pos = this.end;
      return false;
    }
    if (this.kind === OptionByte.nop) {
      this.length = 1;
      this.pos += 1;
      return true;
    }
    if (this.pos + 2 > this.end) {
      throw new CodecError(
        CodecErrorCode.optionOverrun,
        this.pos,
        `${this.what} ${this.kind} has no length byte`,
      );
    }
    const len = b[this.pos + 1]!;
    if (len < 2) {
      throw new CodecError(
        CodecErrorCode.badOptionLength,
        this.pos,
        `${this.what} ${this.kind} length ${len} < 2`,
      );
    }
    if (this.pos + len > this.end) {
      throw new CodecError(
        CodecErrorCode.optionOverrun,
        this.pos,
        `${this.what} ${this.kind} length ${len} runs past the header`,
      );
    }
    this.length = len;
    this.pos += len;
    return true;
  }
}

/** Length on the wire of an option with `dataLength` bytes of data (EOL and NOP: one byte). */
export function optionLength(kind: number, dataLength: number): number {
  return kind === OptionByte.eol || kind === OptionByte.nop ? 1 : 2 + dataLength;
}

/** Largest data of one option: the 40-byte option area less the kind and length bytes. */
const MAX_DATA = 38;

/** Writes one option at `off`; returns its length. `what` names it in errors. */
export function encodeOption(
  kind: number,
  data: Uint8Array,
  buf: Uint8Array,
  off: number,
  what: string,
): number {
  buf[off] = kind;
  if (kind === OptionByte.eol || kind === OptionByte.nop) return 1;
  if (data.length > MAX_DATA)
    throw new CodecError(
      CodecErrorCode.badValue,
      off,
      `${what} ${kind} data of ${data.length} bytes`,
    );
  buf[off + 1] = data.length + 2;
  buf.set(data, off + 2);
  return 2 + data.length;
}
