/**
 * The one error type of the codec layer. `code` is stable (tests and callers
 * branch on it); `offset` is the byte offset in the input where decoding
 * failed, so a bad packet can be found in a hex dump.
 */
export const CodecErrorCode = {
  truncated: "TRUNCATED",
  badVersion: "BAD_VERSION",
  badHeaderLength: "BAD_HEADER_LENGTH",
  badTotalLength: "BAD_TOTAL_LENGTH",
  badDataOffset: "BAD_DATA_OFFSET",
  badOptionLength: "BAD_OPTION_LENGTH",
  optionOverrun: "OPTION_OVERRUN",
  extHeaderOverrun: "EXT_HEADER_OVERRUN",
  extHeaderChainTooLong: "EXT_HEADER_CHAIN_TOO_LONG",
  badCarrier: "BAD_CARRIER",
  badSignature: "BAD_SIGNATURE",
  badAddress: "BAD_ADDRESS",
  badValue: "BAD_VALUE",
  noRoom: "NO_ROOM",
  unsupported: "UNSUPPORTED",
} as const;

export type CodecErrorCode = (typeof CodecErrorCode)[keyof typeof CodecErrorCode];

export class CodecError extends Error {
  override readonly name = "CodecError";
  readonly code: CodecErrorCode;
  readonly offset: number;

  constructor(code: CodecErrorCode, offset: number, message: string) {
    super(`${message} (${code} at byte ${offset})`);
    this.code = code;
    this.offset = offset;
  }
}

/** Throws TRUNCATED unless `need` bytes are available at `offset` before `end`. */
export function need(end: number, offset: number, need: number, what: string): void {
  if (offset + need > end) {
    throw new CodecError(
      CodecErrorCode.truncated,
      offset,
      `${what} needs ${need} bytes, ${Math.max(0, end - offset)} left`,
    );
  }
}
