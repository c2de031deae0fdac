import { DecoderError, DecoderErrorCode } from "./errors.js";

/**
 * The layouts of the decoder's maps (bpf/decoder.h), as byte offsets, and
 * the names of its counters in the order of the header's enum; the rows
 * share their names with the kernel module's /proc/net files.
 * test/unit/decoder-maps.test.ts compares this file with the header.
 */

export const STAT_NAMES = [
  "syn_recv_sock_toa",
  "syn_recv_sock_no_toa",
  "getname_toa_ok",
  "getname_toa_mismatch",
  "getname_toa_bypass",
  "getname_toa_empty",
  "ip6_address_alloc",
  "ip6_address_free",
  "toa_malformed",
  "toa_untrusted",
  "syn_toa_saved",
  "sock_alloc",
  "sock_free",
  "success",
  "miss",
  "invalid",
  "got",
  "none",
  "saved",
  "untrusted",
  "expired",
] as const;

export type StatName = (typeof STAT_NAMES)[number];

/** Rows shown under toa_stats; the rest under uoa_stats. */
export const TOA_ROWS = STAT_NAMES.slice(0, STAT_NAMES.indexOf("success"));

/** struct toasim_cfg */
export const CFG_SIZE = 48;

export interface DecoderSettings {
  /** Kinds of the port+address layouts (lengths 8, 16, 20). */
  readonly tcpKinds: readonly number[];
  /** Kind of Kingsoft's 22-byte ttm_peer, or -1. */
  readonly ttmKind: number;
  readonly ttmAfNetworkOrder: boolean;
  /** Kind of the SYN-carried version+address layout (Aliyun CDN), or -1. */
  readonly cdnKind: number;
  /** Where tc finds the IP header: 0 on TUN devices, 14 on Ethernet. */
  readonly l3Offset: number;
  readonly uoaTimeoutSec: number;
  readonly synTimeoutSec: number;
  /** "any", or CIDR ranges of the gateways' local addresses. */
  readonly trusted: readonly string[] | "any";
}

/**
 * Only toasim's gateway-side documentation ranges by default, as the
 * module: no address that can exist on the internet is believed until the
 * user names their gateways.
 */
export const DEFAULT_SETTINGS: DecoderSettings = {
  tcpKinds: [254, 253, 200],
  ttmKind: 254,
  ttmAfNetworkOrder: false,
  cdnKind: 28,
  l3Offset: 0,
  uoaTimeoutSec: 360,
  synTimeoutSec: 30,
  trusted: ["192.0.2.0/24", "2001:db8:5::/64"],
};

function checkKind(what: string, k: number, allowOff: boolean): void {
  if (!Number.isInteger(k) || k > 255 || (k < 2 && !(allowOff && k === -1))) {
    throw new DecoderError(
      DecoderErrorCode.badInput,
      `${what}: ${k} is not an option kind 2..255${allowOff ? " (or -1: off)" : ""}`,
    );
  }
}

export function encodeCfg(s: DecoderSettings): Uint8Array {
  const b = new Uint8Array(CFG_SIZE);
  const dv = new DataView(b.buffer);
  for (const k of s.tcpKinds) {
    checkKind("TCP option kind", k, false);
    b[k >> 3] = (b[k >> 3] ?? 0) | (1 << (k & 7));
  }
  checkKind("ttm kind", s.ttmKind, true);
  checkKind("cdn kind", s.cdnKind, true);
  dv.setInt16(32, s.ttmKind, true);
  dv.setInt16(34, s.cdnKind, true);
  b[36] = s.ttmAfNetworkOrder ? 1 : 0;
  b[37] = s.trusted === "any" ? 1 : 0;
  dv.setUint16(38, s.l3Offset, true);
  for (const [what, v] of [
    ["UOA timeout", s.uoaTimeoutSec],
    ["SYN timeout", s.synTimeoutSec],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 86_400)
      throw new DecoderError(DecoderErrorCode.badInput, `${what}: ${v} is not 1..86400 seconds`);
  }
  dv.setUint32(40, s.uoaTimeoutSec, true);
  dv.setUint32(44, s.synTimeoutSec, true);
  return b;
}

/** An LPM trie key: u32 prefix length (host order), then the address. */
export function lpmKey(prefix: number, addr: Uint8Array): Uint8Array {
  const k = new Uint8Array(4 + addr.length);
  new DataView(k.buffer).setUint32(0, prefix, true);
  k.set(addr, 4);
  return k;
}

/** struct toasim_flow_key (40 bytes), struct toasim_flow (32: client 20, pad, u64 expires at 24). */
export const FLOW_KEY_SIZE = 40;
export const FLOW_SIZE = 32;
export const FLOW_EXPIRES_OFFSET = 24;

/** The module's two files as objects; gauges after the counters, as the module prints them. */
export function statsRows(s: {
  counters: Record<StatName, number>;
  sockEntries: number;
  synEntries: number;
  flowEntries: number;
}): {
  toa: Record<string, number>;
  uoa: Record<string, number>;
} {
  const toa: Record<string, number> = {};
  const uoa: Record<string, number> = {};
  for (const name of STAT_NAMES) {
    if (name === "sock_alloc" || name === "sock_free") continue;
    ((TOA_ROWS as readonly string[]).includes(name) ? toa : uoa)[name] = s.counters[name];
  }
  toa["sock_entries"] = s.sockEntries;
  toa["syn_entries"] = s.synEntries;
  uoa["flow_entries"] = s.flowEntries;
  return { toa, uoa };
}
