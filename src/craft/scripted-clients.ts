import type { Endpoint, IpAddress } from "../option-codec/address.js";
import { familyOf, formatIp } from "../option-codec/address.js";
import { readU16, readU32, writeU16, writeU32 } from "../option-codec/bytes.js";
import { finish, pseudoHeaderSum, sumBytes } from "../option-codec/checksum.js";
import { IpProtocol } from "../option-codec/ipv4.js";
import { TcpFlag } from "../option-codec/tcp.js";
import { NO_OPTIONS, type SegmentOptions } from "./segment-options.js";

/**
 * Clients that toasim plays itself, without a kernel: they build every
 * packet (any TCP option, a forged TOA included) and use any number of
 * source addresses without configuring them, because their packets go
 * straight into the gateway and its answers to them are taken off before
 * they would reach the client namespace. Each connection: SYN, SYN-ACK,
 * handshake ACK, one request, the server's answer, the close; then the
 * answer is checked against the connection's own address when the server
 * reports what it saw (the reader servers' JSON line).
 *
 * State lives in typed arrays, one entry a connection (100,000 cost a few
 * MB), packets wait in a ring of buffers allocated once: nothing is
 * allocated per packet. Connection i uses address i mod N and port
 * portBase + floor(i / N), so a packet's connection is found by arithmetic.
 */

export interface ScriptSpec {
  readonly target: Endpoint;
  /** Sources: `count` consecutive addresses from `base`. */
  readonly base: IpAddress;
  readonly count: number;
  readonly portBase: number;
  readonly connections: number;
  /** Connections open at once, at most. */
  readonly concurrency: number;
  /** New connections per second, at most (0: as fast as concurrency allows). */
  readonly rate: number;
  readonly request: Uint8Array;
  readonly synOptions: SegmentOptions;
  /** On the handshake ACK. */
  readonly ackOptions: SegmentOptions;
  /** On every later segment. */
  readonly segmentOptions: SegmentOptions;
  /** Send the request on the handshake ACK instead of after it. */
  readonly dataOnAck: boolean;
  /** Give up on a connection after this long (it is reset). */
  readonly timeoutMs: number;
  /** Check the server's JSON report: "peer" must be this connection's address and port. */
  readonly expectPeer: boolean;
}

export const ConnPhase = {
  idle: 0,
  synSent: 1,
  established: 2,
  /** Our FIN is out. */
  closing: 3,
  done: 4,
  failed: 5,
} as const;

/** Why connections failed, by reason. */
export const FAILURES = ["timeout", "reset", "bad-answer"] as const;
export type Failure = (typeof FAILURES)[number];

export interface Mismatch {
  readonly client: string;
  readonly port: number;
  readonly seen: string;
}

export interface ScriptResults {
  opened: number;
  completed: number;
  matched: number;
  mismatched: number;
  failed: Record<Failure, number>;
  retransmits: number;
  /** The first few connections whose server saw someone else. */
  mismatches: Mismatch[];
}

const RING = 1024;
const SLOT = 1600;
const RX = 2048;
const RTO_MS = 1000;
// Doubling as TCP does (1, 2, 4, 8, 16 s): a guest stalled for seconds under
// software emulation loses a connection only when its deadline passes.
const MAX_RETRIES = 5;
const WINDOW = 65535;
const MAX_MISMATCHES = 10;

// Per-connection flags.
const F_REQ_ACKED = 1;
const F_REPORT = 2;
const F_PEER_FIN = 4;
const F_FIN_ACKED = 8;
const F_TS = 16;

export class ScriptedClients {
  readonly results: ScriptResults = {
    opened: 0,
    completed: 0,
    matched: 0,
    mismatched: 0,
    failed: { timeout: 0, reset: 0, "bad-answer": 0 },
    retransmits: 0,
    mismatches: [],
  };
  private readonly family: 4 | 6;
  private readonly alen: number;
  private readonly phase: Uint8Array;
  private readonly flags: Uint8Array;
  private readonly iss: Uint32Array;
  private readonly sndNxt: Uint32Array;
  private readonly rcvNxt: Uint32Array;
  private readonly tsRecent: Uint32Array;
  private readonly retries: Uint8Array;
  private readonly timer: Float64Array;
  private readonly deadline: Float64Array;
  private readonly slotOf: Int32Array;
  // In-flight connections and their receive buffers, by slot.
  private readonly connOf: Int32Array;
  private readonly rx: Uint8Array;
  private readonly rxLen: Int32Array;
  private readonly freeSlots: Int32Array;
  private freeCount: number;
  private next = 0;
  private inFlight = 0;
  private finished = 0;
  private tokens = 0;
  private lastTick = -1;
  // Outgoing packets.
  private readonly ring: Uint8Array;
  private readonly ringLen = new Int32Array(RING);
  private head = 0;
  private tail = 0;
  private ipId = 1;
  private readonly addr = new Uint8Array(16);
  private readonly decoder = new TextDecoder();

  constructor(
    readonly spec: ScriptSpec,
    private readonly clock: () => number,
  ) {
    const n = spec.connections;
    this.family = familyOf(spec.base);
    this.alen = spec.base.length;
    this.phase = new Uint8Array(n);
    this.flags = new Uint8Array(n);
    this.iss = new Uint32Array(n);
    this.sndNxt = new Uint32Array(n);
    this.rcvNxt = new Uint32Array(n);
    this.tsRecent = new Uint32Array(n);
    this.retries = new Uint8Array(n);
    this.timer = new Float64Array(n);
    this.deadline = new Float64Array(n);
    this.slotOf = new Int32Array(n).fill(-1);
    const c = spec.concurrency;
    this.connOf = new Int32Array(c).fill(-1);
    this.rx = new Uint8Array(c * RX);
    this.rxLen = new Int32Array(c);
    this.freeSlots = new Int32Array(c);
    for (let i = 0; i < c; i++) this.freeSlots[i] = c - 1 - i;
    this.freeCount = c;
    this.ring = new Uint8Array(RING * SLOT);
    this.addr.set(spec.base);
  }

  /** Every connection has completed or failed. */
  get done(): boolean {
    return this.finished === this.spec.connections;
  }

  get active(): number {
    return this.inFlight;
  }

  /** Packets waiting to go into the gateway. */
  get pending(): number {
    return (this.tail - this.head + RING) % RING;
  }

  /** The next packet toward the gateway, copied into `buf`; 0 when none. */
  read(buf: Uint8Array): number {
    if (this.head === this.tail) return 0;
    const len = this.ringLen[this.head]!;
    buf.set(this.ring.subarray(this.head * SLOT, this.head * SLOT + len));
    this.head = (this.head + 1) % RING;
    return len;
  }

  /**
   * Opens connections as rate and concurrency allow and runs the timers;
   * returns how many ms until it wants to be called again.
   */
  tick(now: number): number {
    const s = this.spec;
    if (this.lastTick < 0) this.lastTick = now;
    if (s.rate > 0) {
      this.tokens = Math.min(
        this.tokens + ((now - this.lastTick) * s.rate) / 1000,
        Math.max(1, s.rate / 100),
      );
    }
    this.lastTick = now;
    while (this.next < s.connections && this.freeCount > 0 && this.room() > 8) {
      if (s.rate > 0) {
        if (this.tokens < 1) break;
        this.tokens -= 1;
      }
      this.open(this.next++, now);
    }
    let wait = this.next < s.connections && s.rate > 0 ? 1 : RTO_MS;
    for (let slot = 0; slot < s.concurrency; slot++) {
      const c = this.connOf[slot]!;
      if (c < 0) continue;
      if (now >= this.deadline[c]!) {
        this.fail(c, "timeout", true);
        continue;
      }
      if (now >= this.timer[c]!) this.retransmit(c, now);
      wait = Math.min(wait, this.timer[c]! - now, this.deadline[c]! - now);
    }
    return Math.max(0, wait);
  }

  /**
   * A packet the gateway sends toward a client: if it is for one of ours,
   * it is taken (true) and answered; otherwise it goes to the client namespace.
   */
  accept(buf: Uint8Array, len: number): boolean {
    const v4 = this.family === 4;
    if (len < (v4 ? 40 : 60) || buf[0]! >> 4 !== this.family) return false;
    const l4 = v4 ? (buf[0]! & 0x0f) * 4 : 40;
    if (buf[v4 ? 9 : 6] !== IpProtocol.tcp || l4 + 20 > len) return false;
    const c = this.connFor(buf, v4 ? 16 : 24, readU16(buf, l4 + 2));
    if (c < 0) return false;
    this.segment(c, buf, l4, v4 ? readU16(buf, 2) : 40 + readU16(buf, 4));
    return true;
  }

  /** The connection a destination address and port belong to, or -1. */
  private connFor(buf: Uint8Array, dst: number, port: number): number {
    const s = this.spec;
    const b = s.base;
    const n = this.alen;
    for (let i = 0; i < n - 4; i++) if (buf[dst + i] !== b[i]) return -1;
    const low = readU32(buf, dst + n - 4) - readU32(b, n - 4);
    if (low < 0 || low >= s.count) return -1;
    const k = port - s.portBase;
    if (k < 0) return -1;
    const c = k * s.count + low;
    return c < s.connections && this.phase[c] !== ConnPhase.idle ? c : -1;
  }

  private open(c: number, now: number): void {
    const slot = this.freeSlots[--this.freeCount]!;
    this.connOf[slot] = c;
    this.slotOf[c] = slot;
    this.rxLen[slot] = 0;
    this.inFlight++;
    this.results.opened++;
    // ISNs spread over the space, fixed by the connection's number.
    const iss = Math.imul(c + 1, 0x9e3779b1) >>> 0;
    this.iss[c] = iss;
    this.sndNxt[c] = (iss + 1) >>> 0;
    this.phase[c] = ConnPhase.synSent;
    this.deadline[c] = now + this.spec.timeoutMs;
    this.send(c, iss, 0, TcpFlag.syn, this.spec.synOptions, false, now);
  }

  private retransmit(c: number, now: number): void {
    if (this.retries[c]! >= MAX_RETRIES) {
      this.fail(c, "timeout", true);
      return;
    }
    this.retries[c] = this.retries[c]! + 1;
    this.results.retransmits++;
    const p = this.phase[c]!;
    const s = this.spec;
    if (p === ConnPhase.synSent) {
      this.send(c, this.iss[c]!, 0, TcpFlag.syn, s.synOptions, false, now);
    } else if (p === ConnPhase.established && !(this.flags[c]! & F_REQ_ACKED)) {
      this.send(
        c,
        (this.iss[c]! + 1) >>> 0,
        this.rcvNxt[c]!,
        TcpFlag.ack | TcpFlag.psh,
        s.segmentOptions,
        true,
        now,
      );
    } else if (p === ConnPhase.closing && !(this.flags[c]! & F_FIN_ACKED)) {
      this.send(
        c,
        (this.sndNxt[c]! - 1) >>> 0,
        this.rcvNxt[c]!,
        TcpFlag.fin | TcpFlag.ack,
        s.segmentOptions,
        false,
        now,
      );
    } else {
      this.timer[c] = now + this.rto(c);
    }
  }

  private rto(c: number): number {
    return RTO_MS << Math.min(this.retries[c]!, MAX_RETRIES - 1);
  }

  private segment(c: number, buf: Uint8Array, l4: number, end: number): void {
    const now = this.clock();
    const f = buf[l4 + 13]!;
    const seq = readU32(buf, l4 + 4);
    const ack = readU32(buf, l4 + 8);
    const hl = (buf[l4 + 12]! >> 4) * 4;
    const data = l4 + hl;
    const dlen = Math.max(0, end - data);
    const p = this.phase[c]!;
    const s = this.spec;
    if (p === ConnPhase.done || p === ConnPhase.failed) {
      // A late FIN or retransmission: acknowledge it without state, so the
      // server does not resend it for minutes.
      if (p === ConnPhase.done && f & (TcpFlag.fin | TcpFlag.psh))
        this.send(c, this.sndNxt[c]!, this.rcvNxt[c]!, TcpFlag.ack, s.segmentOptions, false, now);
      return;
    }
    if (f & TcpFlag.rst) {
      this.fail(c, "reset", false);
      return;
    }
    this.readTimestamp(c, buf, l4 + 20, data);
    if (p === ConnPhase.synSent) {
      if ((f & (TcpFlag.syn | TcpFlag.ack)) !== (TcpFlag.syn | TcpFlag.ack)) return;
      if (ack !== this.sndNxt[c]) return;
      this.rcvNxt[c] = (seq + 1) >>> 0;
      this.phase[c] = ConnPhase.established;
      this.retries[c] = 0;
      const iss1 = this.sndNxt[c]!;
      if (s.dataOnAck) {
        this.send(c, iss1, this.rcvNxt[c]!, TcpFlag.ack | TcpFlag.psh, s.ackOptions, true, now);
      } else {
        this.send(c, iss1, this.rcvNxt[c]!, TcpFlag.ack, s.ackOptions, false, now);
        this.send(c, iss1, this.rcvNxt[c]!, TcpFlag.ack | TcpFlag.psh, s.segmentOptions, true, now);
      }
      this.sndNxt[c] = (iss1 + s.request.length) >>> 0;
      return;
    }
    if (f & TcpFlag.ack) {
      const reqEnd = (this.iss[c]! + 1 + s.request.length) >>> 0;
      if (ack === reqEnd || (p === ConnPhase.closing && ack === this.sndNxt[c])) {
        this.flags[c] = this.flags[c]! | F_REQ_ACKED;
        this.retries[c] = 0;
      }
      if (p === ConnPhase.closing && ack === this.sndNxt[c])
        this.flags[c] = this.flags[c]! | F_FIN_ACKED;
    }
    let answer = false;
    if (dlen > 0 || f & TcpFlag.fin) {
      if (seq === this.rcvNxt[c]) {
        if (dlen > 0) this.take(c, buf, data, dlen);
        this.rcvNxt[c] = (seq + dlen + (f & TcpFlag.fin ? 1 : 0)) >>> 0;
        if (f & TcpFlag.fin) this.flags[c] = this.flags[c]! | F_PEER_FIN;
      }
      answer = true;
    }
    const fl = this.flags[c]!;
    if (this.phase[c] === ConnPhase.established && fl & (F_REPORT | F_PEER_FIN)) {
      // The answer is in (or the server is done): close from our side.
      this.phase[c] = ConnPhase.closing;
      this.send(
        c,
        this.sndNxt[c]!,
        this.rcvNxt[c]!,
        TcpFlag.fin | TcpFlag.ack,
        s.segmentOptions,
        false,
        now,
      );
      this.sndNxt[c] = (this.sndNxt[c]! + 1) >>> 0;
      answer = false;
    } else if (answer) {
      this.send(c, this.sndNxt[c]!, this.rcvNxt[c]!, TcpFlag.ack, s.segmentOptions, false, now);
    }
    if (
      this.phase[c] === ConnPhase.closing &&
      (this.flags[c]! & (F_FIN_ACKED | F_PEER_FIN)) === (F_FIN_ACKED | F_PEER_FIN)
    ) {
      this.complete(c);
    }
  }

  private readTimestamp(c: number, buf: Uint8Array, start: number, end: number): void {
    for (let i = start; i < end; ) {
      const k = buf[i]!;
      if (k === 0) return;
      if (k === 1) {
        i++;
        continue;
      }
      const l = buf[i + 1]!;
      if (l < 2 || i + l > end) return;
      if (k === 8 && l === 10) {
        this.tsRecent[c] = readU32(buf, i + 2);
        this.flags[c] = this.flags[c]! | F_TS;
        return;
      }
      i += l;
    }
  }

  /** In-order payload into the connection's buffer; a newline ends the report. */
  private take(c: number, buf: Uint8Array, off: number, len: number): void {
    const slot = this.slotOf[c]!;
    if (slot < 0) return;
    const have = this.rxLen[slot]!;
    const n = Math.min(len, RX - have);
    this.rx.set(buf.subarray(off, off + n), slot * RX + have);
    this.rxLen[slot] = have + n;
    for (let i = 0; i < n; i++) {
      if (buf[off + i] === 0x0a) {
        this.flags[c] = this.flags[c]! | F_REPORT;
        return;
      }
    }
  }

  private complete(c: number): void {
    this.phase[c] = ConnPhase.done;
    const slot = this.slotOf[c]!;
    const r = this.results;
    if (this.spec.expectPeer) {
      const text = this.decoder.decode(this.rx.subarray(slot * RX, slot * RX + this.rxLen[slot]!));
      const seen = peerOf(text);
      if (seen === null) {
        this.release(c);
        r.failed["bad-answer"]++;
        return;
      }
      const me = this.clientAddress(c);
      const port = this.clientPort(c);
      if (seen.address === me && seen.port === port) r.matched++;
      else {
        r.mismatched++;
        if (r.mismatches.length < MAX_MISMATCHES)
          r.mismatches.push({ client: me, port, seen: `${seen.address} port ${seen.port}` });
      }
    }
    r.completed++;
    this.release(c);
  }

  private fail(c: number, why: Failure, reset: boolean): void {
    if (reset && this.phase[c] !== ConnPhase.synSent) {
      this.send(c, this.sndNxt[c]!, 0, TcpFlag.rst, NO_OPTIONS, false, this.clock());
    }
    this.phase[c] = ConnPhase.failed;
    this.results.failed[why]++;
    this.release(c);
  }

  private release(c: number): void {
    const slot = this.slotOf[c]!;
    if (slot >= 0) {
      this.connOf[slot] = -1;
      this.freeSlots[this.freeCount++] = slot;
      this.slotOf[c] = -1;
      this.inFlight--;
    }
    this.finished++;
  }

  clientAddress(c: number): string {
    const a = this.spec.base.slice();
    writeU32(a, a.length - 4, (readU32(a, a.length - 4) + (c % this.spec.count)) >>> 0);
    return formatIp(a);
  }

  clientPort(c: number): number {
    return this.spec.portBase + Math.floor(c / this.spec.count);
  }

  private room(): number {
    return RING - 1 - this.pending;
  }

  /** Builds one segment of connection c into the ring (dropped, like on a full link, if there is no room). */
  private send(
    c: number,
    seq: number,
    ack: number,
    flags: number,
    opts: SegmentOptions,
    withRequest: boolean,
    now: number,
  ): void {
    if (this.room() <= 0) return;
    const s = this.spec;
    const out = this.ring;
    const base = this.tail * SLOT;
    const v4 = this.family === 4;
    const ipLen = v4 ? 20 : 40;
    const payload = withRequest ? s.request.length : 0;
    const tcpLen = 20 + opts.bytes.length;
    const total = ipLen + tcpLen + payload;
    // Source address: the base plus the connection's address index.
    const a = this.addr;
    const n = this.alen;
    writeU32(a, n - 4, (readU32(s.base, n - 4) + (c % s.count)) >>> 0);
    if (v4) {
      out[base] = 0x45;
      out[base + 1] = 0;
      writeU16(out, base + 2, total);
      writeU16(out, base + 4, this.ipId);
      this.ipId = (this.ipId + 1) & 0xffff;
      writeU16(out, base + 6, 0x4000);
      out[base + 8] = 64;
      out[base + 9] = IpProtocol.tcp;
      writeU16(out, base + 10, 0);
      out.set(a.subarray(0, 4), base + 12);
      out.set(s.target.addr, base + 16);
      writeU16(out, base + 10, finish(sumBytes(out, base, 20)));
    } else {
      writeU32(out, base, 0x60000000);
      writeU16(out, base + 4, tcpLen + payload);
      out[base + 6] = IpProtocol.tcp;
      out[base + 7] = 64;
      out.set(a, base + 8);
      out.set(s.target.addr, base + 24);
    }
    const t = base + ipLen;
    writeU16(out, t, this.clientPort(c));
    writeU16(out, t + 2, s.target.port);
    writeU32(out, t + 4, seq >>> 0);
    writeU32(out, t + 8, flags & TcpFlag.ack ? ack >>> 0 : 0);
    out[t + 12] = (tcpLen / 4) << 4;
    out[t + 13] = flags;
    writeU16(out, t + 14, WINDOW);
    writeU16(out, t + 16, 0);
    writeU16(out, t + 18, 0);
    out.set(opts.bytes, t + 20);
    if (opts.tsAt >= 0) {
      writeU32(out, t + 20 + opts.tsAt, Math.floor(now) >>> 0);
      writeU32(out, t + 20 + opts.tsAt + 4, this.flags[c]! & F_TS ? this.tsRecent[c]! : 0);
    }
    if (opts.sackAt >= 0) {
      // Blocks above what the server sent, as a receiver reporting later data would.
      for (let b = 0; b < opts.sackBlocks; b++) {
        const at = t + 20 + opts.sackAt + b * 8;
        writeU32(out, at, (this.rcvNxt[c]! + 1000 * (b + 1)) >>> 0);
        writeU32(out, at + 4, (this.rcvNxt[c]! + 1000 * (b + 1) + 500) >>> 0);
      }
    }
    if (withRequest) out.set(s.request, t + tcpLen);
    const src = v4 ? base + 12 : base + 8;
    const dst = v4 ? base + 16 : base + 24;
    const ps = pseudoHeaderSum(out, src, dst, v4 ? 4 : 16, IpProtocol.tcp, tcpLen + payload);
    writeU16(out, t + 16, finish(sumBytes(out, t, tcpLen + payload, ps)));
    this.ringLen[this.tail] = total;
    this.tail = (this.tail + 1) % RING;
    this.timer[c] = now + this.rto(c);
  }
}

/** An IPv4 client as a dual-stack socket reports it (::ffff:a.b.c.d), as plain IPv4. */
export function unmapV4(address: string): string {
  return address.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1");
}

/** The "peer" of a reader server's JSON report, or null if the text is not one. */
export function peerOf(text: string): { address: string; port: number } | null {
  const line = text.split("\n")[0] ?? "";
  try {
    const o = JSON.parse(line) as { peer?: { address?: unknown; port?: unknown } };
    const p = o.peer;
    if (typeof p?.address === "string" && typeof p.port === "number") {
      return { address: unmapV4(p.address), port: p.port };
    }
  } catch {
    // Not JSON: not a report.
  }
  return null;
}
