import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { DEFAULT_SETTINGS, statsRows } from "../../src/decoder/maps.js";
import { parseIp } from "../../src/option-codec/address.js";
import { finish, pseudoHeaderSum, sumBytes } from "../../src/option-codec/checksum.js";
import { type KernelTun, Poller } from "../../src/tun/device.js";
import { type Lab, openLab } from "./lab.js";
import { Bg, sleep } from "./proc.js";
import { moduleStats, type Stats } from "./proc-stats.js";

// A storm of TCP connections and UDP datagrams with broken and untrusted
// TOA/UOA carriers, crafted byte by byte (the gateway would repair or strip
// them) and written straight into a TUN device of a namespace where a real
// server listens, with the kernel module loaded (in the test VM) or with
// the eBPF decoder, which this script then loads itself (--decoder ebpf).
// Every packet is classified when it is built, so the summary says how much
// each of the decoder's counters must grow, beside what they did; the
// scenario records, test/helpers/decoder-checks.ts compares.

const { values: opt } = parseArgs({
  options: {
    tcp: { type: "string", default: "2000" },
    udp: { type: "string", default: "400" },
    seed: { type: "string", default: "1" },
    batch: { type: "string", default: "40" },
    decoder: { type: "string", default: "module" },
    settle: { type: "string", default: "13" },
  },
});
const EBPF = opt.decoder === "ebpf";
/** Short timeouts, so the settled tables are seen empty within the run. */
const TIMEOUT_S = 10;

const NS = "toasim-storm";
const TUN = "tun-storm";
const SERVER4 = parseIp("192.0.2.10");
const SERVER6 = parseIp("2001:db8:5::10");
const PORT = 9000;
const UDP_PORT = 9001;

// mulberry32: a small seeded generator, so a failing storm can be replayed.
let state = Number(opt.seed) >>> 0;
function rand(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

/** Sources: the LIP pool (trusted by default) and client ranges (never trusted). */
function source(family: 4 | 6, trusted: boolean, i: number): Uint8Array {
  const n = 100 + (i % 32);
  if (family === 4) return parseIp(trusted ? `192.0.2.${n}` : `198.51.100.${n}`);
  return parseIp(trusted ? `2001:db8:5::${n}` : `2001:db8:c::${n}`);
}

// --- packet building (checksums by the plain RFC 1071 sum) -----------------

function ipHeader(
  family: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  payload: number,
  ipOptions: Uint8Array = new Uint8Array(0),
  totalOverride?: number,
): Uint8Array {
  if (family === 6) {
    const h = new Uint8Array(40);
    h[0] = 0x60;
    h[4] = payload >> 8;
    h[5] = payload & 0xff;
    h[6] = proto;
    h[7] = 64;
    h.set(src, 8);
    h.set(dst, 24);
    return h;
  }
  const hl = 20 + ipOptions.length;
  const h = new Uint8Array(hl);
  const total = totalOverride ?? hl + payload;
  h[0] = 0x40 | (hl / 4);
  h[2] = total >> 8;
  h[3] = total & 0xff;
  h[6] = 0x40;
  h[8] = 64;
  h[9] = proto;
  h.set(src, 12);
  h.set(dst, 16);
  h.set(ipOptions, 20);
  const c = finish(sumBytes(h, 0, hl));
  h[10] = c >> 8;
  h[11] = c & 0xff;
  return h;
}

function l4Checksum(
  family: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  seg: Uint8Array,
  at: number,
): void {
  const pseudo = new Uint8Array(32);
  pseudo.set(src, 0);
  pseudo.set(dst, 16);
  const len = family === 4 ? 4 : 16;
  const s = pseudoHeaderSum(pseudo, 0, 16, len, proto, seg.length);
  let c = finish(sumBytes(seg, 0, seg.length, s));
  if (proto === 17 && c === 0) c = 0xffff;
  seg[at] = c >> 8;
  seg[at + 1] = c & 0xff;
}

const TCP = { fin: 1, syn: 2, rst: 4, psh: 8, ack: 16 } as const;

function tcpPacket(
  family: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  sport: number,
  seq: number,
  ack: number,
  flags: number,
  options: Uint8Array,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const optLen = (options.length + 3) & ~3;
  const seg = new Uint8Array(20 + optLen + payload.length);
  const dv = new DataView(seg.buffer);
  dv.setUint16(0, sport);
  dv.setUint16(2, PORT);
  dv.setUint32(4, seq >>> 0);
  dv.setUint32(8, ack >>> 0);
  seg[12] = ((20 + optLen) / 4) << 4;
  seg[13] = flags;
  dv.setUint16(14, 65535);
  seg.set(options, 20);
  // The rest of the option area is EOL (zeros).
  seg.set(payload, 20 + optLen);
  l4Checksum(family, src, dst, 6, seg, 16);
  const ip = ipHeader(family, src, dst, 6, seg.length);
  const out = new Uint8Array(ip.length + seg.length);
  out.set(ip);
  out.set(seg, ip.length);
  return out;
}

// --- the carriers ---------------------------------------------------------

type Verdict = "malformed" | "untrusted" | "toa" | "none";

interface Carrier {
  readonly name: string;
  readonly bytes: (family: 4 | 6, port: number, addr: Uint8Array) => Uint8Array;
  /** What the module must make of it from a trusted source. */
  readonly trusted: Verdict;
}

const be16 = (n: number): number[] => [n >> 8, n & 0xff];

/** A well-formed port+address TOA for the client (kind 254). */
function toa(port: number, addr: Uint8Array, kind = 254): number[] {
  return [kind, 2 + 2 + addr.length, ...be16(port), ...addr];
}

const CLIENT4 = parseIp("203.0.113.77");
const CLIENT6 = parseIp("2001:db8:77::1");
const clientAddr = (family: 4 | 6): Uint8Array => (family === 4 ? CLIENT4 : CLIENT6);

const ACK_CARRIERS: readonly Carrier[] = [
  { name: "len0", trusted: "malformed", bytes: () => new Uint8Array([254, 0, 1, 1]) },
  { name: "len1", trusted: "malformed", bytes: () => new Uint8Array([254, 1, 1, 1]) },
  { name: "len2", trusted: "malformed", bytes: () => new Uint8Array([254, 2]) },
  { name: "len3", trusted: "malformed", bytes: () => new Uint8Array([254, 3, 0x12]) },
  { name: "len255", trusted: "malformed", bytes: () => new Uint8Array([254, 255, 0, 80, 1, 2]) },
  {
    name: "truncated",
    trusted: "malformed",
    // 36 bytes of NOPs leave 4 for an 8-byte option.
    bytes: (_f, port, a) =>
      new Uint8Array([...new Array(36).fill(1), ...toa(port, a.subarray(0, 4)).slice(0, 4)]),
  },
  {
    name: "duplicated",
    trusted: "malformed",
    bytes: (_f, port, a) =>
      new Uint8Array([...toa(port, CLIENT4), ...toa(port + 1, a.subarray(0, 4))]),
  },
  {
    name: "ttm-bad-af",
    trusted: "malformed",
    // kind 254, 22 bytes: struct ttm_peer with af 7.
    bytes: (_f, port) => new Uint8Array([254, 22, 7, 0, ...be16(port), ...new Array(16).fill(9)]),
  },
  {
    name: "cdn-bad-length",
    trusted: "malformed",
    bytes: () => new Uint8Array([28, 9, 1, 203, 0, 113, 77, 0, 0]),
  },
  {
    name: "kind253-len12",
    trusted: "malformed",
    bytes: () => new Uint8Array([253, 12, 0, 80, 1, 2, 3, 4, 5, 6, 7, 8]),
  },
  {
    name: "valid-v4",
    trusted: "toa",
    bytes: (_f, port) => new Uint8Array(toa(port, CLIENT4)),
  },
  {
    name: "valid-v6",
    trusted: "toa",
    bytes: (_f, port) => new Uint8Array(toa(port, CLIENT6)),
  },
  {
    name: "tfo-experimental",
    trusted: "none",
    bytes: () => new Uint8Array([254, 6, 0xf9, 0x89, 1, 2]),
  },
  { name: "no-carrier", trusted: "none", bytes: () => new Uint8Array(0) },
];

const SYN_CARRIERS: readonly Carrier[] = [
  { name: "syn-none", trusted: "none", bytes: () => new Uint8Array(0) },
  { name: "syn-len1", trusted: "malformed", bytes: () => new Uint8Array([254, 1, 1, 1]) },
  { name: "syn-len255", trusted: "malformed", bytes: () => new Uint8Array([254, 255, 1, 1]) },
  { name: "syn-cdn-v4", trusted: "toa", bytes: () => new Uint8Array([28, 7, 1, ...CLIENT4]) },
  { name: "syn-toa", trusted: "toa", bytes: (_f, port) => new Uint8Array(toa(port, CLIENT4)) },
];

/** A carrier as seen from a source: an untrusted source turns a good one into "untrusted". */
function verdict(c: Carrier, trusted: boolean): Verdict {
  if (c.trusted === "toa" && !trusted) return "untrusted";
  return c.trusted;
}

// --- set-up ---------------------------------------------------------------

async function setUp(): Promise<{ lab: Lab; server: Bg }> {
  // The untrusted sources' replies go back into the TUN too.
  const lab = await openLab(
    NS,
    TUN,
    EBPF ? { ...DEFAULT_SETTINGS, uoaTimeoutSec: TIMEOUT_S, synTimeoutSec: TIMEOUT_S } : null,
    ["198.51.100.0/24", "2001:db8:c::/64"],
  );
  // A real server: accepts, asks for the peer (getpeername runs through the
  // module), closes.
  const script = `
    const net = require("node:net");
    let accepted = 0, peers = 0;
    const s = net.createServer((c) => {
      accepted++;
      if (c.remoteAddress) peers++;
      c.on("error", () => {});
      c.destroy();
    });
    s.listen({ host: "::", port: ${PORT}, backlog: 4096 }, () => console.log("ready"));
    process.on("SIGTERM", () => { console.log(JSON.stringify({ accepted, peers })); process.exit(0); });
  `;
  const server = new Bg(lab.serverArgv([process.execPath, "-e", script]));
  return { lab, server };
}

// --- the storm ------------------------------------------------------------

interface Expect {
  toa_malformed: number;
  toa_untrusted: number;
  syn_recv_sock_toa: number;
  syn_recv_sock_no_toa: number;
  ip6_address_alloc: number;
  uoa_invalid: number;
  uoa_untrusted: number;
  uoa_saved: number;
  uoa_none: number;
}

const expect: Expect = {
  toa_malformed: 0,
  toa_untrusted: 0,
  syn_recv_sock_toa: 0,
  syn_recv_sock_no_toa: 0,
  ip6_address_alloc: 0,
  uoa_invalid: 0,
  uoa_untrusted: 0,
  uoa_saved: 0,
  uoa_none: 0,
};
const byCarrier: Record<string, number> = {};
/** Handshakes whose completing ACK the kernel dropped before the module saw it, by carrier. */
const refusedByKernel: Record<string, number> = {};

interface Conn {
  family: 4 | 6;
  src: Uint8Array;
  port: number;
  isn: number;
  trusted: boolean;
  syn: Carrier;
  ack: Carrier;
  serverIsn: number | null;
}

const buf = new Uint8Array(65535);

function serverPortOf(
  p: Uint8Array,
  n: number,
): { dport: number; flags: number; seq: number } | null {
  const v = p[0]! >> 4;
  const off = v === 4 ? (p[0]! & 15) * 4 : 40;
  const proto = v === 4 ? p[9] : p[6];
  if (proto !== 6 || n < off + 20) return null;
  const dv = new DataView(p.buffer, p.byteOffset + off);
  if (dv.getUint16(0) !== PORT) return null;
  return { dport: dv.getUint16(2), flags: p[off + 13]!, seq: dv.getUint32(4) };
}

async function tcpStorm(
  tun: KernelTun,
  total: number,
  batch: number,
): Promise<{ established: number }> {
  const poller = new Poller([tun.fd]);
  let established = 0;
  let nextPort = 20000;
  for (let done = 0; done < total; ) {
    const conns = new Map<number, Conn>();
    const n = Math.min(batch, total - done);
    for (let i = 0; i < n; i++) {
      const family: 4 | 6 = rand() < 0.7 ? 4 : 6;
      const trusted = rand() < 0.75;
      const c: Conn = {
        family,
        src: source(family, trusted, done + i),
        port: nextPort++,
        isn: Math.floor(rand() * 0xffffffff),
        trusted,
        syn: rand() < 0.25 ? pick(SYN_CARRIERS) : SYN_CARRIERS[0]!,
        ack: pick(ACK_CARRIERS),
        serverIsn: null,
      };
      conns.set(c.port, c);
      const dst = family === 4 ? SERVER4 : SERVER6;
      const synOpts = new Uint8Array([
        2,
        4,
        0x05,
        0xb4,
        ...c.syn.bytes(family, c.port, clientAddr(family)),
      ]);
      writeAll(tun, tcpPacket(family, c.src, dst, c.port, c.isn, 0, TCP.syn, synOpts));
    }
    const deadline = Date.now() + 10_000;
    let pending = n;
    while (pending > 0 && Date.now() < deadline) {
      if (poller.wait(200) === 0) continue;
      for (;;) {
        const len = tun.read(buf);
        if (len === 0) break;
        const h = serverPortOf(buf, len);
        if (h === null || (h.flags & (TCP.syn | TCP.ack)) !== (TCP.syn | TCP.ack)) continue;
        const c = conns.get(h.dport);
        if (c === undefined || c.serverIsn !== null) continue;
        c.serverIsn = h.seq;
        pending--;
        const dst = c.family === 4 ? SERVER4 : SERVER6;
        const ackOpts = c.ack.bytes(c.family, c.port, clientAddr(c.family));
        const ack = tcpPacket(c.family, c.src, dst, c.port, c.isn + 1, h.seq + 1, TCP.ack, ackOpts);
        writeAll(tun, ack);
      }
    }
    await sleep(50);
    // A handshake whose ACK the kernel itself threw away (7.x drops a
    // segment whose option runs past the header) is still in SYN_RECV:
    // only its SYN reached the module.
    const halfOpen = synRecvPorts();
    for (const c of conns.values()) {
      if (c.serverIsn === null) continue;
      accountSyn(c);
      if (halfOpen.has(c.port)) {
        const key = `${c.ack.name}${c.trusted ? "" : "/untrusted"}`;
        refusedByKernel[key] = (refusedByKernel[key] ?? 0) + 1;
        continue;
      }
      account(c);
      established++;
    }
    // Close every connection of the batch: the server has accepted them.
    for (const c of conns.values()) {
      if (c.serverIsn === null) continue;
      const dst = c.family === 4 ? SERVER4 : SERVER6;
      writeAll(
        tun,
        tcpPacket(c.family, c.src, dst, c.port, c.isn + 1, 0, TCP.rst, new Uint8Array(0)),
      );
    }
    drain(tun);
    done += n;
  }
  return { established };
}

function writeAll(tun: KernelTun, p: Uint8Array): void {
  for (let i = 0; i < 100; i++) {
    if (tun.write(p, p.length)) return;
    drain(tun);
  }
  throw new Error("TUN queue stays full");
}

function drain(tun: KernelTun): void {
  while (tun.read(buf) > 0) {
    // Replies to the storm (RSTs, ICMP errors) are not looked at.
  }
}

/** The source ports of the storm's handshakes still in SYN_RECV. */
function synRecvPorts(): Set<number> {
  const out = execFileSync("ip", ["netns", "exec", NS, "ss", "-Htn", "state", "syn-recv"], {
    encoding: "utf8",
  });
  const ports = new Set<number>();
  for (const line of out.split("\n")) {
    const m = /:(\d+)\s*$/.exec(line.trim());
    if (m?.[1] !== undefined) ports.add(Number(m[1]));
  }
  return ports;
}

/** What the module must count for a SYN it saw (the server answered it). */
function accountSyn(c: Conn): void {
  const synV = verdict(c.syn, c.trusted);
  if (synV === "malformed") expect.toa_malformed++;
  if (synV === "untrusted") expect.toa_untrusted++;
}

/** What the module must count for one completed handshake. */
function account(c: Conn): void {
  byCarrier[`${c.syn.name}+${c.ack.name}${c.trusted ? "" : "/untrusted"}`] =
    (byCarrier[`${c.syn.name}+${c.ack.name}${c.trusted ? "" : "/untrusted"}`] ?? 0) + 1;
  const synV = verdict(c.syn, c.trusted);
  const ackV = verdict(c.ack, c.trusted);
  if (ackV === "malformed") expect.toa_malformed++;
  if (ackV === "untrusted") expect.toa_untrusted++;
  // A SYN's TOA serves only when the ACK has none.
  const gotToa = ackV === "toa" || (ackV === "none" && synV === "toa");
  if (gotToa) {
    expect.syn_recv_sock_toa++;
    const v6 = ackV === "toa" ? c.ack.name === "valid-v6" : false;
    if (v6) expect.ip6_address_alloc++;
  } else {
    expect.syn_recv_sock_no_toa++;
  }
}

// --- UDP ------------------------------------------------------------------

interface UdpCase {
  readonly name: string;
  readonly families: readonly (4 | 6)[];
  /** The packet from src; the verdict from a trusted source. */
  readonly build: (family: 4 | 6, src: Uint8Array, dst: Uint8Array, port: number) => Uint8Array;
  readonly trusted: "invalid" | "saved" | "none";
}

function udpSegment(family: 4 | 6, src: Uint8Array, dst: Uint8Array, port: number): Uint8Array {
  const payload = new TextEncoder().encode("storm");
  const seg = new Uint8Array(8 + payload.length);
  const dv = new DataView(seg.buffer);
  dv.setUint16(0, port);
  dv.setUint16(2, UDP_PORT);
  dv.setUint16(4, seg.length);
  seg.set(payload, 8);
  l4Checksum(family, src, dst, 17, seg, 6);
  return seg;
}

const uoaOption = (port: number, a: Uint8Array, len = 2 + 2 + a.length): number[] => [
  31,
  len,
  ...be16(port),
  ...a,
];

/** opp: IP protocol 248, {version<<4, 17, be16 length}, option, UDP. */
function opp(
  family: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  port: number,
  head: (a: Uint8Array) => number[],
  truncate = 0,
): Uint8Array {
  const udp = udpSegment(family, src, dst, port);
  const body = [...head(clientAddr(family)), ...udp];
  const b = new Uint8Array(body.length - truncate);
  b.set(body.slice(0, b.length));
  const iph = ipHeader(family, src, dst, 248, b.length);
  const out = new Uint8Array(iph.length + b.length);
  out.set(iph);
  out.set(b, iph.length);
  return out;
}

function oppHead(version: number, proto: number, optBytes: number[], lenField?: number): number[] {
  return [version << 4, proto, ...be16(lenField ?? 4 + optBytes.length), ...optBytes];
}

function ipo(src: Uint8Array, dst: Uint8Array, port: number, options: number[]): Uint8Array {
  const padded = [...options];
  while (padded.length % 4 !== 0) padded.push(0);
  const udp = udpSegment(4, src, dst, port);
  const iph = ipHeader(4, src, dst, 17, udp.length, new Uint8Array(padded));
  const out = new Uint8Array(iph.length + udp.length);
  out.set(iph);
  out.set(udp, iph.length);
  return out;
}

const famAddr = (f: 4 | 6): number => (f === 4 ? 1 : 2);
const UDP_CASES: readonly UdpCase[] = [
  {
    name: "opp-valid",
    families: [4, 6],
    trusted: "saved",
    build: (f, s, d, p) => opp(f, s, d, p, (a) => oppHead(famAddr(f), 17, uoaOption(p, a))),
  },
  {
    name: "opp-bad-version",
    families: [4, 6],
    trusted: "invalid",
    build: (f, s, d, p) => opp(f, s, d, p, (a) => oppHead(3, 17, uoaOption(p, a))),
  },
  {
    name: "opp-bad-protocol",
    families: [4, 6],
    trusted: "invalid",
    build: (f, s, d, p) => opp(f, s, d, p, (a) => oppHead(famAddr(f), 6, uoaOption(p, a))),
  },
  {
    name: "opp-length-mismatch",
    families: [4, 6],
    trusted: "invalid",
    build: (f, s, d, p) =>
      opp(f, s, d, p, (a) => oppHead(famAddr(f), 17, uoaOption(p, a), 4 + 2 + 2 + a.length + 4)),
  },
  ...[0, 1, 2, 3, 255].map(
    (len): UdpCase => ({
      name: `opp-option-len${len}`,
      families: [4, 6],
      trusted: "invalid",
      build: (f, s, d, p) => opp(f, s, d, p, (a) => oppHead(famAddr(f), 17, uoaOption(p, a, len))),
    }),
  ),
  {
    name: "opp-truncated",
    families: [4, 6],
    trusted: "invalid",
    // The IP packet ends inside the UOA option.
    build: (f, s, d, p) =>
      opp(f, s, d, p, (a) => oppHead(famAddr(f), 17, uoaOption(p, a)), 8 + 5 + 6),
  },
  {
    name: "ipo-valid",
    families: [4],
    trusted: "saved",
    build: (_f, s, d, p) => ipo(s, d, p, uoaOption(p, CLIENT4)),
  },
  {
    name: "ipo-uoa-len5",
    families: [4],
    trusted: "invalid",
    build: (_f, s, d, p) => ipo(s, d, p, [31, 5, ...be16(p), 1]),
  },
  ...[0, 1, 255].map(
    (len): UdpCase => ({
      name: `ipo-option-len${len}`,
      families: [4],
      trusted: "invalid",
      build: (_f, s, d, p) => ipo(s, d, p, [31, len, ...be16(p), ...CLIENT4]),
    }),
  ),
  {
    name: "ipo-other-option",
    families: [4],
    trusted: "none",
    // A NOP-padded router alert: IP options, but no UOA.
    build: (_f, s, d, p) => ipo(s, d, p, [1, 148, 4, 0, 0]),
  },
];

async function udpStorm(tun: KernelTun, total: number): Promise<void> {
  for (let i = 0; i < total; i++) {
    const c = pick(UDP_CASES);
    const family = pick(c.families);
    const trusted = rand() < 0.75;
    const src = source(family, trusted, i);
    const dst = family === 4 ? SERVER4 : SERVER6;
    writeAll(tun, c.build(family, src, dst, 30000 + i));
    const key = `${c.name}${trusted ? "" : "/untrusted"}`;
    byCarrier[key] = (byCarrier[key] ?? 0) + 1;
    // A broken carrier is invalid wherever it comes from; a good one from
    // outside the trusted ranges is refused; options without a UOA are
    // counted only from a gateway.
    if (c.trusted === "invalid") expect.uoa_invalid++;
    else if (c.trusted === "saved") {
      if (trusted) expect.uoa_saved++;
      else expect.uoa_untrusted++;
    } else if (c.trusted === "none" && trusted) expect.uoa_none++;
    if (i % 50 === 49) {
      drain(tun);
      await sleep(5);
    }
  }
  await sleep(200);
  drain(tun);
}

async function main(): Promise<void> {
  const { lab, server } = await setUp();
  const { tun, decoder } = lab;
  const stats = (): Stats => (decoder === null ? moduleStats() : statsRows(decoder.stats()));
  try {
    await server.until(() => server.out.includes("ready"), 60_000, "storm server");
    const before = stats();
    const tcp = await tcpStorm(tun, Number(opt.tcp), Number(opt.batch));
    await udpStorm(tun, Number(opt.udp));
    await sleep(500);
    await server.stop("SIGTERM");
    const after = stats();
    // The sockets were reset, the flows and the SYNs of unfinished
    // handshakes time out: then the tables must be as empty as before.
    await sleep(Number(opt.settle) * 1000);
    decoder?.sweep();
    const settled = stats();
    const last = server.out.trim().split("\n").pop() ?? "{}";
    const seen = JSON.parse(last) as { accepted?: number; peers?: number };
    console.log(
      JSON.stringify({
        tcp: { attempted: Number(opt.tcp), established: tcp.established, refusedByKernel, ...seen },
        udp: { sent: Number(opt.udp) },
        expect,
        byCarrier,
        stats: { before, after, settled },
      }),
    );
  } finally {
    await server.stop("SIGKILL");
    lab.close();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
