// Bulk TCP for `npm run bench`: iperf3 from the client side to the VIP,
// one server on the server side, v4 and v6, 1 and 4 streams. What runs the
// processes is gateway.ts's; this file holds what is iperf3's.

export const BULK_PORT = 5201;
/** Seconds of each iperf3 run, and the first ones left out (slow start, JIT). */
export const BULK_SECONDS = 5;
export const BULK_OMIT_SECONDS = 1;

export const BULK_CASES = [
  { key: "v4x1", family: 4, streams: 1 },
  { key: "v4x4", family: 4, streams: 4 },
  { key: "v6x1", family: 6, streams: 1 },
  { key: "v6x4", family: 6, streams: 4 },
] as const;
export type BulkKey = (typeof BULK_CASES)[number]["key"];

/** Gbit/s received by the server for each case; null where the run failed. */
export type BulkResult = Record<BulkKey, number | null>;

export interface BulkRun {
  readonly gbps: number;
  readonly retransmits: number;
}

/** The server: one iperf3 serving the runs one after another, on every address. */
export function iperfServerArgv(iperf3: string): string[] {
  return [iperf3, "-s", "-p", String(BULK_PORT)];
}

export function iperfClientArgv(iperf3: string, target: string, streams: number): string[] {
  return [
    iperf3,
    "-J",
    "-c",
    target,
    "-p",
    String(BULK_PORT),
    "-t",
    String(BULK_SECONDS + BULK_OMIT_SECONDS),
    "-O",
    String(BULK_OMIT_SECONDS),
    "-P",
    String(streams),
  ];
}

/** iperf3 -J's verdict: the receiver's rate, and the sender's retransmits. */
export function parseIperf(out: string): BulkRun {
  let j: {
    error?: string;
    end?: {
      sum_received?: { bits_per_second?: number };
      sum_sent?: { retransmits?: number };
    };
  };
  try {
    j = JSON.parse(out) as typeof j;
  } catch {
    throw new Error(`iperf3 printed no JSON: ${out.trim().slice(0, 200)}`);
  }
  if (j.error !== undefined) throw new Error(`iperf3: ${j.error}`);
  const bps = j.end?.sum_received?.bits_per_second;
  if (typeof bps !== "number") throw new Error("iperf3: no received rate in its report");
  return { gbps: bps / 1e9, retransmits: j.end?.sum_sent?.retransmits ?? 0 };
}
