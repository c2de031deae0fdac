import type { ScriptedClients } from "../craft/scripted-clients.js";
import type { FaultSink, FaultStage } from "../fullnat-sim/fault-stage.js";
import { Toward } from "../fullnat-sim/faults.js";
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
  /** Sends held packets that are due; ms until the next one, or -1 when none is held. */
  tick(now: number): number;
}

/**
 * Moves packets between the two TUN devices through the gateway, run to
 * completion: read, translate in place, write, with one reused buffer. The
 * same loop runs over MemoryTun in the unit tests.
 */
export class PacketLoop implements Forwarding, FaultSink {
  readonly counters: LoopCounters = { writeBusy: 0, errors: 0 };
  /** The first unexpected error, for the worker to report once. */
  firstError: unknown = null;
  /** Optional captures of what crosses each side (the worker sets them on request). */
  clientCapture: PcapWriter | null = null;
  serverCapture: PcapWriter | null = null;
  /** Fault injection between the gateway and the links; null (the usual case) costs one test a packet. */
  faults: FaultStage | null = null;
  /** Clients toasim plays itself, beside the client namespace's (null: none). */
  script: ScriptedClients | null = null;
  private readonly buf = new Uint8Array(BUFFER);
  private now = 0;

  constructor(
    public gateway: Gateway,
    readonly client: TunDevice,
    readonly server: TunDevice,
    readonly clock: () => number,
  ) {}

  /** Drains up to BATCH packets from the client side; returns how many were read. */
  fromClient(): number {
    const buf = this.buf;
    let n = 0;
    for (; n < BATCH; n++) {
      const len = this.client.read(buf);
      if (len === 0) break;
      this.clientPacket(len);
    }
    return n;
  }

  /** One client packet in `buf`: recorded, translated, sent toward the server. */
  private clientPacket(len: number): void {
    const { buf, gateway: gw } = this;
    const now = this.clock();
    this.clientCapture?.write(buf, len, now * 1000);
    let out: number;
    // A bug in the gateway costs this packet, not the worker (as on the server path).
    try {
      out = gw.fromClient(buf, len, now);
    } catch (e) {
      this.failed(e);
      return;
    }
    if (gw.extraLength > 0) this.out(Toward.server, gw.extra, gw.extraLength, now);
    if (out > 0) this.out(Toward.server, buf, out, now);
  }

  /** Sends up to BATCH packets of the scripted clients through the gateway, as if read from tun-c. */
  fromScript(): number {
    const buf = this.buf;
    const script = this.script;
    if (script === null) return 0;
    let n = 0;
    for (; n < BATCH; n++) {
      const len = script.read(buf);
      if (len === 0) break;
      this.clientPacket(len);
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
      if (out > 0) this.out(Toward.client, buf, out, now);
    }
    return n;
  }

  private failed(e: unknown): void {
    this.counters.errors++;
    this.firstError ??= e;
  }

  /** A packet the gateway sends toward a side: through the faults if any, then the link. */
  private out(toward: number, buf: Uint8Array, len: number, now: number): void {
    this.now = now;
    const f = this.faults;
    if (f === null) this.deliver(toward, buf, len);
    else f.send(toward, buf, len, this.gateway.verdict.cls, this.gateway.verdict.index, now, this);
  }

  /** FaultSink: onto the link, recorded by that side's capture. */
  deliver(toward: number, buf: Uint8Array, len: number): void {
    const toServer = toward === Toward.server;
    (toServer ? this.serverCapture : this.clientCapture)?.write(buf, len, this.now * 1000);
    if (!toServer && this.script?.accept(buf, len)) return;
    if (!(toServer ? this.server : this.client).write(buf, len)) this.counters.writeBusy++;
  }

  tick(now: number): number {
    const f = this.faults;
    if (f === null || f.held === 0) return -1;
    this.now = now;
    return f.release(now, this);
  }

  /** Both sides until neither has anything (for in-memory devices). */
  pump(): number {
    let total = 0;
    for (;;) {
      const n = this.fromClient() + this.fromScript() + this.fromServer();
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

  tick(): number {
    return -1;
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
