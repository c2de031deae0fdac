// Small timing and allocation helpers for the benchmarks (not tests).
//
// A case is a function `run(n)` that performs its operation n times in its
// own loop and returns a number derived from the results, so the JIT cannot
// drop the work. Each case keeps its own loop (its own function literal) so
// the calls inside it stay monomorphic and can be inlined as in real use.

import { spawnSync } from "node:child_process";

export type Run = (n: number) => number;

export interface Timing {
  /** Median ns per operation over the timed rounds. */
  readonly ns: number;
  readonly minNs: number;
  readonly maxNs: number;
  readonly iterationsPerRound: number;
  /** ns per operation of each round, in order. */
  readonly samples: readonly number[];
}

export interface Paired {
  readonly case: Timing;
  /** The baseline, timed in the same rounds, right next to the case. */
  readonly base: Timing;
  /** Median over rounds of case / baseline. */
  readonly ratio: number;
  /** Median over rounds of case - baseline, in ns per operation. */
  readonly netNs: number;
}

export interface TimingOptions {
  /** Wall time for the case and its baseline, warm-up included. */
  readonly budgetMs: number;
  /** Timed rounds after the warm-up (medians are reported). */
  readonly rounds: number;
}

/** Anything the cases return ends up here, so their results are live. */
let sink = 0;
export function sinkValue(): number {
  return sink;
}

function elapsedNs(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function timing(samples: readonly number[], iterations: number): Timing {
  return {
    ns: median(samples),
    minNs: Math.min(...samples),
    maxNs: Math.max(...samples),
    iterationsPerRound: iterations,
    samples,
  };
}

/**
 * Runs `run` with n doubling until one call takes >= 10 ms and `ms` have
 * passed, so the optimizing compiler has settled; returns ns per operation
 * of the last call.
 */
function warm(run: Run, ms: number): number {
  const start = process.hrtime.bigint();
  let n = 64;
  for (;;) {
    const t0 = process.hrtime.bigint();
    sink = (sink + run(n)) | 0;
    const dt = elapsedNs(t0);
    if (dt < 10e6) n *= 2;
    else if (elapsedNs(start) >= ms * 1e6) return dt / n;
  }
}

function round(run: Run, n: number): number {
  const t0 = process.hrtime.bigint();
  sink = (sink + run(n)) | 0;
  return elapsedNs(t0) / n;
}

/**
 * Times `run` against its baseline `base` in interleaved rounds (each round
 * times both, in alternating order), so that a slow spell of the machine
 * hits both sides of a ratio. A quarter of the budget warms up, then the
 * case gets 80% of each round's time and the baseline 20%.
 */
export function timePaired(run: Run, base: Run, opts: TimingOptions): Paired {
  const warmMs = opts.budgetMs / 4;
  const basePerOp = warm(base, warmMs / 4);
  const perOp = warm(run, (warmMs * 3) / 4);
  const roundNs = ((opts.budgetMs - warmMs) * 1e6) / opts.rounds;
  const n = Math.max(1, Math.round((roundNs * 0.8) / Math.max(perOp, 0.01)));
  const nb = Math.max(1, Math.round((roundNs * 0.2) / Math.max(basePerOp, 0.01)));
  const cs: number[] = [];
  const bs: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    if (r % 2) {
      cs.push(round(run, n));
      bs.push(round(base, nb));
    } else {
      bs.push(round(base, nb));
      cs.push(round(run, n));
    }
  }
  return {
    case: timing(cs, n),
    base: timing(bs, nb),
    ratio: median(cs.map((c, i) => c / bs[i]!)),
    netNs: median(cs.map((c, i) => c - bs[i]!)),
  };
}

export interface Allocation {
  /**
   * Bytes allocated per operation in steady state: the median over chunks
   * of the heap growth per chunk, divided by the chunk size.
   */
  readonly bytesPerOp: number;
  /** The same from the mean over chunks: also counts one-off allocations (JIT, lazy setup). */
  readonly meanBytesPerOp: number;
  readonly iterations: number;
  readonly chunkSize: number;
  /** Chunks used; the others contained a scavenge and were left out. */
  readonly chunksUsed: number;
  readonly chunks: number;
  /** Whether gc() could be called before and after. */
  readonly gcExposed: boolean;
}

function heapUsed(): number {
  return process.memoryUsage().heapUsed;
}

function gcNow(): boolean {
  const gc = globalThis.gc;
  if (typeof gc !== "function") return false;
  gc();
  return true;
}

/** Heap growth over each chunk of `chunk` operations, into `out` (allocates nothing itself). */
function chunkDeltas(run: Run, chunk: number, out: Float64Array): void {
  let prev = heapUsed();
  for (let c = 0; c < out.length; c++) {
    sink = (sink + run(chunk)) | 0;
    const cur = heapUsed();
    out[c] = cur - prev;
    prev = cur;
  }
}

/** Median heap growth between two reads with nothing in between (the read's own result object). */
function readOverhead(): number {
  const d = new Float64Array(200);
  chunkDeltas(() => 0, 0, d);
  return median([...d].filter((x) => x >= 0));
}

function pass(run: Run, iterations: number, chunk: number): Allocation {
  const d = new Float64Array(Math.max(1, Math.round(iterations / chunk)));
  const overhead = chunk < 10_000 ? readOverhead() : 0;
  const gcExposed = gcNow();
  chunkDeltas(run, chunk, d);
  gcNow();
  // A negative delta means a scavenge ran inside the chunk: its growth is unknown.
  const valid = [...d].filter((x) => x >= 0).map((x) => Math.max(0, x - overhead));
  const mean = valid.reduce((a, b) => a + b, 0) / valid.length;
  return {
    bytesPerOp: valid.length ? median(valid) / chunk : Number.NaN,
    meanBytesPerOp: valid.length ? mean / chunk : Number.NaN,
    iterations: d.length * chunk,
    chunkSize: chunk,
    chunksUsed: valid.length,
    chunks: d.length,
    gcExposed,
  };
}

/**
 * Heap bytes allocated per operation. A heapUsed delta taken after a GC
 * shows only what survived, and a per-packet garbage object does not
 * survive; so the run is split into chunks and heapUsed is read between
 * them without collecting: a chunk with no scavenge grows the heap by
 * exactly what it allocated (plus one read of heapUsed, ~0.3 KB, which is
 * negligible over 20,000 operations). If any chunk saw a scavenge (its
 * delta is negative), the case allocates: then chunks of 200 are measured
 * instead, with the read's own allocation subtracted, and the chunks with a
 * scavenge (negative deltas, a few percent of them) are left out. gc() runs before and after, when exposed.
 */
export function measureAllocation(run: Run, iterations: number): Allocation {
  const big = pass(run, iterations, 20_000);
  if (big.chunksUsed === big.chunks) return big;
  return pass(run, Math.min(iterations, 200_000), 200);
}

/**
 * Re-runs this script under `node --expose-gc` when gc() is not exposed.
 * Returns the child's exit code, or null when the caller should go on in
 * this process (gc already exposed, already the child, or the spawn failed).
 */
export function respawnWithExposeGc(): number | null {
  if (typeof globalThis.gc === "function") return null;
  if (process.env["TOASIM_BENCH_CHILD"] === "1") return null;
  const r = spawnSync(
    process.execPath,
    ["--expose-gc", ...process.execArgv, ...process.argv.slice(1)],
    { stdio: "inherit", env: { ...process.env, TOASIM_BENCH_CHILD: "1" } },
  );
  if (r.error) return null;
  return r.status ?? 1;
}
