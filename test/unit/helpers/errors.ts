import { expect } from "vitest";
import { CodecError } from "../../../src/option-codec/errors.js";

/** The error of class `type` that `f` throws; fails if it returns or throws anything else. */
export function thrown<E extends Error>(type: new (...args: never[]) => E, f: () => unknown): E {
  try {
    f();
  } catch (e) {
    if (e instanceof type) return e;
    throw e;
  }
  throw new Error(`expected a ${type.name}, the call returned`);
}

/** The CodecError `f` throws; fails if it returns or throws anything else. */
export const codecError = (f: () => unknown): CodecError => thrown(CodecError, f);

/** Asserts the exact code and byte offset, both part of the codec's contract. */
export function expectError(f: () => unknown, code: string, offset: number): void {
  const e = codecError(f);
  expect({ code: e.code, offset: e.offset }).toEqual({ code, offset });
}
