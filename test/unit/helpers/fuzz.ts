import fc from "fast-check";
import { CodecError } from "../../../src/option-codec/errors.js";

/**
 * The hostile-input property every decoder of a carrier must hold, beside
 * roundTrip: on any bytes it returns or throws a CodecError (nothing
 * else), its error offset lies inside the input, it never reads past
 * `end` (what follows changes nothing), and what it accepts passes the
 * caller's checks (usually: it re-encodes to the bytes it consumed).
 */

/** One way to break an encoding. */
export type Mutation =
  | { readonly kind: "truncate"; readonly at: number }
  | { readonly kind: "flip"; readonly at: number; readonly xor: number }
  | { readonly kind: "set" | "insert"; readonly at: number; readonly byte: number }
  | { readonly kind: "delete"; readonly at: number }
  /** A length field lies: two bytes set at `at`. */
  | { readonly kind: "u16"; readonly at: number; readonly value: number }
  | { readonly kind: "append"; readonly bytes: Uint8Array };

export const truncate: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constant("truncate" as const),
  at: fc.nat(),
});
export const flip: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constant("flip" as const),
  at: fc.nat(),
  xor: fc.integer({ min: 1, max: 255 }),
});
/** A byte set or inserted, chosen from those that matter to a text grammar. */
export const setOrInsert = (interesting: Uint8Array): fc.Arbitrary<Mutation> =>
  fc.record({
    kind: fc.constantFrom("set" as const, "insert" as const),
    at: fc.nat(),
    byte: fc.constantFrom(...interesting),
  });
export const deleteByte: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constant("delete" as const),
  at: fc.nat(),
});
export const u16 = (at: fc.Arbitrary<number>): fc.Arbitrary<Mutation> =>
  fc.record({
    kind: fc.constant("u16" as const),
    at,
    value: fc.oneof(fc.nat(0xffff), fc.nat(64)),
  });
export const append: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constant("append" as const),
  bytes: fc.uint8Array({ maxLength: 8 }),
});

export function mutate(b: Uint8Array, m: Mutation): Uint8Array {
  if (m.kind === "append") return new Uint8Array([...b, ...m.bytes]);
  if (b.length === 0) return b;
  const at = m.at % b.length;
  switch (m.kind) {
    case "truncate":
      return b.slice(0, at);
    case "flip":
      return b.map((x, i) => (i === at ? x ^ m.xor : x));
    case "set":
      return b.map((x, i) => (i === at ? m.byte : x));
    case "insert":
      return new Uint8Array([...b.subarray(0, at), m.byte, ...b.subarray(at)]);
    case "delete":
      return new Uint8Array([...b.subarray(0, at), ...b.subarray(at + 1)]);
    case "u16": {
      const out = b.slice();
      if (at + 1 < out.length) {
        out[at] = m.value >> 8;
        out[at + 1] = m.value & 0xff;
      }
      return out;
    }
  }
}

/** Encodings of valid values, each broken by one to three mutations. */
export function mutated<T>(
  repr: fc.Arbitrary<T>,
  encode: (r: T) => Uint8Array,
  mutation: fc.Arbitrary<Mutation>,
): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(repr, fc.array(mutation, { minLength: 1, maxLength: 3 }))
    .map(([r, ms]) => ms.reduce(mutate, encode(r)));
}

/** What a decode came to: `summary` stands for the value (equal summaries, equal values). */
export type Outcome =
  | { readonly ok: true; readonly summary: string; readonly length: number }
  | { readonly ok: false; readonly code: string; readonly offset: number };

export interface FuzzTarget {
  readonly input: fc.Arbitrary<Uint8Array>;
  /** Decodes buf[offset, end): the value's summary and the bytes consumed, or throws. */
  decode(buf: Uint8Array, offset: number, end: number): { summary: string; length: number };
  /** Checks an accepted input (throw to fail): re-encoding, limits. */
  accept?(input: Uint8Array, summary: string, length: number): void;
  /** The bytes after `end` in the second decode (default: each of the first's, inverted). */
  after?(byte: number, index: number): number;
  readonly numRuns?: number;
}

/** Plain checks instead of expect(): a fuzz property runs 100,000 times. */
export function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

export function fuzzDecoder(t: FuzzTarget): void {
  const outcome = (buf: Uint8Array, offset: number, end: number): Outcome => {
    try {
      return { ok: true, ...t.decode(buf, offset, end) };
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      return { ok: false, code: e.code, offset: e.offset };
    }
  };
  const after = t.after ?? ((x: number) => ~x & 0xff);
  fc.assert(
    fc.property(
      t.input,
      fc.nat(4),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      (input, start, tail) => {
        const end = start + input.length;
        const a = new Uint8Array(end + tail.length);
        a.set(input, start);
        a.set(tail, end);
        const b = a.map((x, i) => (i < end ? x : after(x, i - end)));
        const r = outcome(a, start, end);
        const s = outcome(b, start, end);
        check(JSON.stringify(r) === JSON.stringify(s), "bytes after end changed the outcome");
        if (!r.ok) {
          check(r.offset >= start && r.offset <= end, `error offset ${r.offset} outside input`);
          return;
        }
        check(r.length <= input.length, "length beyond input");
        t.accept?.(input, r.summary, r.length);
      },
    ),
    { numRuns: t.numRuns ?? 100_000 },
  );
}
