/**
 * The connection table: one slot per tracked flow, struct-of-arrays in
 * typed arrays (about 80 bytes a connection with its index entries, and no
 * object per flow), with two hash indexes — by the client side (client
 * address and port, service) and by the server side (LIP and port) — whose
 * chains live in the same arrays. Keys are hashed straight from packet
 * bytes, so a lookup allocates nothing.
 */

export const ConnState = {
  free: 0,
  /** TCP: client SYN seen. */
  synSent: 1,
  /** TCP: server SYN-ACK seen. */
  synReceived: 2,
  established: 3,
  /** TCP: one side sent FIN. */
  finWait: 4,
  /** TCP: both sides sent FIN, or RST seen. */
  closing: 5,
  /** UDP flow. */
  udp: 6,
} as const;
export type ConnState = (typeof ConnState)[keyof typeof ConnState];

export const ConnFlag = {
  serverIsnSeen: 1,
  prefixSent: 2,
  clientFin: 4,
  serverFin: 8,
  /** The client's first ACK after the SYN-ACK went by (the handshake ACK). */
  clientAcked: 16,
} as const;

const NIL = -1;

function hashBytes(h: number, b: Uint8Array, off: number, len: number): number {
  let x = h;
  for (let i = 0; i < len; i++) x = Math.imul(x ^ b[off + i]!, 0x01000193);
  return x;
}

function mix(h: number, v: number): number {
  return Math.imul(h ^ v, 0x01000193);
}

export class ConnTable {
  capacity: number;
  size = 0;
  // Per-connection fields.
  state: Uint8Array;
  flags: Uint8Array;
  proto: Uint8Array;
  clientFamily: Uint8Array;
  serverFamily: Uint8Array;
  clientAddr: Uint8Array;
  clientPort: Uint16Array;
  service: Uint16Array;
  server: Uint16Array;
  lip: Uint16Array;
  lport: Uint16Array;
  serverIsnPlus1: Int32Array;
  streamDelta: Int32Array;
  datagrams: Uint32Array;
  /** Milliseconds (gateway clock) after which the connection expires. */
  expires: Float64Array;
  // Index chains.
  private fwdNext: Int32Array;
  private revNext: Int32Array;
  private fwdBuckets: Int32Array;
  private revBuckets: Int32Array;
  private freeHead = NIL;
  private highWater = 0;

  constructor(
    readonly maxConnections: number,
    initial = 1024,
  ) {
    this.capacity = Math.min(initial, maxConnections);
    const n = this.capacity;
    this.state = new Uint8Array(n);
    this.flags = new Uint8Array(n);
    this.proto = new Uint8Array(n);
    this.clientFamily = new Uint8Array(n);
    this.serverFamily = new Uint8Array(n);
    this.clientAddr = new Uint8Array(n * 16);
    this.clientPort = new Uint16Array(n);
    this.service = new Uint16Array(n);
    this.server = new Uint16Array(n);
    this.lip = new Uint16Array(n);
    this.lport = new Uint16Array(n);
    this.serverIsnPlus1 = new Int32Array(n);
    this.streamDelta = new Int32Array(n);
    this.datagrams = new Uint32Array(n);
    this.expires = new Float64Array(n);
    this.fwdNext = new Int32Array(n).fill(NIL);
    this.revNext = new Int32Array(n).fill(NIL);
    this.fwdBuckets = new Int32Array(n).fill(NIL);
    this.revBuckets = new Int32Array(n).fill(NIL);
  }

  /** Connection slots in use or freed (an upper bound for scans). */
  get slots(): number {
    return this.highWater;
  }

  private grow(): boolean {
    if (this.capacity >= this.maxConnections) return false;
    const n = Math.min(this.capacity * 2, this.maxConnections);
    const g = <T extends Uint8Array | Uint16Array | Int32Array | Uint32Array | Float64Array>(
      a: T,
      per = 1,
    ): T => {
      const b = new (a.constructor as new (n: number) => T)(n * per);
      b.set(a);
      return b;
    };
    this.state = g(this.state);
    this.flags = g(this.flags);
    this.proto = g(this.proto);
    this.clientFamily = g(this.clientFamily);
    this.serverFamily = g(this.serverFamily);
    this.clientAddr = g(this.clientAddr, 16);
    this.clientPort = g(this.clientPort);
    this.service = g(this.service);
    this.server = g(this.server);
    this.lip = g(this.lip);
    this.lport = g(this.lport);
    this.serverIsnPlus1 = g(this.serverIsnPlus1);
    this.streamDelta = g(this.streamDelta);
    this.datagrams = g(this.datagrams);
    this.expires = g(this.expires);
    this.capacity = n;
    // Rehash into bigger bucket arrays.
    this.fwdNext = new Int32Array(n).fill(NIL);
    this.revNext = new Int32Array(n).fill(NIL);
    this.fwdBuckets = new Int32Array(n).fill(NIL);
    this.revBuckets = new Int32Array(n).fill(NIL);
    for (let c = 0; c < this.highWater; c++) {
      if (this.state[c] === ConnState.free) continue;
      this.linkFwd(c);
      this.linkRev(c);
    }
    return true;
  }

  fwdHash(
    proto: number,
    addr: Uint8Array,
    addrOff: number,
    addrLen: number,
    port: number,
    service: number,
  ): number {
    let h = mix(0x811c9dc5, proto);
    h = hashBytes(h, addr, addrOff, addrLen);
    h = mix(h, port);
    h = mix(h, service);
    return (h >>> 0) % this.capacity;
  }

  revHash(proto: number, family: number, lip: number, lport: number): number {
    let h = mix(0x811c9dc5, proto);
    h = mix(h, family);
    h = mix(h, lip);
    h = mix(h, lport);
    return (h >>> 0) % this.capacity;
  }

  /** The client-side bucket of a connection already in the table. */
  private fwdBucketOf(c: number): number {
    const len = this.clientFamily[c] === 4 ? 4 : 16;
    const addr = this.clientAddr;
    return this.fwdHash(this.proto[c]!, addr, c * 16, len, this.clientPort[c]!, this.service[c]!);
  }

  /** The server-side bucket of a connection already in the table. */
  private revBucketOf(c: number): number {
    return this.revHash(this.proto[c]!, this.serverFamily[c]!, this.lip[c]!, this.lport[c]!);
  }

  private linkFwd(c: number): void {
    const b = this.fwdBucketOf(c);
    this.fwdNext[c] = this.fwdBuckets[b]!;
    this.fwdBuckets[b] = c;
  }

  private linkRev(c: number): void {
    const b = this.revBucketOf(c);
    this.revNext[c] = this.revBuckets[b]!;
    this.revBuckets[b] = c;
  }

  /** The connection of a client-side packet, or -1. */
  findByClient(
    proto: number,
    addr: Uint8Array,
    addrOff: number,
    addrLen: number,
    port: number,
    service: number,
  ): number {
    let c = this.fwdBuckets[this.fwdHash(proto, addr, addrOff, addrLen, port, service)]!;
    while (c !== NIL) {
      if (
        this.clientPort[c] === port &&
        this.service[c] === service &&
        this.proto[c] === proto &&
        (this.clientFamily[c] === 4 ? 4 : 16) === addrLen &&
        this.sameAddr(c, addr, addrOff, addrLen)
      ) {
        return c;
      }
      c = this.fwdNext[c]!;
    }
    return NIL;
  }

  private sameAddr(c: number, addr: Uint8Array, off: number, len: number): boolean {
    const base = c * 16;
    for (let i = 0; i < len; i++) if (this.clientAddr[base + i] !== addr[off + i]) return false;
    return true;
  }

  /** The connection of a server-side packet (to LIP:lport), or -1. */
  findByServer(proto: number, family: number, lip: number, lport: number): number {
    let c = this.revBuckets[this.revHash(proto, family, lip, lport)]!;
    while (c !== NIL) {
      if (
        this.lport[c] === lport &&
        this.lip[c] === lip &&
        this.proto[c] === proto &&
        this.serverFamily[c]! === family
      ) {
        return c;
      }
      c = this.revNext[c]!;
    }
    return NIL;
  }

  /**
   * Takes a slot, fills the key fields and links both indexes. Returns -1
   * when the table is at maxConnections.
   */
  add(
    proto: number,
    addr: Uint8Array,
    addrOff: number,
    addrLen: number,
    port: number,
    service: number,
    server: number,
    serverFamily: 4 | 6,
    lip: number,
    lport: number,
  ): number {
    let c = this.freeHead;
    if (c !== NIL) {
      this.freeHead = this.fwdNext[c]!;
    } else {
      if (this.highWater >= this.capacity && !this.grow()) return NIL;
      c = this.highWater++;
    }
    this.state[c] = ConnState.synSent;
    this.flags[c] = 0;
    this.proto[c] = proto;
    this.clientFamily[c] = addrLen === 4 ? 4 : 6;
    this.serverFamily[c] = serverFamily;
    const base = c * 16;
    for (let i = 0; i < 16; i++) this.clientAddr[base + i] = i < addrLen ? addr[addrOff + i]! : 0;
    this.clientPort[c] = port;
    this.service[c] = service;
    this.server[c] = server;
    this.lip[c] = lip;
    this.lport[c] = lport;
    this.serverIsnPlus1[c] = 0;
    this.streamDelta[c] = 0;
    this.datagrams[c] = 0;
    this.expires[c] = 0;
    this.linkFwd(c);
    this.linkRev(c);
    this.size++;
    return c;
  }

  remove(c: number): void {
    if (this.state[c] === ConnState.free) return;
    this.unlink(this.fwdBuckets, this.fwdNext, this.fwdBucketOf(c), c);
    this.unlink(this.revBuckets, this.revNext, this.revBucketOf(c), c);
    this.state[c] = ConnState.free;
    this.fwdNext[c] = this.freeHead;
    this.freeHead = c;
    this.size--;
  }

  private unlink(buckets: Int32Array, next: Int32Array, b: number, c: number): void {
    let p = buckets[b]!;
    if (p === c) {
      buckets[b] = next[c]!;
      next[c] = NIL;
      return;
    }
    while (p !== NIL) {
      const n = next[p]!;
      if (n === c) {
        next[p] = next[c]!;
        next[c] = NIL;
        return;
      }
      p = n;
    }
  }

  /** Bytes held by the table's arrays (for the memory-per-connection figure). */
  get byteSize(): number {
    const n = this.capacity;
    return n * (1 + 1 + 1 + 1 + 1 + 16 + 2 + 2 + 2 + 2 + 2 + 4 + 4 + 4 + 8 + 4 * 4);
  }
}
