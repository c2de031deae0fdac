import { expect } from "vitest";
import { CodecError } from "../../../src/option-codec/errors.js";

/** The CodecError `f` throws; fails if it returns or throws anything else. */
export function codecError(f: () => unknown): CodecError {
  try {
    f();
  } catch (e) {
    if (e instanceof CodecError) return e;
    throw e;
  }
  throw new Error("expected a CodecError, the decoder returned");
}

/** Asserts the exact code and byte offset, both part of the codec's contract. */
export function expectError(f: () => unknown, code: string, offset: number): void {
  const e = codecError(f);
  expect({ code: e.code, offset: e.offset }).toEqual({ code, offset });
}
