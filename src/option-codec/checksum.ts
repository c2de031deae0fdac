// Internet checksum (RFC 1071) and its incremental update (RFC 1624), as
// gVisor's header package does it: sums are kept unfolded in a JS number
// (exact up to 2^53, far beyond any packet) and folded once at the end.

/** Unfolded one's-complement sum of `len` bytes; an odd last byte is padded with zero. */
export function sumBytes(b: Uint8Array, off: number, len: number, initial = 0): number {
  let s = initial;
  const end = off + len;
  let i = off;
  for (; i + 1 < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (i < end) s += b[i]! << 8;
  return s;
}

/** Folds an unfolded sum into 16 bits (without complementing). */
export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value for an unfolded sum. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** Pseudo-header sum for TCP/UDP over IPv4 or IPv6 (RFC 793, RFC 8200 §8.1). */
export function pseudoHeaderSum(
  b: Uint8Array,
  srcOff: number,
  dstOff: number,
  addrLen: 4 | 16,
  protocol: number,
  l4Length: number,
): number {
  let s = sumBytes(b, srcOff, addrLen) + sumBytes(b, dstOff, addrLen);
  s += protocol;
  s += (l4Length >>> 16) + (l4Length & 0xffff);
  return s;
}

/**
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), with `oldSum`/`newSum` the
 * unfolded sums of the changed words before and after.
 */
export function adjust(checksum: number, oldSum: number, newSum: number): number {
  const s = (~checksum & 0xffff) + (~fold(oldSum) & 0xffff) + fold(newSum);
  return ~fold(s) & 0xffff;
}

/** Checksum update for one 16-bit word changing from `oldWord` to `newWord`. */
export function adjust16(checksum: number, oldWord: number, newWord: number): number {
  return adjust(checksum, oldWord, newWord);
}

/**
 * Sum of the 16-bit words covering [start, start + len), widened to word
 * boundaries relative to `base` (the start of the checksummed data), so a
 * field at an odd offset is summed as the words that hold it.
 */
export function sumCovering(b: Uint8Array, base: number, start: number, len: number): number {
  const from = base + ((start - base) & ~1);
  const to = base + ((start + len - base + 1) & ~1);
  return sumBytes(b, from, to - from);
}
