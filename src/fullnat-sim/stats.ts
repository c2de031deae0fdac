/**
 * Gateway counters: one Float64Array indexed by this table, so the packet
 * loop bumps numbers without allocating and another thread can read the
 * same memory (a SharedArrayBuffer) for `toasim stats`.
 */
export const Stat = {
  packetsFromClient: 0,
  packetsToServer: 1,
  packetsFromServer: 2,
  packetsToClient: 3,
  bytesToServer: 4,
  bytesToClient: 5,
  connectionsCreated: 6,
  connectionsActive: 7,
  connectionsExpired: 8,
  carriersInserted: 9,
  carriersPruned: 10,
  carriersFailed: 11,
  uoaProbes: 12,
  clientToaStripped: 13,
  dropMalformed: 14,
  dropFragment: 15,
  dropProtocol: 16,
  dropNoService: 17,
  dropNoConnection: 18,
  dropNotForGateway: 19,
  dropServerMismatch: 20,
  dropTableFull: 21,
  dropPortsExhausted: 22,
  dropTooBig: 23,
  dropNoCarrierFamily: 24,
  icmpErrorsTranslated: 25,
  dropIcmp: 26,
  // Fault injection (fault-stage.ts): what the rules did, and the links' MTU.
  faultDropped: 27,
  faultDuplicated: 28,
  faultDelayed: 29,
  faultReordered: 30,
  faultCorrupted: 31,
  faultTruncated: 32,
  faultMtuDropped: 33,
  /** Packets sent undelayed because HELD_MAX were already held. */
  faultQueueFull: 34,
  // TUN offloads (runtime/offload-frames.ts): TCP super-packets that crossed
  // the gateway whole, and those cut into wire segments first.
  superPackets: 35,
  superPacketsSegmented: 36,
} as const;
export type Stat = (typeof Stat)[keyof typeof Stat];

export const STAT_COUNT = Object.keys(Stat).length;

export type StatName = keyof typeof Stat;

export const STAT_NAMES: readonly StatName[] = (Object.entries(Stat) as [StatName, number][])
  .sort((a, b) => a[1] - b[1])
  .map(([k]) => k);

/** Drop counters by reason, for the stats table. */
export const DROP_REASONS = {
  malformed: Stat.dropMalformed,
  fragment: Stat.dropFragment,
  "unsupported-protocol": Stat.dropProtocol,
  "no-service": Stat.dropNoService,
  "no-connection": Stat.dropNoConnection,
  "not-for-gateway": Stat.dropNotForGateway,
  "server-mismatch": Stat.dropServerMismatch,
  "table-full": Stat.dropTableFull,
  "ports-exhausted": Stat.dropPortsExhausted,
  "too-big": Stat.dropTooBig,
  "no-carrier-for-family": Stat.dropNoCarrierFamily,
  icmp: Stat.dropIcmp,
} as const;

export function newStats(shared = false): Float64Array {
  const bytes = STAT_COUNT * Float64Array.BYTES_PER_ELEMENT;
  return new Float64Array(shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
}

export function statsObject(s: Float64Array): Record<StatName, number> {
  const o = {} as Record<StatName, number>;
  STAT_NAMES.forEach((n, i) => {
    o[n] = s[i] ?? 0;
  });
  return o;
}

/** Adds `n` to counter `s` (the one way the gateway's parts count). */
export function bump(stats: Float64Array, s: Stat, n = 1): void {
  stats[s] = stats[s]! + n;
}
