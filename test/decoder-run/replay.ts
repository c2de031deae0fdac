import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_SETTINGS } from "../../src/decoder/maps.js";
import { readU16, readU32, writeU32 } from "../../src/option-codec/bytes.js";
import { fillL4Checksum, PacketInfo } from "../../src/option-codec/packet.js";
import { type KernelTun, Poller } from "../../src/tun/device.js";
import { readPcap } from "../../src/tun/pcap-reader.js";
import { openLab, READER_ENDPOINTS } from "./lab.js";
import { Bg, sleep } from "./proc.js";

// Plays the client side of recorded exchanges (record.ts's pcaps) into a
// TUN device, to a real reader server behind a decoder: the kernel module
// already loaded (--decoder module, in the VM) or the eBPF decoder, loaded
// here (--decoder ebpf). Each TCP flow's packets go as recorded up to its
// first data, with acknowledgement numbers moved by the difference between
// the recorded and the live server's ISN; UDP datagrams go as recorded.
// Writes what the server answered for each tagged exchange.

const ROOT = resolve(import.meta.dirname, "../../..");
const { values: opt } = parseArgs({
  options: {
    dir: { type: "string" },
    decoder: { type: "string", default: "module" },
    out: { type: "string" },
  },
});
if (!opt.dir || !opt.out || (opt.decoder !== "module" && opt.decoder !== "ebpf")) {
  console.error("usage: replay --dir DIR --out FILE [--decoder module|ebpf]");
  process.exit(2);
}
const DIR = opt.dir;
const NS = "toasim-replay";
const TUN = "tun-replay";

/** A recorded packet's flow and what replaying it needs. */
interface Pkt {
  readonly data: Uint8Array;
  readonly toServer: boolean;
  readonly key: string;
  readonly tcp: boolean;
  readonly l4: number;
  readonly flags: number;
  readonly payload: number;
}

const RS4 = [192, 0, 2, 10];
const RS6 = [0x20, 0x01, 0x0d, 0xb8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];

const hex = (b: Uint8Array, at: number, n: number): string =>
  Buffer.from(b.subarray(at, at + n)).toString("hex");

const same = (b: Uint8Array, at: number, want: readonly number[]): boolean =>
  want.every((x, i) => b[at + i] === x);

/** Addresses, ports and where L4 starts: plain TCP/UDP, opp (248) and ipo alike. */
function classify(data: Uint8Array): Pkt | null {
  const v = data[0]! >> 4;
  let proto: number;
  let off: number;
  let src: string;
  let toServer: boolean;
  let dst: string;
  if (v === 4) {
    proto = data[9]!;
    off = (data[0]! & 15) * 4;
    toServer = same(data, 16, RS4);
    src = hex(data, 12, 4);
    dst = hex(data, 16, 4);
  } else if (v === 6) {
    proto = data[6]!;
    off = 40;
    toServer = same(data, 24, RS6);
    src = hex(data, 8, 16);
    dst = hex(data, 24, 16);
  } else return null;
  if (proto === 248) {
    off += readU16(data, off + 2);
    proto = 17;
  }
  if (proto !== 6 && proto !== 17) return null;
  const sport = readU16(data, off);
  const dport = readU16(data, off + 2);
  const client = toServer ? `${src}:${sport}` : `${dst}:${dport}`;
  const tcp = proto === 6;
  const hl = tcp ? (data[off + 12]! >> 4) * 4 : 8;
  return {
    data,
    toServer,
    key: `${tcp ? "tcp" : "udp"} ${client}`,
    tcp,
    l4: off,
    flags: tcp ? data[off + 13]! : 0,
    payload: data.length - off - hl,
  };
}

/** Where the timestamp option's value (TSval) is in a TCP header, or -1. */
function tsOffset(d: Uint8Array, l4: number): number {
  const end = l4 + (d[l4 + 12]! >> 4) * 4;
  for (let i = l4 + 20; i < end; ) {
    const kind = d[i]!;
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = d[i + 1] ?? 0;
    if (len < 2) break;
    if (kind === 8 && len === 10) return i + 2;
    i += len;
  }
  return -1;
}

const buf = new Uint8Array(65535);
const info = new PacketInfo();

function writeAll(tun: KernelTun, p: Uint8Array): void {
  for (let i = 0; i < 100; i++) {
    if (tun.write(p, p.length)) return;
    while (tun.read(buf) > 0) {
      // Replies are not replayed.
    }
  }
  throw new Error("TUN queue stays full");
}

/**
 * Waits for the live server's SYN-ACK to the SYN with this port and
 * sequence number (every recorded flow has LIP port 1025 or so: the
 * acknowledgement number tells the flows apart); returns the server's ISN.
 */
function synAck(
  tun: KernelTun,
  poller: Poller,
  port: number,
  synSeq: number,
  ms: number,
): { isn: number; tsval: number | null } | null {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (poller.wait(100) === 0) continue;
    for (;;) {
      const n = tun.read(buf);
      if (n === 0) break;
      const p = classify(buf.subarray(0, n));
      if (p === null || !p.tcp || p.toServer) continue;
      if (
        (p.flags & 0x12) === 0x12 &&
        readU16(buf, p.l4 + 2) === port &&
        readU32(buf, p.l4 + 8) === (synSeq + 1) >>> 0
      ) {
        const ts = tsOffset(buf, p.l4);
        return { isn: readU32(buf, p.l4 + 4), tsval: ts < 0 ? null : readU32(buf, ts) };
      }
    }
  }
  return null;
}

async function main(): Promise<void> {
  const lab = await openLab(NS, TUN, opt.decoder === "ebpf" ? DEFAULT_SETTINGS : null);
  const tun = lab.tun;
  let server: Bg | null = null;
  try {
    const ready = join("/tmp", `replay-${process.pid}.ready`);
    server = new Bg(
      lab.serverArgv([
        process.execPath,
        join(ROOT, "examples/node/reader-server.mjs"),
        ...READER_ENDPOINTS,
        "--ready",
        ready,
      ]),
    );
    await server.until(() => existsSync(ready), 60_000, "reader ready");
    rmSync(ready, { force: true });
    const poller = new Poller([tun.fd]);
    let flows = 0;
    for (const file of readdirSync(DIR)
      .filter((f) => f.endsWith(".pcap"))
      .sort()) {
      const packets = readPcap(join(DIR, file))
        .map((p) => classify(p.data))
        .filter((p): p is Pkt => p !== null);
      const byFlow = new Map<string, Pkt[]>();
      for (const p of packets) byFlow.set(p.key, [...(byFlow.get(p.key) ?? []), p]);
      for (const [key, ps] of byFlow) {
        flows++;
        const before = server.out.split("\n").length;
        if (!ps[0]!.tcp) {
          for (const p of ps.filter((x) => x.toServer)) writeAll(tun, p.data.slice());
        } else {
          const recorded = ps.find((p) => !p.toServer && (p.flags & 0x12) === 0x12);
          const client = ps.filter((p) => p.toServer);
          const syn = client[0];
          if (recorded === undefined || syn === undefined || (syn.flags & 0x02) === 0) {
            console.error(`[replay] ${file} ${key}: no handshake recorded`);
            continue;
          }
          const recIsn = readU32(recorded.data, recorded.l4 + 4);
          const port = readU16(syn.data, syn.l4);
          writeAll(tun, syn.data.slice());
          const live = synAck(tun, poller, port, readU32(syn.data, syn.l4 + 4), 5000);
          if (live === null) {
            console.error(`[replay] ${file} ${key}: no SYN-ACK`);
            continue;
          }
          const isn = live.isn;
          const shift = (isn - recIsn) >>> 0;
          // The echoed timestamps move likewise: newer kernels refuse a
          // handshake ACK whose TSecr is not one their SYN-ACK sent.
          const recTs = tsOffset(recorded.data, recorded.l4);
          const tsShift =
            recTs < 0 || live.tsval === null
              ? 0
              : (live.tsval - readU32(recorded.data, recTs)) >>> 0;
          let last: { d: Uint8Array; p: Pkt } | null = null;
          for (const p of client.slice(1)) {
            const d = p.data.slice();
            if (p.flags & 0x10) writeU32(d, p.l4 + 8, (readU32(d, p.l4 + 8) + shift) >>> 0);
            const ts = tsOffset(d, p.l4);
            if (ts >= 0) writeU32(d, ts + 4, (readU32(d, ts + 4) + tsShift) >>> 0);
            info.parse(d, d.length);
            fillL4Checksum(d, info);
            writeAll(tun, d);
            last = { d, p };
            if (p.payload > 0) break;
          }
          // Wait for the report, then reset the connection: a RST at the
          // next sequence number, which is the one the server takes.
          for (let i = 0; i < 30 && server.out.split("\n").length === before; i++) await sleep(100);
          if (last !== null) {
            const rst = last.d.slice();
            const l4 = last.p.l4;
            writeU32(rst, l4 + 4, (readU32(rst, l4 + 4) + last.p.payload) >>> 0);
            rst[l4 + 13] = 0x04;
            info.parse(rst, rst.length);
            fillL4Checksum(rst, info);
            writeAll(tun, rst);
          }
        }
        for (let i = 0; i < 30 && server.out.split("\n").length === before; i++) await sleep(100);
      }
    }
    await sleep(500);
    const answers: Record<string, unknown> = {};
    for (const line of server.out.split("\n")) {
      if (!line.startsWith("{")) continue;
      const r = JSON.parse(line) as Record<string, unknown>;
      const m = /^parity (\S+)/.exec(String(r["payload"] ?? ""));
      if (m === null) continue;
      const { reader: _reader, ...rest } = r;
      answers[m[1]!] = rest;
    }
    writeFileSync(
      opt.out!,
      `${JSON.stringify({ decoder: opt.decoder, flows, answers, kernel: execFileSync("uname", ["-r"], { encoding: "utf8" }).trim() }, null, 1)}\n`,
    );
  } finally {
    await server?.stop("SIGKILL");
    lab.close();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
