import type { Gateway } from "../fullnat-sim/gateway.js";
import type { TunDevice } from "../tun/device.js";
import type { PcapWriter } from "../tun/pcap-writer.js";

/** Packets taken from one device per wake-up before turning to the other, for fairness. */
const BATCH = 256;
/** Room for a full-size packet plus what the gateway may add to it. */
const BUFFER = 65535 + 512;

export interface LoopCounters {
  /** Packets the kernel would not take (queue full): dropped, as a link would. */
  writeBusy: number;
  /** Packets whose processing threw something unexpected (a bug): dropped. */
  errors: number;
}

/**
 * What the packet worker drives between its two TUN devices: PacketLoop
 * (the gateway), or CopyLoop (the null forwarder the benchmark compares it
 * with). One worker only ever builds one of them, so its calls stay monomorphic.
 */
export interface Forwarding {
  readonly counters: LoopCounters;
  readonly firstError: unknown;
  clientCapture: PcapWriter | null;
  serverCapture: PcapWriter | null;
  fromClient(): number;
  fromServer(): number;
}

/**
 * Moves packets between the two TUN devices through the gateway, run to
 * completion: read, translate in place, write, with one reused buffer. The
 * same loop runs over MemoryTun in the unit tests.
 */
export class PacketLoop implements Forwarding {
  readonly counters: LoopCounters = { writeBusy: 0, errors: 0 };
  /** The first unexpected error, for the worker to report once. */
  firstError: unknown = null;
  /** Optional captures of what crosses each side (the worker sets them on request). */
  clientCapture: PcapWriter | null = null;
  serverCapture: PcapWriter | null = null;
  private readonly buf = new Uint8Array(BUFFER);

  constructor(
    readonly gateway: Gateway,
    readonly client: TunDevice,
    readonly server: TunDevice,
    readonly clock: () => number,
  ) {}

  /** Drains up to BATCH packets from the client side; returns how many were read. */
  fromClient(): number {
    const { buf, gateway: gw } = this;
    let n = 0;
    for (; n < BATCH; n++) {
      const len = this.client.read(buf);
      if (len === 0) break;
      const now = this.clock();
      this.clientCapture?.write(buf, len, now * 1000);
      const out = gw.fromClient(buf, len, now);
      if (gw.extraLength > 0)
        this.send(this.server, gw.extra, gw.extraLength, this.serverCapture, now);
      if (out > 0) this.send(this.server, buf, out, this.serverCapture, now);
    }
    return n;
  }

  /** Drains up to BATCH packets from the server side. */
  fromServer(): number {
    const { buf, gateway: gw } = this;
    let n = 0;
    for (; n < BATCH; n++) {
      const len = this.server.read(buf);
      if (len === 0) break;
      const now = this.clock();
      this.serverCapture?.write(buf, len, now * 1000);
      let out: number;
      try {
        out = gw.fromServer(buf, len, now);
      } catch (e) {
        this.failed(e);
        continue;
      }
      if (out > 0) this.send(this.client, buf, out, this.clientCapture, now);
    }
    return n;
  }

  private failed(e: unknown): void {
    this.counters.errors++;
    this.firstError ??= e;
  }

  private send(
    dev: TunDevice,
    buf: Uint8Array,
    len: number,
    cap: PcapWriter | null,
    now: number,
  ): void {
    cap?.write(buf, len, now * 1000);
    if (!dev.write(buf, len)) this.counters.writeBusy++;
  }

  /** Both sides until neither has anything (for in-memory devices). */
  pump(): number {
    let total = 0;
    for (;;) {
      const n = this.fromClient() + this.fromServer();
      if (n === 0) return total;
      total += n;
    }
  }
}

/**
 * The null forwarder: the same drain-and-write loop as PacketLoop (same
 * batch, same buffer, same write accounting), but packets cross unparsed
 * and unmodified. `npm run bench` measures it to separate what the TUN I/O
 * and the loop cost from what the gateway's own work costs.
 */
export class CopyLoop implements Forwarding {
  readonly counters: LoopCounters = { writeBusy: 0, errors: 0 };
  /** Nothing here throws per packet; kept for the worker's report. */
  readonly firstError: unknown = null;
  clientCapture: PcapWriter | null = null;
  serverCapture: PcapWriter | null = null;
  private readonly buf = new Uint8Array(BUFFER);

  constructor(
    readonly client: TunDevice,
    readonly server: TunDevice,
    readonly clock: () => number,
  ) {}

  fromClient(): number {
    return this.copy(this.client, this.server, this.clientCapture, this.serverCapture);
  }

  fromServer(): number {
    return this.copy(this.server, this.client, this.serverCapture, this.clientCapture);
  }

  private copy(
    from: TunDevice,
    to: TunDevice,
    inCap: PcapWriter | null,
    outCap: PcapWriter | null,
  ): number {
    const buf = this.buf;
    let n = 0;
    for (; n < BATCH; n++) {
      const len = from.read(buf);
      if (len === 0) break;
      // The clock only when capturing: the copy itself needs no time.
      if (inCap !== null || outCap !== null) {
        const us = this.clock() * 1000;
        inCap?.write(buf, len, us);
        outCap?.write(buf, len, us);
      }
      if (!to.write(buf, len)) this.counters.writeBusy++;
    }
    return n;
  }
}
