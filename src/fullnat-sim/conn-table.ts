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

/**
 * The per-connection columns, declared once: the constructor, growth and
 * byteSize follow this list. `per` is elements a connection (clientAddr
 * holds 16 bytes, IPv4 in the first four).
 */
const COLUMNS = {
  state: { type: Uint8Array, per: 1 },
  flags: { type: Uint8Array, per: 1 },
  proto: { type: Uint8Array, per: 1 },
  clientFamily: { type: Uint8Array, per: 1 },
  serverFamily: { type: Uint8Array, per: 1 },
  clientAddr: { type: Uint8Array, per: 16 },
  clientPort: { type: Uint16Array, per: 1 },
  service: { type: Uint16Array, per: 1 },
  server: { type: Uint16Array, per: 1 },
  lip: { type: Uint16Array, per: 1 },
  lport: { type: Uint16Array, per: 1 },
  serverIsnPlus1: { type: Int32Array, per: 1 },
  streamDelta: { type: Int32Array, per: 1 },
  datagrams: { type: Uint32Array, per: 1 },
  /** Milliseconds (gateway clock) after which the connection expires. */
  expires: { type: Float64Array, per: 1 },
} as const;

type ColumnName = keyof typeof COLUMNS;
type Columns = { -readonly [K in ColumnName]: InstanceType<(typeof COLUMNS)[K]["type"]> };
type Column = Columns[ColumnName];
const COLUMN_NAMES = Object.keys(COLUMNS) as ColumnName[];

/** The index chains: one next link a connection, and the two bucket arrays. */
const CHAINS = ["fwdNext", "revNext", "fwdBuckets", "revBuckets"] as const;

/** Bytes a connection slot costs: its columns, and an Int32 in each chain array. */
const BYTES_PER_SLOT =
  COLUMN_NAMES.reduce(
    (sum, name) => sum + COLUMNS[name].type.BYTES_PER_ELEMENT * COLUMNS[name].per,
    0,
  ) +
  CHAINS.length * Int32Array.BYTES_PER_ELEMENT;

function column(name: ColumnName, n: number, old?: Column): Column {
  const { type, per } = COLUMNS[name];
  const a = new type(n * per);
  if (old !== undefined) a.set(old);
  return a;
}

// The columns are the class's own fields (conns.state[c] in the hot path),
// typed by the interface of the same name below.
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the constructor assigns every column
export class ConnTable {
  capacity: number;
  size = 0;
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
    const cols = this as Record<ColumnName, Column>;
    for (const name of COLUMN_NAMES) cols[name] = column(name, n);
    this.fwdNext = this.fwdBuckets = this.revNext = this.revBuckets = new Int32Array(0);
    this.resetChains(n);
  }

  /** Empty index chains for n connections (the caller links what is in the table). */
  private resetChains(n: number): void {
    for (const k of CHAINS) this[k] = new Int32Array(n).fill(NIL);
  }

  /** Connection slots in use or freed (an upper bound for scans). */
  get slots(): number {
    return this.highWater;
  }

  private grow(): boolean {
    if (this.capacity >= this.maxConnections) return false;
    const n = Math.min(this.capacity * 2, this.maxConnections);
    const cols = this as Record<ColumnName, Column>;
    for (const name of COLUMN_NAMES) cols[name] = column(name, n, cols[name]);
    this.capacity = n;
    // Rehash into bigger bucket arrays.
    this.resetChains(n);
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
    return this.capacity * BYTES_PER_SLOT;
  }
}

export interface ConnTable extends Columns {}
