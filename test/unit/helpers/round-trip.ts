import { expect } from "vitest";

/** A codec seen the way dns-packet's tests see every record type. */
export interface Codec<T> {
  length(value: T): number;
  encode(value: T, buf: Uint8Array, offset: number): number;
  decode(buf: Uint8Array, offset: number, end: number): T;
}

/**
 * encode length == length(); decode(encode(x)) == x; and encoding at an
 * offset into a larger buffer touches only its own bytes.
 */
export function roundTrip<T>(codec: Codec<T>, value: T): Uint8Array {
  const n = codec.length(value);
  const pad = 7;
  const buf = new Uint8Array(n + 2 * pad).fill(0xa5);
  const written = codec.encode(value, buf, pad);
  expect(written).toBe(n);
  for (let i = 0; i < pad; i++) {
    expect(buf[i]).toBe(0xa5);
    expect(buf[pad + n + i]).toBe(0xa5);
  }
  expect(codec.decode(buf, pad, pad + n)).toEqual(value);
  const alone = new Uint8Array(n);
  codec.encode(value, alone, 0);
  expect(codec.decode(alone, 0, n)).toEqual(value);
  return alone;
}
