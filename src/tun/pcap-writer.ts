import { closeSync, openSync, writeSync } from "node:fs";

/** pcap link types for packets that start at the IP header. */
export const LinkType = { raw: 101 } as const;

const GLOBAL_HEADER = 24;
const RECORD_HEADER = 16;
const FLUSH_AT = 1 << 16;

/**
 * Classic pcap (the format every tool reads), little-endian, microsecond
 * timestamps. Records are copied into one reused buffer and written out in
 * blocks, so adding a packet allocates nothing.
 */
export class PcapWriter {
  private readonly fd: number;
  private readonly block: Buffer;
  private used = 0;
  private closed = false;
  packets = 0;
  /** Packets past this many are not written (0: no limit); the owner closes the file. */
  limit = 0;

  constructor(
    path: string,
    readonly snaplen = 65535,
    linkType: number = LinkType.raw,
  ) {
    this.fd = openSync(path, "w", 0o644);
    this.block = Buffer.alloc(FLUSH_AT + RECORD_HEADER + snaplen);
    const b = this.block;
    b.writeUInt32LE(0xa1b2c3d4, 0);
    b.writeUInt16LE(2, 4);
    b.writeUInt16LE(4, 6);
    b.writeInt32LE(0, 8);
    b.writeUInt32LE(0, 12);
    b.writeUInt32LE(snaplen, 16);
    b.writeUInt32LE(linkType, 20);
    this.used = GLOBAL_HEADER;
  }

  /** Adds `buf[0..len)` captured at `timeUs` microseconds since the epoch. */
  write(buf: Uint8Array, len: number, timeUs: number): void {
    if (this.closed) throw new Error("pcap writer is closed");
    if (this.limit > 0 && this.packets >= this.limit) return;
    const caplen = Math.min(len, this.snaplen);
    const b = this.block;
    const o = this.used;
    b.writeUInt32LE(Math.floor(timeUs / 1e6), o);
    b.writeUInt32LE(Math.floor(timeUs % 1e6), o + 4);
    b.writeUInt32LE(caplen, o + 8);
    b.writeUInt32LE(len, o + 12);
    const at = o + RECORD_HEADER;
    for (let i = 0; i < caplen; i++) b[at + i] = buf[i]!;
    this.used = o + RECORD_HEADER + caplen;
    this.packets++;
    if (this.used >= FLUSH_AT) this.flush();
  }

  flush(): void {
    let off = 0;
    while (off < this.used) off += writeSync(this.fd, this.block, off, this.used - off);
    this.used = 0;
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    closeSync(this.fd);
    this.closed = true;
  }
}
