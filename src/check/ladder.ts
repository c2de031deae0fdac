import { formatEndpoint, formatIp, type IpAddress } from "../option-codec/address.js";
import { IpOptionCursor } from "../option-codec/ip-options.js";
import { IPV4_MIN_HEADER, IpProtocol, Ipv4Field } from "../option-codec/ipv4.js";
import { Ipv6Field } from "../option-codec/ipv6.js";
import { PacketInfo } from "../option-codec/packet.js";
import { decodeProxyV1, isProxyV1 } from "../option-codec/proxy-v1.js";
import { decodeProxyV2, isProxyV2 } from "../option-codec/proxy-v2.js";
import { decodeSpp, isSpp, SPP_LENGTH } from "../option-codec/spp.js";
import { TCP_MIN_HEADER, TcpFlag, TcpSegment } from "../option-codec/tcp.js";
import { TcpOptionCursor, TcpOptionKind, TFO_EXID } from "../option-codec/tcp-options.js";
import { decodeToa, type ToaFormat, ToaLayout } from "../option-codec/toa.js";
import { UdpDatagram } from "../option-codec/udp.js";
import { decodeOpp, decodeUoaOption, OPP_PROTOCOL, UOA_OPTION_TYPE } from "../option-codec/uoa.js";
import { isLip } from "../runtime/defaults.js";
import type { PcapPacket } from "../tun/pcap-reader.js";

/**
 * A ladder (sequence) diagram of one case's two captures: client, gateway
 * and server as vertical lines, time downward, one arrow per packet. The
 * client-side capture is drawn between client and gateway, the server-side
 * one between gateway and server; the carrier each packet holds is decoded
 * with toasim's own codecs, so the diagram shows which packet carried the
 * client's address.
 *
 * Matching, to find what the gateway dropped: a packet entering the gateway
 * (client side toward the server, server side toward the client) and a
 * packet leaving it the same way are counterparts when they have the same
 * protocol, direction, TCP flags and payload length (less the bytes of a
 * PROXY or SPP header the gateway put in front). Each leaving packet, in
 * time order, takes the latest entering packet not yet taken that came no
 * later than it; an entering packet left over is marked ✗ (dropped at the
 * gateway, or changed beyond recognition), a leaving packet without one is
 * marked + (made by the gateway: a duplicate, a UOA probe). An unparsed
 * packet matches nothing.
 */

export interface LadderOptions {
  /** The fault rules the gateway applied (printed above the diagram). */
  readonly faults?: readonly string[];
  /** The accessible title; default: "Ladder diagram of N packets". */
  readonly title?: string;
  /** Packets drawn at most (default 2000); the rest is counted in a note. */
  readonly maxPackets?: number;
}

type Side = "client" | "server";

interface Seen {
  readonly side: Side;
  /** Index in its own capture. */
  readonly index: number;
  readonly timeUs: number;
  /** Toward the server; null when the addresses could not be read. */
  readonly toServer: boolean | null;
  /** Addresses, with ports for TCP and UDP. */
  src: string;
  dst: string;
  /** The addresses alone, for the lanes' headings. */
  readonly ips: readonly [string, string] | null;
  /** "TCP SYN ..." or "UDP len=N" or "unparsed: why". */
  summary: string;
  readonly carriers: string[];
  readonly notes: string[];
  /** Null for an unparsed packet: it matches nothing. */
  matchKey: string | null;
  readonly tcp: { flags: number; seq: number; ack: number; payload: number } | null;
  readonly unparsed: boolean;
  dropped: boolean;
  extra: boolean;
}

const info = new PacketInfo();
const tcpView = new TcpSegment();
const udpView = new UdpDatagram();
const tcpCursor = new TcpOptionCursor();
const ipCursor = new IpOptionCursor();

function inPrefix(a: IpAddress, v4: readonly number[], v6: readonly number[]): boolean {
  const p = a.length === 4 ? v4 : v6;
  return p.every((b, i) => a[i] === b);
}

const CLIENT4 = [198, 51, 100];
const CLIENT6 = [0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0c, 0, 0];
const SERVER4 = [192, 0, 2];
const SERVER6 = [0x20, 0x01, 0x0d, 0xb8, 0x00, 0x05, 0, 0];

/** From the address plan (docs/architecture.md): which way a packet of a side goes. */
function towardServer(side: Side, src: IpAddress, dst: IpAddress): boolean {
  if (side === "client") return inPrefix(src, CLIENT4, CLIENT6);
  if (isLip(formatIp(src))) return true;
  if (isLip(formatIp(dst))) return false;
  return inPrefix(dst, SERVER4, SERVER6);
}

/** Addresses of a packet whose headers do not check out, when the bytes are there. */
function rawAddresses(d: Uint8Array): [IpAddress, IpAddress] | null {
  const v = (d[0] ?? 0) >> 4;
  if (v === 4 && d.length >= IPV4_MIN_HEADER)
    return [d.slice(Ipv4Field.src, Ipv4Field.src + 4), d.slice(Ipv4Field.dst, Ipv4Field.dst + 4)];
  if (v === 6 && d.length >= Ipv6Field.dst + 16)
    return [d.slice(Ipv6Field.src, Ipv6Field.src + 16), d.slice(Ipv6Field.dst, Ipv6Field.dst + 16)];
  return null;
}

const why = (e: unknown): string => (e instanceof Error ? e.message : String(e));

const ep = (addr: IpAddress, port: number | undefined): string =>
  port === undefined ? formatIp(addr) : formatEndpoint({ addr, port });

/** Kinds that are never a TOA (everything else is tried as one, in every layout). */
const STANDARD_KINDS: ReadonlySet<number> = new Set([
  TcpOptionKind.eol,
  TcpOptionKind.nop,
  TcpOptionKind.mss,
  TcpOptionKind.windowScale,
  TcpOptionKind.sackPermitted,
  TcpOptionKind.sack,
  TcpOptionKind.timestamps,
  TcpOptionKind.fastOpen,
  19, // MD5 signature
  29, // TCP-AO
  30, // MPTCP
]);

const TOA_TRIES: readonly Omit<ToaFormat, "kind">[] = [
  { layout: ToaLayout.portAddr },
  { layout: ToaLayout.portAddrVaddr },
  { layout: ToaLayout.ttm, afOrder: "host" },
  { layout: ToaLayout.ttm, afOrder: "network" },
  { layout: ToaLayout.versionAddr },
];

function toaOf(d: Uint8Array, at: number, end: number, kind: number): string | null {
  for (const t of TOA_TRIES) {
    try {
      const r = decodeToa({ kind, ...t }, d, at, end);
      return `TOA ${ep(r.addr, r.port)} (kind ${kind})`;
    } catch {
      // Not this layout: the next one may fit.
    }
  }
  return null;
}

function tcpOptions(d: Uint8Array, s: Seen, from: number, to: number): void {
  try {
    tcpCursor.reset(d, from, to);
    while (tcpCursor.next()) {
      const { kind, at, length } = tcpCursor;
      if (STANDARD_KINDS.has(kind)) continue;
      const toa = toaOf(d, at, at + length, kind);
      if (toa !== null) s.carriers.push(toa);
      else if (length >= 4 && ((d[at + 2]! << 8) | d[at + 3]!) === TFO_EXID)
        s.notes.push(`TFO (option ${kind})`);
      else s.notes.push(`option ${kind}/${length}: not a TOA`);
    }
  } catch (e) {
    s.notes.push(`TCP options malformed: ${why(e)}`);
  }
}

/** PROXY v1/v2 or SPP at the payload's start; returns the header's length. */
function payloadCarrier(d: Uint8Array, s: Seen, off: number, end: number, udp: boolean): number {
  try {
    if (isProxyV2(d, off, end)) {
      const { repr, length } = decodeProxyV2(d, off, end);
      const who =
        repr.command === "local" ? "LOCAL" : repr.source ? formatEndpoint(repr.source) : "";
      s.carriers.push(`PROXY v2 ${who}`.trim());
      return length;
    }
    if (!udp && isProxyV1(d, off, end)) {
      const { repr, length } = decodeProxyV1(d, off, end);
      s.carriers.push(
        `PROXY v1 ${repr.protocol === "UNKNOWN" ? "UNKNOWN" : formatEndpoint(repr.source)}`,
      );
      return length;
    }
    if (udp && isSpp(d, off, end)) {
      s.carriers.push(`SPP ${formatEndpoint(decodeSpp(d, off, end).client)}`);
      return SPP_LENGTH;
    }
  } catch (e) {
    s.notes.push(`header in the payload undecodable: ${why(e)}`);
  }
  return 0;
}

function uoaIpo(d: Uint8Array, s: Seen): void {
  if (info.family !== 4 || info.ipHeaderLength <= IPV4_MIN_HEADER) return;
  try {
    ipCursor.reset(d, IPV4_MIN_HEADER, info.ipHeaderLength);
    while (ipCursor.next()) {
      if (ipCursor.kind !== UOA_OPTION_TYPE) continue;
      const r = decodeUoaOption(d, ipCursor.at, ipCursor.at + ipCursor.length);
      s.carriers.push(`UOA ${ep(r.addr, r.port)} (ipo)`);
    }
  } catch (e) {
    s.notes.push(`IP options malformed: ${why(e)}`);
  }
}

const FLAG_NAMES: readonly [number, string][] = [
  [TcpFlag.fin, "FIN"],
  [TcpFlag.rst, "RST"],
  [TcpFlag.psh, "PSH"],
  [TcpFlag.ack, "ACK"],
];

function flagText(f: number): string {
  if (f & TcpFlag.syn) return f & TcpFlag.ack ? "SYN-ACK" : "SYN";
  const names = FLAG_NAMES.filter(([b]) => f & b).map(([, n]) => n);
  return names.length > 0 ? names.join("+") : "no flags";
}

const KEY_FLAGS = TcpFlag.syn | TcpFlag.ack | TcpFlag.fin | TcpFlag.rst | TcpFlag.psh;

function readPacket(p: PcapPacket, side: Side, index: number): Seen {
  const d = p.data;
  const base = { side, index, timeUs: p.timeUs, carriers: [], notes: [], dropped: false };
  try {
    info.parse(d, d.length);
  } catch (e) {
    const a = rawAddresses(d);
    return {
      ...base,
      toServer: a ? towardServer(side, a[0], a[1]) : null,
      src: a ? formatIp(a[0]) : "?",
      dst: a ? formatIp(a[1]) : "?",
      ips: null,
      summary: `unparsed: ${why(e)}`,
      matchKey: null,
      tcp: null,
      unparsed: true,
      extra: false,
    };
  }
  const srcA = d.slice(info.srcOffset, info.srcOffset + info.addrLength);
  const dstA = d.slice(info.dstOffset, info.dstOffset + info.addrLength);
  const toServer = towardServer(side, srcA, dstA);
  const s: Seen = {
    ...base,
    toServer,
    src: formatIp(srcA),
    dst: formatIp(dstA),
    ips: [formatIp(srcA), formatIp(dstA)],
    summary: "",
    matchKey: null,
    tcp: null,
    unparsed: false,
    extra: false,
  };
  uoaIpo(d, s);
  const end = info.length;
  let proto = info.protocol;
  let l4 = info.l4Offset;
  if (info.isFragment) {
    s.summary = `IP fragment (protocol ${proto}, ${end - l4} bytes)`;
    s.matchKey = `frag|${toServer}|${end - l4}`;
    return s;
  }
  try {
    if (proto === OPP_PROTOCOL) {
      const opp = decodeOpp(d, l4, end);
      s.carriers.push(`UOA ${ep(opp.uoa.addr, opp.uoa.port)} (opp)`);
      proto = opp.protocol;
      l4 += opp.length;
    }
    if (proto === IpProtocol.tcp) {
      const t = tcpView.wrap(d, l4, end);
      const payload = t.payloadLength;
      tcpOptions(d, s, l4 + TCP_MIN_HEADER, t.payloadOffset);
      const shift = payload > 0 ? payloadCarrier(d, s, t.payloadOffset, end, false) : 0;
      s.src = formatEndpoint({ addr: srcA, port: t.srcPort });
      s.dst = formatEndpoint({ addr: dstA, port: t.dstPort });
      s.matchKey = `tcp|${toServer}|${t.flags & KEY_FLAGS}|${payload - shift}`;
      return { ...s, tcp: { flags: t.flags, seq: t.seq, ack: t.ack, payload } };
    }
    if (proto === IpProtocol.udp) {
      const u = udpView.wrap(d, l4, end);
      const payload = u.length - 8;
      const shift = payload > 0 ? payloadCarrier(d, s, u.payloadOffset, u.end, true) : 0;
      s.summary = `UDP len=${payload}`;
      s.src = formatEndpoint({ addr: srcA, port: u.srcPort });
      s.dst = formatEndpoint({ addr: dstA, port: u.dstPort });
      s.matchKey = `udp|${toServer}|${payload - shift}`;
      return s;
    }
    if (proto === IpProtocol.icmp || proto === IpProtocol.icmpv6) {
      const name = proto === IpProtocol.icmp ? "ICMP" : "ICMPv6";
      s.summary = `${name} type ${d[l4] ?? "?"} code ${d[l4 + 1] ?? "?"}`;
    } else s.summary = `protocol ${proto}, ${end - l4} bytes`;
    s.matchKey = `${proto}|${toServer}|${end - l4}`;
    return s;
  } catch (e) {
    s.summary = `unparsed: ${why(e)}`;
    return { ...s, unparsed: true, matchKey: null };
  }
}

/**
 * seq and ack relative to the connection's SYN in each direction, as
 * Wireshark shows them; a new SYN on the same addresses and ports starts a
 * new connection, and a direction seen without its SYN starts at its first
 * segment.
 */
function tcpLabels(rows: readonly Seen[]): void {
  const base = new Map<string, number>();
  for (const s of rows) {
    const t = s.tcp;
    if (t === null) continue;
    const fwd = `${s.side}|${s.src}|${s.dst}`;
    const rev = `${s.side}|${s.dst}|${s.src}`;
    if (t.flags & TcpFlag.syn) {
      base.set(fwd, t.seq);
      if (!(t.flags & TcpFlag.ack)) base.delete(rev);
    } else if (!base.has(fwd)) base.set(fwd, t.seq);
    const seq = (t.seq - base.get(fwd)!) >>> 0;
    const b = base.get(rev);
    const ack = t.flags & TcpFlag.ack ? ` ack=${b === undefined ? t.ack : (t.ack - b) >>> 0}` : "";
    s.summary = `${flagText(t.flags)} seq=${seq}${ack} len=${t.payload}`;
  }
}

/** The rule of the header comment: ✗ for what entered and never left, + for what only left. */
function match(rows: readonly Seen[]): void {
  const entering = (s: Seen) => (s.side === "client") === (s.toServer === true);
  const waiting = new Map<string, Seen[]>();
  for (const s of rows) {
    if (s.matchKey === null || s.toServer === null) continue;
    if (entering(s)) {
      const q = waiting.get(s.matchKey) ?? [];
      q.push(s);
      waiting.set(s.matchKey, q);
    } else {
      const q = waiting.get(s.matchKey);
      if (q && q.length > 0) q.pop();
      else s.extra = true;
    }
  }
  for (const q of waiting.values()) for (const s of q) s.dropped = true;
}

function order(a: Seen, b: Seen): number {
  if (a.timeUs !== b.timeUs) return a.timeUs - b.timeUs;
  // At the same instant, what enters the gateway comes before what leaves it.
  const rank = (s: Seen) => ((s.side === "client") === (s.toServer !== false) ? 0 : 1);
  return rank(a) - rank(b) || a.index - b.index;
}

// --- drawing ---------------------------------------------------------------

/** Text for XML: escaped, and without the characters XML 1.0 cannot hold. */
export function xmlText(s: string): string {
  return (
    s
      // biome-ignore lint/suspicious/noControlCharactersInRegex: these are the ones XML forbids
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "\ufffd")
      .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd")
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;")
  );
}

const W = 900;
const X = { client: 130, gateway: 470, server: 810 } as const;
const ROW = 42;
const COLOR = {
  lane: "#94a3b8",
  arrow: "#334155",
  carrier: "#b45309",
  dropped: "#b91c1c",
  extra: "#6d28d9",
  unparsed: "#6b7280",
  note: "#475569",
} as const;

const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

function text(x: number, y: number, s: string, attrs = ""): string {
  return `<text x="${x}" y="${y}"${attrs ? ` ${attrs}` : ""}>${xmlText(s)}</text>`;
}

function head(x: number, y: number, right: boolean, color: string): string {
  const b = right ? x - 9 : x + 9;
  return `<polygon points="${x},${y} ${b},${y - 4.5} ${b},${y + 4.5}" fill="${color}"/>`;
}

function legend(y: number): string {
  const items: [string, string][] = [
    [
      `<line x1="0" y1="0" x2="34" y2="0" stroke="${COLOR.arrow}" stroke-width="1.5"/>${head(34, 0, true, COLOR.arrow)}`,
      "packet",
    ],
    [
      `<line x1="0" y1="0" x2="34" y2="0" stroke="${COLOR.carrier}" stroke-width="3"/>${head(34, 0, true, COLOR.carrier)}<text x="-3" y="4" text-anchor="end" fill="${COLOR.carrier}">◆</text>`,
      "carries the client address",
    ],
    [
      `<text x="17" y="5" text-anchor="middle" fill="${COLOR.dropped}" font-size="16" font-weight="bold">✗</text>`,
      "dropped at the gateway",
    ],
    [
      `<text x="17" y="5" text-anchor="middle" fill="${COLOR.extra}" font-size="16" font-weight="bold">+</text>`,
      "only leaving the gateway",
    ],
    [
      `<line x1="0" y1="0" x2="34" y2="0" stroke="${COLOR.unparsed}" stroke-width="1.5" stroke-dasharray="4 3"/>`,
      "unparsed",
    ],
  ];
  const col = [0, 1, 2, 0, 1].map((i) => 20 + i * 285);
  return items
    .map(([mark, label], i) => {
      const x = col[i]!;
      const yy = y + (i < 3 ? 0 : 20);
      return `<g transform="translate(${x + 12},${yy})">${mark}${text(42, 4, label)}</g>`;
    })
    .join("");
}

function roleAddresses(rows: readonly Seen[]): Record<keyof typeof X, string> {
  const sets = { client: new Set<string>(), gateway: new Set<string>(), server: new Set<string>() };
  for (const s of rows) {
    if (s.toServer === null || s.ips === null) continue;
    const [from, to] = s.toServer ? s.ips : [s.ips[1], s.ips[0]];
    sets[s.side === "client" ? "client" : "gateway"].add(from);
    sets[s.side === "client" ? "gateway" : "server"].add(to);
  }
  const show = (x: Set<string>) =>
    x.size > 2 ? `${[...x].slice(0, 2).join(", ")} +${x.size - 2}` : [...x].join(", ");
  return { client: show(sets.client), gateway: show(sets.gateway), server: show(sets.server) };
}

function arrow(s: Seen, y: number, t0: number): string {
  const [left, right] = s.side === "client" ? [X.client, X.gateway] : [X.gateway, X.server];
  // Unknown direction: drawn toward the gateway.
  const rightward = s.toServer ?? s.side === "client";
  const [x1, x2] = rightward ? [left, right] : [right, left];
  const carrier = s.carriers.length > 0;
  const color = s.unparsed ? COLOR.unparsed : carrier ? COLOR.carrier : COLOR.arrow;
  const flags: [boolean, string][] = [
    [carrier, "carrier"],
    [s.dropped, "dropped"],
    [s.extra, "extra"],
    [s.unparsed, "unparsed"],
  ];
  const cls = ["pkt", ...flags.filter(([on]) => on).map(([, name]) => name)].join(" ");
  const mid = (left + right) / 2;
  const dt = `${((s.timeUs - t0) / 1000).toFixed(3)} ms`;
  const tip = [
    `${s.side} side, packet ${s.index + 1}, at ${dt}`,
    `${s.src} → ${s.dst}`,
    s.summary,
    ...s.carriers,
    ...s.notes,
    ...(s.dropped ? ["no counterpart on the other side: dropped at the gateway"] : []),
    ...(s.extra ? ["no counterpart on the other side: made by the gateway"] : []),
  ].join("\n");
  const parts = [
    `<g class="${cls}" data-side="${s.side}" data-index="${s.index}">`,
    `<title>${xmlText(tip)}</title>`,
    text(8, y + 4, dt, `fill="${COLOR.note}" font-size="11"`),
    `<line x1="${x1}" y1="${y}" x2="${x2}" y2="${y}" stroke="${color}" stroke-width="${carrier ? 3 : 1.5}"${s.unparsed ? ' stroke-dasharray="4 3"' : ""}/>`,
    head(x2, y, rightward, color),
    text(mid, y - 6, clip(s.summary, 46), 'text-anchor="middle"'),
  ];
  // One line under the arrow, in pieces of their own colour: what the
  // packet carried, what looked odd, and what the gateway did with it.
  const below: [string, string][] = [];
  if (carrier) {
    parts.push(
      text(
        x1 + (rightward ? -4 : 4),
        y + 4,
        "◆",
        `fill="${COLOR.carrier}" text-anchor="${rightward ? "end" : "start"}"`,
      ),
    );
    below.push([`◆ ${s.carriers.join("; ")}`, `fill="${COLOR.carrier}" font-weight="bold"`]);
  }
  if (s.dropped) below.push(["✗ dropped at the gateway", `fill="${COLOR.dropped}"`]);
  if (s.extra) below.push(["+ only leaving the gateway", `fill="${COLOR.extra}"`]);
  if (s.notes.length > 0) below.push([s.notes.join("; "), `fill="${COLOR.note}"`]);
  let room = 52;
  const spans: string[] = [];
  for (const [words, attrs] of below) {
    if (room <= 1) break;
    const shown = clip(words, room);
    room -= shown.length + 3;
    spans.push(`<tspan ${attrs}>${xmlText(spans.length > 0 ? ` · ${shown}` : shown)}</tspan>`);
  }
  if (spans.length > 0)
    parts.push(
      `<text x="${mid}" y="${y + 14}" text-anchor="middle" font-size="11">${spans.join("")}</text>`,
    );
  for (const [on, mark, color] of [
    [s.dropped, "✗", COLOR.dropped],
    [s.extra, "+", COLOR.extra],
  ] as const) {
    if (!on) continue;
    const attrs = `text-anchor="middle" font-size="18" font-weight="bold" fill="${color}"`;
    parts.push(text(X.gateway + (rightward ? 10 : -10), y + 6, mark, attrs));
  }
  parts.push("</g>");
  return parts.join("");
}

/**
 * The diagram as a standalone SVG document (no XML declaration, so that it
 * can also sit inline in HTML). Never throws on packet bytes: a packet that
 * does not parse is drawn as "unparsed".
 */
export function ladderSvg(
  client: readonly PcapPacket[],
  server: readonly PcapPacket[],
  opts: LadderOptions = {},
): string {
  const all = [
    ...client.map((p, i) => readPacket(p, "client", i)),
    ...server.map((p, i) => readPacket(p, "server", i)),
  ].sort(order);
  tcpLabels(all);
  match(all);
  const max = opts.maxPackets ?? 2000;
  const rows = all.slice(0, max);
  const faults = opts.faults ?? [];
  const title = opts.title ?? `Ladder diagram of ${all.length} packets`;
  const out: string[] = [];
  let y = 22;
  out.push(text(8, y, title, 'font-size="14" font-weight="bold"'));
  y += 20;
  const faultLines = faults.length > 0 ? faults.map((f) => `fault: ${f}`) : ["faults: none"];
  for (const f of faultLines) {
    out.push(text(8, y, clip(f, 120), `fill="${COLOR.dropped}"`));
    y += 16;
  }
  y += 8;
  out.push(legend(y));
  y += 50;
  const roles = roleAddresses(all);
  for (const k of ["client", "gateway", "server"] as const) {
    out.push(text(X[k], y, k, 'text-anchor="middle" font-size="14" font-weight="bold"'));
    out.push(
      text(
        X[k],
        y + 15,
        clip(roles[k], 40),
        `text-anchor="middle" font-size="11" fill="${COLOR.note}"`,
      ),
    );
  }
  y += 26;
  const top = y;
  y += ROW - 10;
  const t0 = all[0]?.timeUs ?? 0;
  for (const s of rows) {
    out.push(arrow(s, y, t0));
    y += ROW;
  }
  if (all.length === 0) {
    out.push(text(X.gateway, y, "no packets in either capture", 'text-anchor="middle"'));
    y += ROW;
  }
  if (all.length > rows.length) {
    out.push(
      text(
        X.gateway,
        y,
        `${all.length - rows.length} more packets not drawn`,
        'text-anchor="middle"',
      ),
    );
    y += ROW;
  }
  const bottom = y - ROW + 14;
  const lanes = (["client", "gateway", "server"] as const).map(
    (k) =>
      `<line x1="${X[k]}" y1="${top}" x2="${X[k]}" y2="${bottom}" stroke="${COLOR.lane}" stroke-width="2"/>`,
  );
  const h = Math.ceil(bottom + 16);
  const desc = `Client, gateway and server as vertical lines, time downward: ${client.length} packets on the client side, ${server.length} on the server side.`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" role="img" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12" fill="#0f172a">`,
    `<title>${xmlText(title)}</title>`,
    `<desc>${xmlText(desc)}</desc>`,
    `<rect width="${W}" height="${h}" fill="#ffffff"/>`,
    ...lanes,
    ...out,
    "</svg>",
  ].join("\n");
}
