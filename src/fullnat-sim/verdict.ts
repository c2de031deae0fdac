/** What happened to the carrier on a packet toward the server. */
export const CarrierOutcome = {
  none: 0,
  inserted: 1,
  insertedAfterPruning: 2,
  /** The packet should have carried it but there was no room. */
  failed: 3,
} as const;
export type CarrierOutcome = (typeof CarrierOutcome)[keyof typeof CarrierOutcome];

/**
 * What the gateway decided about the packet it just returned, beside the
 * packet itself: the packet loop hands it to the fault stage, craft and the
 * tests read it. One object per gateway, reset for every packet, so the hot
 * path allocates nothing.
 */
export class Verdict {
  /** The connection the packet belonged to, or -1. */
  conn = -1;
  /** PacketClass bits (0 for a drop). */
  cls = 0;
  /** UDP toward the server: which datagram of its flow this was (1 = first); 0 otherwise. */
  index = 0;
  /** Toward the server: what happened to the carrier. */
  carrier: CarrierOutcome = CarrierOutcome.none;

  reset(): void {
    this.conn = -1;
    this.cls = 0;
    this.index = 0;
    this.carrier = CarrierOutcome.none;
  }
}
