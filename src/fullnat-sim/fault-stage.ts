import { readU16, readU32, writeU16, writeU32 } from "../option-codec/bytes.js";
import { CodecError } from "../option-codec/errors.js";
import { IpProtocol } from "../option-codec/ipv4.js";
import {
  fillIpv4Checksum,
  fillL4Checksum,
  PacketInfo,
  setIpLength,
} from "../option-codec/packet.js";
import { UdpField } from "../option-codec/udp.js";
import {
  type CorruptTarget,
  FAULT_FIELDS,
  type FaultAction,
  type FaultConfig,
  type FaultRule,
  Toward,
} from "./faults.js";
import { PacketClass } from "./packet-class.js";
import { Stat } from "./stats.js";

/** Where the stage sends what it lets through: the link toward one side. */
export interface FaultSink {
  deliver(toward: number, buf: Uint8Array, len: number): void;
}

/** Packets held at once (delayed or waiting to be reordered); more are sent at once and counted. */
const HELD_MAX = 4096;
const SLOT_BYTES = 2048;

/**
 * Applies fault rules to the packets the gateway sends, between the
 * gateway and the links: drops, copies, holds back (delay, reorder),
 * rewrites (corrupt, truncate), and enforces each link's MTU. It runs only
 * when faults are configured; packets it holds are copied into slots
 * allocated once (a slot grows only for a packet longer than 2 KiB).
 */
export class FaultStage {
  private readonly rules: readonly FaultRule[];
  private readonly seen: Float64Array;
  private readonly acted: Float64Array;
  private readonly info = new PacketInfo();
  private rng: number;

  // Held packets, struct of arrays; `heldCount` slots in use are packed at the front.
  private readonly slots: Uint8Array[] = [];
  private readonly heldLen = new Int32Array(HELD_MAX);
  private readonly heldToward = new Uint8Array(HELD_MAX);
  private readonly heldDue = new Float64Array(HELD_MAX);
  /** Reorder: packets the same way still to go out before this one; -1 for a delay. */
  private readonly heldAfter = new Int32Array(HELD_MAX);
  private heldCount = 0;

  constructor(
    readonly config: FaultConfig,
    private readonly stats: Float64Array,
  ) {
    this.rules = config.rules;
    this.seen = new Float64Array(this.rules.length);
    this.acted = new Float64Array(this.rules.length);
    this.rng = config.seed >>> 0 || 1;
  }

  /** Packets held now. */
  get held(): number {
    return this.heldCount;
  }

  /**
   * A packet the gateway sends `toward` a side, with its PacketClass bits
   * and (UDP toward the server) its index in the flow. The packet may be
   * changed in `buf`; whatever survives reaches `sink`, now or later.
   */
  send(
    toward: number,
    buf: Uint8Array,
    len: number,
    classes: number,
    index: number,
    now: number,
    sink: FaultSink,
  ): void {
    let n = len;
    let copies = 1;
    let delay = 0;
    let after = 0;
    let maxMs = 0;
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (!(r.toward & toward) || (classes & r.classes) !== r.classes) continue;
      if (
        r.first > 0 &&
        (toward !== Toward.server || !(classes & PacketClass.udp) || index > r.first)
      )
        continue;
      this.seen[i] = this.seen[i]! + 1;
      if (this.seen[i]! <= r.skip || this.acted[i]! >= r.count) continue;
      if (r.probability < 1 && this.random() >= r.probability) continue;
      const a = r.action;
      switch (a.kind) {
        case "drop":
          this.acted[i] = this.acted[i]! + 1;
          this.count(Stat.faultDropped);
          return;
        case "duplicate":
          copies += a.copies;
          this.count(Stat.faultDuplicated, a.copies);
          break;
        case "delay":
          delay = Math.max(delay, a.ms);
          this.count(Stat.faultDelayed);
          break;
        case "reorder":
          after = Math.max(after, a.after);
          maxMs = Math.max(maxMs, a.maxMs);
          this.count(Stat.faultReordered);
          break;
        case "corrupt":
          if (!this.corrupt(buf, n, a)) continue;
          this.count(Stat.faultCorrupted);
          break;
        case "truncate": {
          const m = this.truncate(buf, n, a);
          if (m === n) continue;
          n = m;
          this.count(Stat.faultTruncated);
          break;
        }
      }
      this.acted[i] = this.acted[i]! + 1;
    }
    const mtu = toward === Toward.server ? this.config.mtu.server : this.config.mtu.client;
    if (mtu > 0 && n > mtu) {
      this.count(Stat.faultMtuDropped);
      return;
    }
    for (let k = 0; k < copies; k++) {
      if ((delay > 0 || after > 0) && this.hold(toward, buf, n, now, delay, after, maxMs)) continue;
      sink.deliver(toward, buf, n);
      this.passed(toward, sink);
    }
  }

  /**
   * Sends the held packets whose time has come; returns the milliseconds
   * until the next one is due, or -1 when none is held.
   */
  release(now: number, sink: FaultSink): number {
    let next = -1;
    for (let i = 0; i < this.heldCount; ) {
      const due = this.heldDue[i]!;
      if (due <= now) {
        this.deliverHeld(i, sink);
        continue;
      }
      const wait = due - now;
      if (next < 0 || wait < next) next = wait;
      i++;
    }
    return next;
  }

  /** Sends every held packet now (on shutdown, or when the faults are switched off). */
  flush(sink: FaultSink): void {
    while (this.heldCount > 0) this.deliverHeld(0, sink);
  }

  private count(s: Stat, n = 1): void {
    this.stats[s] = this.stats[s]! + n;
  }

  /** xorshift32: small, fast, and the same sequence for the same seed. */
  private random(): number {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x >>> 0;
    return this.rng / 0x100000000;
  }

  private hold(
    toward: number,
    buf: Uint8Array,
    len: number,
    now: number,
    delay: number,
    after: number,
    maxMs: number,
  ): boolean {
    const i = this.heldCount;
    if (i >= HELD_MAX) {
      this.count(Stat.faultQueueFull);
      return false;
    }
    let slot = this.slots[i];
    if (slot === undefined || slot.length < len) {
      slot = new Uint8Array(Math.max(SLOT_BYTES, len));
      this.slots[i] = slot;
    }
    slot.set(buf.subarray(0, len));
    this.heldLen[i] = len;
    this.heldToward[i] = toward;
    this.heldAfter[i] = after > 0 ? after : -1;
    // A reordered packet that nothing overtakes goes out after maxMs anyway.
    this.heldDue[i] = now + (after > 0 ? Math.max(delay, maxMs) : delay);
    this.heldCount = i + 1;
    return true;
  }

  /** A packet went out toward `toward`: reordered packets waiting on it count down. */
  private passed(toward: number, sink: FaultSink): void {
    for (let i = 0; i < this.heldCount; ) {
      if (this.heldToward[i] === toward && this.heldAfter[i]! > 0) {
        this.heldAfter[i] = this.heldAfter[i]! - 1;
        if (this.heldAfter[i] === 0) {
          this.deliverHeld(i, sink);
          continue;
        }
      }
      i++;
    }
  }

  /** Sends held packet i and closes the gap, keeping the rest in order. */
  private deliverHeld(i: number, sink: FaultSink): void {
    const slot = this.slots[i]!;
    const len = this.heldLen[i]!;
    const toward = this.heldToward[i]!;
    const last = this.heldCount - 1;
    // Rotate the slot buffers so the one being sent ends up past the live ones.
    for (let j = i; j < last; j++) {
      this.slots[j] = this.slots[j + 1]!;
      this.heldLen[j] = this.heldLen[j + 1]!;
      this.heldToward[j] = this.heldToward[j + 1]!;
      this.heldDue[j] = this.heldDue[j + 1]!;
      this.heldAfter[j] = this.heldAfter[j + 1]!;
    }
    this.slots[last] = slot;
    this.heldCount = last;
    sink.deliver(toward, slot, len);
  }

  /** Applies a corrupt action; false when the packet has no such field (the rule did not act). */
  private corrupt(
    buf: Uint8Array,
    len: number,
    a: Extract<FaultAction, { kind: "corrupt" }>,
  ): boolean {
    const info = this.info;
    try {
      info.parse(buf, len);
    } catch (e) {
      if (e instanceof CodecError) return false;
      throw e;
    }
    const at = locate(buf, info, a.target);
    if (at < 0) return false;
    const width = a.target.at === "field" ? FAULT_FIELDS[a.target.field].width : 1;
    if (at + width > info.length) return false;
    const old = width === 4 ? readU32(buf, at) : width === 2 ? readU16(buf, at) : buf[at]!;
    const mask = width === 4 ? 0xffffffff : width === 2 ? 0xffff : 0xff;
    const v = (a.op === "set" ? a.value : a.op === "xor" ? old ^ a.value : old + a.value) & mask;
    if (width === 4) writeU32(buf, at, v >>> 0);
    else if (width === 2) writeU16(buf, at, v);
    else buf[at] = v;
    if (a.checksum === "fix") {
      fillIpv4Checksum(buf, info);
      if (
        !info.isFragment &&
        (info.protocol === IpProtocol.tcp || info.protocol === IpProtocol.udp)
      )
        fillL4Checksum(buf, info);
    }
    return true;
  }

  /** Applies a truncate action; returns the new length (the old one when it did not act). */
  private truncate(
    buf: Uint8Array,
    len: number,
    a: Extract<FaultAction, { kind: "truncate" }>,
  ): number {
    const n = a.to > 0 ? Math.min(len, a.to) : Math.max(1, len - a.by);
    if (n >= len) return len;
    if (a.lengths === "keep") return n;
    const info = this.info;
    try {
      info.parse(buf, len);
    } catch (e) {
      if (e instanceof CodecError) return n;
      throw e;
    }
    // Cut inside the L4 header: no length can make it whole again; send it cut.
    const l4Min = info.protocol === IpProtocol.tcp ? info.tcpHeaderLength : 8;
    if (n < info.l4Offset + l4Min) return n;
    setIpLength(buf, info, n);
    if (info.protocol === IpProtocol.udp)
      writeU16(buf, info.l4Offset + UdpField.length, n - info.l4Offset);
    fillIpv4Checksum(buf, info);
    if (info.protocol === IpProtocol.tcp || info.protocol === IpProtocol.udp)
      fillL4Checksum(buf, info);
    return n;
  }
}

/** The byte offset a corrupt target names in this packet, or -1 if it has none. */
function locate(buf: Uint8Array, info: PacketInfo, t: CorruptTarget): number {
  switch (t.at) {
    case "byte":
      return t.byte < info.length ? t.byte : -1;
    case "payload":
      if (info.protocol !== IpProtocol.tcp && info.protocol !== IpProtocol.udp) return -1;
      return info.payloadOffset + t.byte < info.length ? info.payloadOffset + t.byte : -1;
    case "field": {
      const f = FAULT_FIELDS[t.field];
      if (f.layer === "ip4") return info.family === 4 ? f.offset : -1;
      if (f.layer === "ip") return info.family === 4 ? 8 : 7;
      const proto = f.layer === "tcp" ? IpProtocol.tcp : IpProtocol.udp;
      return info.protocol === proto && !info.isFragment ? info.l4Offset + f.offset : -1;
    }
    case "tcp-option":
      if (info.protocol !== IpProtocol.tcp || info.isFragment) return -1;
      return findOption(
        buf,
        info.l4Offset + 20,
        info.l4Offset + info.tcpHeaderLength,
        t.kind,
        t.byte,
      );
    case "ip-option":
      if (info.family !== 4) return -1;
      return findOption(buf, 20, info.ipHeaderLength, t.kind, t.byte);
  }
}

/**
 * Byte `byte` of the first option of `kind` in [start, end), or -1. The
 * walk stops at END and at a length that is silly or runs past the area,
 * as tcp_parse_options does.
 */
function findOption(
  buf: Uint8Array,
  start: number,
  end: number,
  kind: number,
  byte: number,
): number {
  let i = start;
  while (i < end) {
    const k = buf[i]!;
    if (k === 0) return -1;
    if (k === 1) {
      if (kind === 1 && byte === 0) return i;
      i++;
      continue;
    }
    if (i + 1 >= end) return -1;
    const l = buf[i + 1]!;
    if (l < 2 || i + l > end) return -1;
    if (k === kind) return byte < l ? i + byte : -1;
    i += l;
  }
  return -1;
}
