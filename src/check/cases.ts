import type { Family } from "./result.js";

/**
 * The battery of `toasim check`: what gateways and clients really send, each
 * with what a correct decoder answers and why. A case runs once per profile
 * and family it applies to; one connection (or flow) answers every reader
 * at once, since the reader server asks the decoder with every ABI.
 */

/** What a correct decoder gives the server for this case. */
export type Expect =
  /** The client's address (and its port, when the carrier has one). */
  | "client"
  /** Nothing: no carrier reached the server, the decoder must not invent one. */
  | "nothing"
  /** Anything but the address the client forged itself. */
  | "not-forged"
  /** The client, or nothing: a segment whose option list breaks the grammar may be refused whole. */
  | "client-or-nothing"
  /** As client-or-nothing, or the datagram dropped: a decoder may drop one whose UOA it cannot read. */
  | "client-nothing-or-lost";

/** One way to break the gateway's UOA (the fault stage does it, after the gateway). */
export interface UoaBreak {
  /** What is broken, as the diagnosis names it. */
  readonly what: string;
  /** Which bytes: the opp private header's (opp only) or the UOA option's (either placement). */
  readonly in: "header" | "option";
  readonly byte: number;
  /** The corrupt action's operation, in --fault's words (set=N, xor=N). */
  readonly op: string;
}

/** What the client does. */
export type ClientPlay =
  /** A real socket: connect, send one request, read the server's report. */
  | { readonly kind: "socket"; readonly finWithData?: boolean; readonly connections?: number }
  /** toasim's scripted client, for options a kernel would not send (a forged TOA, options full). */
  | {
      readonly kind: "scripted";
      readonly syn?: readonly string[];
      readonly ack?: readonly string[];
      readonly segment?: readonly string[];
      readonly dataOnAck?: boolean;
    }
  /**
   * Scripted connections whose handshake ACK and later segments carry a
   * broken TOA ({kind} and {kindhex} are the profile's kind): each pattern
   * from `perPattern` client addresses, then one clean connection.
   */
  | {
      readonly kind: "storm";
      readonly patterns: readonly { readonly word: string; readonly expect: Expect }[];
      readonly perPattern: number;
    }
  /**
   * UDP datagrams on one flow; with `idleAfter`, the flow then stays quiet
   * past the gateway's UDP timeout and the decoder's map timeout before
   * the rest are sent.
   */
  | { readonly kind: "datagrams"; readonly count: number; readonly idleAfter?: number }
  /**
   * UDP flows from one client, one after another: for each break, a flow
   * of `perPattern` datagrams whose UOA the fault stage breaks that way;
   * then a clean flow, which must be answered with the client.
   */
  | {
      readonly kind: "uoa-storm";
      readonly patterns: readonly UoaBreak[];
      readonly perPattern: number;
    };

export interface CheckCase {
  readonly id: string;
  readonly title: string;
  readonly proto: "tcp" | "udp";
  /** What a correct decoder answers, and why: the report says it beside a failure. */
  readonly why: string;
  /** Where the rule is documented, relative to the repository. */
  readonly doc: string;
  readonly expect: Expect;
  /** The likely cause when a decoder fails this case (the diagnosis ends with it). */
  readonly cause: string;
  /** Families it runs for (those the profile carries, of these). */
  readonly families: readonly Family[];
  /**
   * Which profiles it applies to: any profile with a TOA (tcp) or a UOA
   * (udp), narrowed by these conditions on its policy.
   */
  readonly needs?: {
    /** The profile's TOA must go on data segments too (the handshake ACK may be lost). */
    readonly dataCarry?: boolean;
  };
  /** Gateway settings for the case (the text forms of toasim up's flags). */
  readonly settings?: Readonly<Record<string, string>>;
  /** Fault rules for the case, in the one-word form of --fault. */
  readonly faults?: readonly string[];
  /** Gateway idle timeouts for the case, in seconds (toasim up --timeout). */
  readonly timeouts?: Readonly<Record<string, number>>;
  /** net.* sysctls of the server namespace for the case. */
  readonly sysctl?: Readonly<Record<string, string>>;
  readonly client: ClientPlay;
}

const ALL: readonly Family[] = ["v4", "v6", "nat64"];

/**
 * The broken UOAs of the UDP storms: every length a walker must refuse
 * (0 and 1 never advance, 2 and 6 hold no whole address, 255 runs past the
 * datagram), a type that is not the UOA's, and, in opp's private header, a
 * version that names no family or the other one, an inner protocol that is
 * not UDP, and lengths shorter than the header or past the datagram.
 */
const UOA_BREAKS: readonly UoaBreak[] = [
  { what: "header version 3 (no such family)", in: "header", byte: 0, op: "set=48" },
  { what: "header version of the other family", in: "header", byte: 0, op: "xor=48" },
  { what: "header protocol 6 (not UDP)", in: "header", byte: 1, op: "set=6" },
  { what: "header length 0", in: "header", byte: 3, op: "set=0" },
  { what: "header length 5 (inside the option)", in: "header", byte: 3, op: "set=5" },
  { what: "header length past the datagram", in: "header", byte: 2, op: "set=255" },
  { what: "option type 30 (not a UOA)", in: "option", byte: 0, op: "set=30" },
  { what: "option length 0", in: "option", byte: 1, op: "set=0" },
  { what: "option length 1", in: "option", byte: 1, op: "set=1" },
  { what: "option length 2 (no address)", in: "option", byte: 1, op: "set=2" },
  { what: "option length 6 (a cut address)", in: "option", byte: 1, op: "set=6" },
  { what: "option length 255 (past the end)", in: "option", byte: 1, op: "set=255" },
];

/** The UOA storm in one placement: opp (every family, every break) or ipo (v4, the option's breaks). */
function uoaStorm(placement: "opp" | "ipo"): CheckCase {
  const ipo = placement === "ipo";
  return {
    id: ipo ? "udp.storm-ipo" : "udp.storm",
    title: `a storm of malformed UOAs (${placement})`,
    proto: "udp",
    why: "a broken gateway or a middlebox can mangle the UOA: lengths that never advance or run past the datagram, a type or version the decoder does not know. The decoder must never take an address from such a UOA, never loop or read past the datagram (it may drop the datagram), and must still read the next flow's whole UOA",
    doc: ipo
      ? "docs/dialects.md#ipo-in-the-ipv4-header-options"
      : "docs/dialects.md#opp-a-private-protocol-between-ip-and-udp",
    expect: "client",
    cause: ipo
      ? "the decoder's IPv4 option walker trusts an option length it should check, or a broken UOA leaves an entry that hides the next flow's"
      : "the decoder's UOA parser trusts a length or a version it should check, or a broken UOA leaves an entry that hides the next flow's",
    families: ipo ? ["v4"] : ALL,
    ...(ipo ? { settings: { uoa: "ipo" } } : {}),
    client: {
      kind: "uoa-storm",
      patterns: ipo ? UOA_BREAKS.filter((b) => b.in === "option") : UOA_BREAKS,
      perPattern: 2,
    },
  };
}
const PRECISE = "docs/dialects.md#which-packets-the-precise-rule";

/** The address a forging client writes into its own TOA (never the real client). */
export const FORGED = { address: "198.51.100.99", port: 4321 } as const;

/** A client's own TOA, in the profile's kind ({kind} is filled in when the case runs). */
const FORGED_TOA = `toa:{kind}:${FORGED.address}:${FORGED.port}`;

export const CASES: readonly CheckCase[] = [
  {
    id: "tcp.basic",
    title: "the basic exchange",
    proto: "tcp",
    why: "the gateway puts the client into the packets its profile names; every reader the decoder offers gives the client",
    doc: "docs/dialects.md#profiles",
    expect: "client",
    cause: "the decoder does not read this profile's TOA (its kind, length or layout)",
    families: ALL,
    client: { kind: "socket" },
  },
  {
    id: "tcp.syn-only",
    title: "the address only on the SYN",
    proto: "tcp",
    why: "some gateways (LVS FULLNAT, Aliyun CDN) put the TOA on the SYN alone: the decoder must keep it from the SYN until the connection is accepted",
    doc: PRECISE,
    expect: "client",
    cause:
      "the decoder reads the TOA only from the handshake ACK or later segments, not from the SYN",
    families: ALL,
    settings: { carry: "syn" },
    client: { kind: "socket" },
  },
  {
    id: "tcp.ack-only",
    title: "the address only on the handshake ACK",
    proto: "tcp",
    why: "Tencent, Kingsoft and noa put the TOA on the handshake ACK alone: the decoder must read the segment that completes the handshake",
    doc: PRECISE,
    expect: "client",
    cause: "the decoder does not read the TOA of the handshake-completing ACK",
    families: ALL,
    settings: { carry: "handshake-ack" },
    client: { kind: "socket" },
  },
  {
    id: "tcp.handshake-ack-lost",
    title: "the handshake ACK lost: the address only on the first data",
    proto: "tcp",
    why: "when the handshake ACK is lost, the client's first data segment completes the handshake; DPVS puts the TOA on data until the client acks server data, so the decoder must read it there",
    doc: PRECISE,
    expect: "client",
    cause:
      "the decoder reads only a payload-less ACK, not a data segment that completes the handshake",
    families: ALL,
    needs: { dataCarry: true },
    faults: ["to-server:handshake-ack:drop,count=1"],
    client: { kind: "socket" },
  },
  {
    id: "tcp.fin-with-data",
    title: "the address on a FIN that carries data",
    proto: "tcp",
    why: "a client that sends its request and closes at once sends data and FIN in one segment; with the handshake ACK lost that segment completes the handshake and carries the TOA (DPVS carries FINs too)",
    doc: PRECISE,
    expect: "client",
    cause: "the decoder skips segments with FIN set",
    families: ALL,
    needs: { dataCarry: true },
    faults: ["to-server:handshake-ack:drop,count=1"],
    client: { kind: "socket", finWithData: true },
  },
  {
    id: "tcp.ack-retransmitted",
    title: "a retransmitted handshake ACK",
    proto: "tcp",
    why: "the handshake ACK may arrive twice (a retransmission, a duplicating path): the decoder must still give the client, once, without a leak or a second entry",
    doc: PRECISE,
    expect: "client",
    cause: "the decoder mishandles a second TOA for the same connection",
    families: ALL,
    faults: ["to-server:handshake-ack:duplicate"],
    client: { kind: "socket" },
  },
  {
    id: "tcp.options-full",
    title: "option space full: the gateway prunes",
    proto: "tcp",
    why: "a Linux client's handshake ACK with timestamps and SACK blocks leaves no room for a TOA; DPVS removes NOPs and other options to make room, so the TOA still arrives",
    doc: "docs/dialects.md#room-for-the-option",
    expect: "client",
    cause: "the decoder does not find the TOA among the options left after pruning",
    families: ALL,
    settings: { prune: "on" },
    client: {
      kind: "scripted",
      syn: ["mss:1460", "sack-perm", "ts", "nop", "ws:7"],
      ack: ["nop", "nop", "ts", "nop", "nop", "sack:3"],
      segment: ["nop", "nop", "ts"],
    },
  },
  {
    id: "tcp.options-full-no-prune",
    title: "option space full: a gateway that does not prune",
    proto: "tcp",
    why: "without pruning the TOA does not fit and the gateway sends the segment without it: a correct decoder then has no client to give (the server sees the gateway), it must not invent one",
    doc: "docs/dialects.md#room-for-the-option",
    expect: "nothing",
    cause: "the decoder answers with an address it did not receive",
    families: ALL,
    settings: { prune: "off" },
    client: {
      kind: "scripted",
      syn: ["mss:1460", "sack-perm", "ts", "nop", "ws:7"],
      ack: ["nop", "nop", "ts", "nop", "nop", "sack:3"],
      segment: ["nop", "nop", "ts", "nop", "nop", "sack:3"],
    },
  },
  {
    id: "tcp.syn-cookies",
    title: "SYN cookies",
    proto: "tcp",
    why: "under a SYN flood the server answers with SYN cookies and keeps no state for the SYN: the decoder must still give the client (from the ACK, or from the SYN kept elsewhere)",
    doc: "docs/scenarios.md",
    expect: "client",
    cause:
      "the decoder keeps the SYN's TOA with the request socket, which SYN cookies never create",
    families: ALL,
    sysctl: { "net.ipv4.tcp_syncookies": "2" },
    client: { kind: "socket" },
  },
  {
    id: "tcp.syn-only-syn-cookies",
    title: "the address only on the SYN, under SYN cookies",
    proto: "tcp",
    why: "with SYN cookies the server keeps nothing of the SYN, so a decoder that keeps the SYN's TOA with the request socket loses it: it must keep it by the connection's addresses and ports instead",
    doc: "docs/scenarios.md",
    expect: "client",
    cause:
      "the decoder keeps the SYN's TOA with the request socket, which SYN cookies never create",
    families: ALL,
    settings: { carry: "syn" },
    sysctl: { "net.ipv4.tcp_syncookies": "2" },
    client: { kind: "socket" },
  },
  {
    id: "tcp.two-toas",
    title: "two TOAs in one segment",
    proto: "tcp",
    why: "a gateway that does not strip the TOA a client wrote delivers segments with two: the decoder must not give the server the address the client chose",
    doc: "docs/dialects.md#known-hazards",
    expect: "not-forged",
    cause: "the decoder takes the first TOA of a segment, which the client wrote",
    families: ["v4"],
    settings: { stripClientToa: "off" },
    client: {
      kind: "scripted",
      ack: ["nop", "nop", FORGED_TOA],
    },
  },
  {
    id: "tcp.forged-toa",
    title: "a client-forged TOA, stripped by the gateway",
    proto: "tcp",
    why: "a client may put its own TOA in its packets to choose the address the server logs; the gateway removes it and adds its own: the decoder gives the real client",
    doc: "docs/dialects.md#known-hazards",
    expect: "client",
    cause: "the decoder does not read the gateway's TOA when options were rewritten around it",
    families: ["v4"],
    client: {
      kind: "scripted",
      ack: ["nop", "nop", FORGED_TOA],
    },
  },
  {
    id: "tcp.many-connections",
    title: "many connections from one client address",
    proto: "tcp",
    why: "one client opens many connections at once (a browser, a pool): each one's readers must give its own port, never another connection's",
    doc: "docs/dialects.md#server-side-abis",
    expect: "client",
    cause: "the decoder keys its entries by address alone, or mixes up concurrent connections",
    families: ["v4", "v6"],
    client: { kind: "socket", connections: 32 },
  },
  {
    id: "tcp.storm",
    title: "a storm of malformed carriers",
    proto: "tcp",
    why: "clients (and broken middleboxes) send TOA-kind options of every wrong length: zero, one, truncated, neither IPv4 nor IPv6, past the header's end; the gateway leaves them beside its own. The decoder must read the gateway's TOA, never an address from a broken one, never loop or read past the options, and keep serving the connections after them",
    doc: "docs/dialects.md#known-hazards",
    expect: "client",
    cause:
      "the decoder's option walker mishandles a TOA-kind option of the wrong length (it takes its bytes for an address, or stops before the gateway's TOA)",
    families: ["v4", "v6"],
    settings: { stripClientToa: "off" },
    client: {
      kind: "storm",
      perPattern: 12,
      // The forged address inside them (198.51.100.99, port 4321) shows when one is believed.
      // Lengths 0, 1 and past the end break the option grammar: a decoder may
      // refuse such a segment whole (toasim's module does) or read up to the
      // break (Linux's parser does), so nothing is as right as the client there.
      patterns: [
        { word: "raw:{kindhex}00", expect: "client-or-nothing" },
        { word: "raw:{kindhex}01", expect: "client-or-nothing" },
        { word: "raw:{kindhex}02", expect: "client" },
        { word: "raw:{kindhex}0610e1c633", expect: "client" },
        { word: "raw:{kindhex}0910e1c633646300", expect: "client" },
        { word: "raw:{kindhex}0a10e1c63364630000", expect: "client" },
        { word: "raw:{kindhex}28", expect: "client-or-nothing" },
      ],
    },
  },
  {
    id: "udp.basic",
    title: "UOA, the first datagram",
    proto: "udp",
    why: "the gateway puts a UOA on the first datagrams of a flow; the 2048 lookup for the datagram's source gives the client",
    doc: "docs/dialects.md#the-uoa-option",
    expect: "client",
    cause: "the decoder does not read this UOA placement",
    families: ALL,
    client: { kind: "datagrams", count: 1 },
  },
  {
    id: "udp.after-first-n",
    title: "UOA only on the first N datagrams",
    proto: "udp",
    why: "only the first max_trail datagrams of a flow carry the UOA: the decoder keeps the flow's client, so a datagram after them is still answered",
    doc: "docs/dialects.md#the-uoa-option",
    expect: "client",
    cause: "the decoder answers only for datagrams that carried the option itself",
    families: ALL,
    settings: { maxTrail: "2" },
    client: { kind: "datagrams", count: 5 },
  },
  {
    id: "udp.ipo",
    title: "UOA in the IPv4 header options",
    proto: "udp",
    why: "DPVS's ipo mode puts the UOA in the IPv4 options (IPv4 on both sides only)",
    doc: "docs/dialects.md#ipo-in-the-ipv4-header-options",
    expect: "client",
    cause: "the decoder reads only the opp placement",
    families: ["v4"],
    settings: { uoa: "ipo" },
    client: { kind: "datagrams", count: 1 },
  },
  {
    id: "udp.after-timeout",
    title: "UOA again after the flow timed out",
    proto: "udp",
    why: "a flow that stays quiet past the gateway's UDP timeout and the decoder's map timeout starts again as a new flow whose first datagrams carry the UOA: the decoder must have let the old entry go and give the client from the new option",
    doc: "docs/dialects.md#the-uoa-option",
    expect: "client",
    cause: "the decoder's expired entry blocks the new one, or its timeout handling loses the flow",
    families: ALL,
    settings: { maxTrail: "1" },
    timeouts: { udp: 1 },
    client: { kind: "datagrams", count: 2, idleAfter: 1 },
  },
  uoaStorm("opp"),
  uoaStorm("ipo"),
];

export function caseById(id: string): CheckCase | undefined {
  return CASES.find((c) => c.id === id);
}
