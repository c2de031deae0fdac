import type { ScriptedClients } from "../craft/scripted-clients.js";
import type { FaultSink, FaultStage } from "../fullnat-sim/fault-stage.js";
import { Toward } from "../fullnat-sim/faults.js";
import type { Gateway } from "../fullnat-sim/gateway.js";
import { bump, Stat } from "../fullnat-sim/stats.js";
import { CodecError } from "../option-codec/errors.js";
import { PacketInfo } from "../option-codec/packet.js";
import { TcpSegmenter } from "../option-codec/tcp-segment.js";
import { VNET_HDR_LEN } from "../option-codec/vnet-hdr.js";
import type { TunDevice } from "../tun/device.js";
import type { PcapWriter } from "../tun/pcap-writer.js";
import { Arrival, OffloadFrames } from "./offload-frames.js";

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

export interface PacketLoopOptions {
  /**
   * The TUNs were opened with IFF_VNET_HDR and offloads (tun/device.ts):
   * every frame starts with a virtio_net_hdr, and TCP comes as super-packets
   * with partial checksums (offload-frames.ts). The MTU then sizes the
   * segments of the super-packets that leave.
   */
  readonly offload?: { readonly mtu: number };
}

/**
 * Moves packets between the two TUN devices through the gateway, run to
 * completion: read, translate in place, write, with one reused buffer. The
 * same loop runs over MemoryTun in the unit tests.
 *
 * With offloads, a super-packet crosses the gateway whole while nothing
 * else looks at single packets; faults, captures and scripted clients see
 * wire segments, so while any of them is on, super-packets are cut in
 * software (TcpSegmenter) before the gateway, and every packet crosses it
 * as it would without offloads.
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
  /** The frame read from a device: virtio_net_hdr (with offloads), then the packet. */
  private readonly frame = new Uint8Array(VNET_HDR_LEN + BUFFER);
  /** The packet in frame, after the header if any. */
  private readonly buf: Uint8Array;
  /** 0, or VNET_HDR_LEN with offloads. */
  private readonly hdr: number;
  private readonly offload: OffloadFrames | null;
  /** Wire segments of a super-packet cut in software, written after an empty header. */
  private readonly segFrame: Uint8Array;
  private readonly seg: Uint8Array;
  private readonly segmenter: TcpSegmenter | null;
  private readonly segInfo = new PacketInfo();
  /** Other packets (held by faults, the UOA probe) copied behind an empty header. */
  private readonly spare: Uint8Array;
  private readonly clientSegment = (b: Uint8Array, len: number): void =>
    this.clientPacket(b, len, Arrival.plain);
  private readonly serverSegment = (b: Uint8Array, len: number): void =>
    this.serverPacket(b, len, Arrival.plain);
  private now = 0;

  constructor(
    public gateway: Gateway,
    readonly client: TunDevice,
    readonly server: TunDevice,
    readonly clock: () => number,
    opts: PacketLoopOptions = {},
  ) {
    const o = opts.offload;
    this.hdr = o === undefined ? 0 : VNET_HDR_LEN;
    this.buf = this.frame.subarray(this.hdr);
    this.offload = o === undefined ? null : new OffloadFrames(this.frame, o.mtu);
    this.segFrame = new Uint8Array(o === undefined ? 0 : VNET_HDR_LEN + BUFFER);
    this.seg = this.segFrame.subarray(VNET_HDR_LEN);
    this.segmenter = o === undefined ? null : new TcpSegmenter(this.seg);
    this.spare = new Uint8Array(o === undefined ? 0 : VNET_HDR_LEN + BUFFER);
  }

  /** Faults, captures or scripted clients want to see every wire packet. */
  private wholePackets(): boolean {
    return (
      this.faults !== null ||
      this.script !== null ||
      this.clientCapture !== null ||
      this.serverCapture !== null
    );
  }

  /** Drains up to BATCH packets from the client side; returns how many were read. */
  fromClient(): number {
    return this.drain(this.client, true);
  }

  /** Drains up to BATCH packets from the server side. */
  fromServer(): number {
    return this.drain(this.server, false);
  }

  private drain(dev: TunDevice, fromClient: boolean): number {
    let n = 0;
    for (; n < BATCH; n++) {
      const len = dev.read(this.frame) - this.hdr;
      if (len <= 0) break;
      this.arrived(len, fromClient);
    }
    return n;
  }

  /** A frame of `len` packet bytes from one side: to the gateway whole, or cut into wire segments first. */
  private arrived(len: number, fromClient: boolean): void {
    const off = this.offload;
    if (off === null) {
      if (fromClient) this.clientPacket(this.buf, len, Arrival.plain);
      else this.serverPacket(this.buf, len, Arrival.plain);
      return;
    }
    const whole = this.wholePackets();
    let arrival: Arrival;
    try {
      arrival = off.arrive(len, !whole);
      if (arrival === Arrival.cut || (arrival === Arrival.superPacket && whole)) {
        const each = fromClient ? this.clientSegment : this.serverSegment;
        this.segmenter!.segment(this.buf, this.segInfo.parse(this.buf, len), off.gsoSize, each);
        bump(this.gateway.stats, Stat.superPacketsSegmented);
        return;
      }
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      arrival = Arrival.bad;
    }
    if (arrival === Arrival.bad) {
      bump(this.gateway.stats, Stat.dropMalformed);
      return;
    }
    if (fromClient) this.clientPacket(this.buf, len, arrival);
    else this.serverPacket(this.buf, len, arrival);
  }

  /** One client packet in `buf`: recorded, translated, sent toward the server. */
  private clientPacket(buf: Uint8Array, len: number, arrival: Arrival): void {
    const gw = this.gateway;
    const now = this.clock();
    this.clientCapture?.write(buf, len, now * 1000);
    let out: number;
    // A bug in the gateway costs this packet, not the worker (as on the server path).
    try {
      if (this.offload !== null) gw.superPackets(arrival === Arrival.superPacket);
      out = gw.fromClient(buf, len, now);
    } catch (e) {
      this.failed(e);
      return;
    }
    if (gw.extraLength > 0) this.out(Toward.server, gw.extra, gw.extraLength, now);
    if (out > 0 && this.departs(buf, arrival)) this.out(Toward.server, buf, out, now);
  }

  /** One server packet in `buf`: recorded, translated, sent toward the client. */
  private serverPacket(buf: Uint8Array, len: number, arrival: Arrival): void {
    const gw = this.gateway;
    const now = this.clock();
    this.serverCapture?.write(buf, len, now * 1000);
    let out: number;
    try {
      out = gw.fromServer(buf, len, now);
    } catch (e) {
      this.failed(e);
      return;
    }
    if (out > 0 && this.departs(buf, arrival)) this.out(Toward.client, buf, out, now);
  }

  /** With offloads, the header of the packet in the frame (segments have theirs, empty). */
  private departs(buf: Uint8Array, arrival: Arrival): boolean {
    const off = this.offload;
    if (off === null || buf !== this.buf) return true;
    if (arrival === Arrival.superPacket) bump(this.gateway.stats, Stat.superPackets);
    if (off.depart(arrival, this.gateway.packet)) return true;
    bump(this.gateway.stats, Stat.dropTooBig);
    return false;
  }

  /** Sends up to BATCH packets of the scripted clients through the gateway, as if read from tun-c. */
  fromScript(): number {
    const script = this.script;
    if (script === null) return 0;
    let n = 0;
    for (; n < BATCH; n++) {
      const len = script.read(this.buf);
      if (len === 0) break;
      this.clientPacket(this.buf, len, Arrival.plain);
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
    const dev = toServer ? this.server : this.client;
    const hdr = this.hdr;
    let ok: boolean;
    // With offloads a packet goes out in its frame, header first.
    if (hdr === 0) ok = dev.write(buf, len);
    else if (buf === this.buf) ok = dev.write(this.frame, hdr + len);
    else if (buf === this.seg) ok = dev.write(this.segFrame, hdr + len);
    else {
      // Held by faults, or the UOA probe: rare, copied behind an empty header.
      this.spare.set(buf.subarray(0, len), hdr);
      ok = dev.write(this.spare, hdr + len);
    }
    if (!ok) this.counters.writeBusy++;
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
  /** The frame read: with offloads its virtio_net_hdr, which crosses unchanged, then the packet. */
  private readonly frame = new Uint8Array(VNET_HDR_LEN + BUFFER);
  private readonly pkt: Uint8Array;
  private readonly hdr: number;

  constructor(
    readonly client: TunDevice,
    readonly server: TunDevice,
    readonly clock: () => number,
    opts: PacketLoopOptions = {},
  ) {
    this.hdr = opts.offload === undefined ? 0 : VNET_HDR_LEN;
    this.pkt = this.frame.subarray(this.hdr);
  }

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
    const { frame, pkt, hdr } = this;
    let n = 0;
    for (; n < BATCH; n++) {
      const len = from.read(frame);
      if (len <= hdr) break;
      // The clock only when capturing: the copy itself needs no time.
      if (inCap !== null || outCap !== null) {
        const us = this.clock() * 1000;
        inCap?.write(pkt, len - hdr, us);
        outCap?.write(pkt, len - hdr, us);
      }
      if (!to.write(frame, len)) this.counters.writeBusy++;
    }
    return n;
  }
}
