import { readFileSync } from "node:fs";
import { TunError, TunErrorCode } from "./errors.js";
import { LinkType } from "./pcap-writer.js";

/**
 * Reads back a classic pcap of raw IP packets (what PcapWriter and `toasim
 * capture` write, and what tcpdump writes for a TUN device): for replaying
 * a recorded exchange. Either byte order; microsecond or nanosecond
 * timestamps. Every length is checked against the file.
 */
export interface PcapPacket {
  /** Microseconds since the epoch. */
  readonly timeUs: number;
  readonly data: Uint8Array;
}

const MAGIC_US = 0xa1b2c3d4;
const MAGIC_NS = 0xa1b23c4d;

function bad(path: string, why: string): TunError {
  return new TunError(TunErrorCode.invalidArgument, `${path} is not a raw-IP pcap: ${why}`);
}

export function readPcap(path: string): PcapPacket[] {
  const b = readFileSync(path);
  if (b.length < 24) throw bad(path, "shorter than a pcap header");
  let le: boolean;
  let nano: boolean;
  const m = b.readUInt32LE(0);
  if (m === MAGIC_US || m === MAGIC_NS) {
    le = true;
    nano = m === MAGIC_NS;
  } else {
    const mb = b.readUInt32BE(0);
    if (mb !== MAGIC_US && mb !== MAGIC_NS) throw bad(path, "no pcap magic number");
    le = false;
    nano = mb === MAGIC_NS;
  }
  const u32 = (o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const link = u32(20);
  if (link !== LinkType.raw && link !== 228 && link !== 229)
    throw bad(path, `link type ${link} (want 101, raw IP)`);
  const out: PcapPacket[] = [];
  let o = 24;
  while (o < b.length) {
    if (o + 16 > b.length) throw bad(path, `truncated record header at byte ${o}`);
    const sec = u32(o);
    const frac = u32(o + 4);
    const caplen = u32(o + 8);
    if (o + 16 + caplen > b.length) throw bad(path, `record at byte ${o} runs past the end`);
    out.push({
      timeUs: sec * 1e6 + (nano ? Math.floor(frac / 1000) : frac),
      data: new Uint8Array(b.buffer, b.byteOffset + o + 16, caplen).slice(),
    });
    o += 16 + caplen;
  }
  return out;
}
