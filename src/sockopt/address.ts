import { SockoptError, SockoptErrorCode } from "./errors.js";

/**
 * Address text <-> bytes, written out rather than taken from `node:net`
 * because the readers must print addresses exactly as C's `inet_ntop` does
 * (the C and Python readers use it), and must turn the text Node gives for a
 * datagram's source back into the bytes a UOA lookup takes.
 */

export type Family = 4 | 6;

/** An address as the readers report it. */
export interface SockAddr {
  readonly family: Family;
  readonly address: string;
  readonly port: number;
}

/** IPv4 dotted quad. */
export function formatIPv4(b: Uint8Array, at = 0): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/**
 * IPv6 as glibc's and libuv's `inet_ntop` print it: lowercase, the longest
 * run (first on a tie) of two or more zero groups compressed, and the last
 * 32 bits dotted for v4-mapped (`::ffff:a.b.c.d`) and v4-compatible
 * (`::a.b.c.d`, words 6 non-zero) addresses.
 */
export function formatIPv6(b: Uint8Array, at = 0): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(((b[at + 2 * i] ?? 0) << 8) | (b[at + 2 * i + 1] ?? 0));
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      if (curBase === -1) {
        curBase = i;
        curLen = 1;
      } else curLen++;
    } else if (curBase !== -1) {
      if (bestBase === -1 || curLen > bestLen) {
        bestBase = curBase;
        bestLen = curLen;
      }
      curBase = -1;
    }
  }
  if (curBase !== -1 && (bestBase === -1 || curLen > bestLen)) {
    bestBase = curBase;
    bestLen = curLen;
  }
  if (bestBase !== -1 && bestLen < 2) bestBase = -1;
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ":";
      continue;
    }
    if (i !== 0) out += ":";
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
      out += formatIPv4(b, at + 12);
      break;
    }
    out += (words[i] ?? 0).toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ":";
  return out;
}

/** 4 bytes for family 4, 16 for family 6. */
export function formatAddress(family: Family, b: Uint8Array, at = 0): string {
  return family === 4 ? formatIPv4(b, at) : formatIPv6(b, at);
}

function invalid(text: string, why: string): SockoptError {
  return new SockoptError(
    SockoptErrorCode.invalidArgument,
    `not an IP address: ${JSON.stringify(text)} (${why})`,
  );
}

/** Strict dotted quad (no leading zeros, as `inet_pton` wants); false if not one. */
function parseIPv4Into(text: string, out: Uint8Array, at: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i] ?? "";
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return false;
    const n = Number(p);
    if (n > 255) return false;
    out[at + i] = n;
  }
  return true;
}

export function parseIPv4(text: string): Uint8Array {
  const out = new Uint8Array(4);
  if (!parseIPv4Into(text, out, 0)) throw invalid(text, "expected a.b.c.d");
  return out;
}

/**
 * IPv6 text, with `::` and a dotted IPv4 tail; a `%scope` suffix (Node adds
 * one to link-local sources) is dropped, since the lookups take bare bytes.
 */
export function parseIPv6(text: string): Uint8Array {
  const pct = text.indexOf("%");
  const s = pct === -1 ? text : text.slice(0, pct);
  const out = new Uint8Array(16);
  const halves = s.split("::");
  if (halves.length > 2) throw invalid(text, "more than one '::'");
  const groups = (h: string | undefined): string[] =>
    h === undefined || h === "" ? [] : h.split(":");
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const words: number[] = [];
  const push = (list: string[], isLast: boolean): void => {
    for (let i = 0; i < list.length; i++) {
      const g = list[i] ?? "";
      if (isLast && i === list.length - 1 && g.includes(".")) {
        const v4 = new Uint8Array(4);
        if (!parseIPv4Into(g, v4, 0)) throw invalid(text, `bad IPv4 tail ${g}`);
        words.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw invalid(text, `bad group ${JSON.stringify(g)}`);
      words.push(Number.parseInt(g, 16));
    }
  };
  const compressed = halves.length === 2;
  push(head, !compressed);
  const headWords = words.length;
  push(tail, true);
  const tailWords = words.length - headWords;
  if (compressed ? headWords + tailWords > 7 : words.length !== 8) {
    throw invalid(text, "wrong number of groups");
  }
  for (let i = 0; i < headWords; i++) {
    out[2 * i] = (words[i] ?? 0) >> 8;
    out[2 * i + 1] = (words[i] ?? 0) & 0xff;
  }
  for (let i = 0; i < tailWords; i++) {
    const w = words[headWords + i] ?? 0;
    const j = 8 - tailWords + i;
    out[2 * j] = w >> 8;
    out[2 * j + 1] = w & 0xff;
  }
  return out;
}

export function parseAddress(family: Family, text: string): Uint8Array {
  return family === 4 ? parseIPv4(text) : parseIPv6(text);
}

export function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new SockoptError(
      SockoptErrorCode.invalidArgument,
      `${what}: port must be an integer 0-65535, got ${String(port)}`,
    );
  }
}
