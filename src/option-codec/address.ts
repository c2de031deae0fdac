import { CodecError, CodecErrorCode } from "./errors.js";

/** An IP address as bytes: 4 for IPv4, 16 for IPv6. */
export type IpAddress = Uint8Array;
export type Family = 4 | 6;

export interface Endpoint {
  readonly addr: IpAddress;
  readonly port: number;
}

export function familyOf(addr: IpAddress): Family {
  if (addr.length === 4) return 4;
  if (addr.length === 16) return 6;
  throw new CodecError(CodecErrorCode.badAddress, 0, `address of ${addr.length} bytes`);
}

function bad(text: string, why: string): CodecError {
  return new CodecError(CodecErrorCode.badAddress, 0, `"${text}" is not an IP address: ${why}`);
}

export function parseIpv4(text: string): IpAddress {
  const parts = text.split(".");
  if (parts.length !== 4) throw bad(text, "IPv4 needs four dotted parts");
  const out = new Uint8Array(4);
  parts.forEach((p, i) => {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) throw bad(text, `bad part "${p}"`);
    out[i] = Number(p);
  });
  return out;
}

export function parseIpv6(text: string): IpAddress {
  if (text.includes("%")) throw bad(text, "zone indexes are not supported");
  const halves = text.split("::");
  if (halves.length > 2) throw bad(text, "more than one '::'");
  const words: number[][] = halves.map((h, hi) => {
    if (h === "") return [];
    const groups = h.split(":");
    const ws: number[] = [];
    groups.forEach((g, gi) => {
      const lastOfAll = hi === halves.length - 1 && gi === groups.length - 1;
      if (g.includes(".") && lastOfAll) {
        const v4 = parseIpv4(g);
        ws.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) {
        ws.push(Number.parseInt(g, 16));
      } else {
        throw bad(text, `bad group "${g}"`);
      }
    });
    return ws;
  });
  const head = words[0] ?? [];
  const tail = words[1] ?? [];
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) throw bad(text, "wrong number of groups");
  const all = [...head, ...new Array<number>(8 - total).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

export function parseIp(text: string): IpAddress {
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

/** RFC 5952 text form for IPv6 (longest zero run compressed, lower case). */
export function formatIp(addr: IpAddress): string {
  if (addr.length === 4) return `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}`;
  if (addr.length !== 16) throw new CodecError(CodecErrorCode.badAddress, 0, "bad address length");
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((addr[2 * i]! << 8) | addr[2 * i + 1]!);
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (bestAt < 0) return hex(w);
  return `${hex(w.slice(0, bestAt))}::${hex(w.slice(bestAt + bestLen))}`;
}

/** Parses `a.b.c.d:port` or `[v6]:port`. */
export function parseEndpoint(text: string): Endpoint {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  if (!m) throw bad(text, "expected ADDR:PORT or [V6ADDR]:PORT");
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw bad(text, `port ${m[2]} out of 1-65535`);
  return { addr: parseIp(m[1]!), port };
}

export function formatEndpoint(e: Endpoint): string {
  return e.addr.length === 16 ? `[${formatIp(e.addr)}]:${e.port}` : `${formatIp(e.addr)}:${e.port}`;
}

/** ::ffff:a.b.c.d, the form in which a v6 socket sees a v4 peer. */
export function v4Mapped(v4: IpAddress): IpAddress {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

export function isV4Mapped(a: IpAddress): boolean {
  if (a.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

/** An address range: the first `length` bits of `addr` (CIDR). */
export interface Prefix {
  readonly addr: IpAddress;
  readonly length: number;
}

/** `192.0.2.0/24`, `2001:db8:5::/64`; without `/N`, the one address. */
export function parsePrefix(text: string): Prefix {
  const slash = text.indexOf("/");
  const addr = parseIp(slash < 0 ? text : text.slice(0, slash));
  const max = addr.length * 8;
  if (slash < 0) return { addr, length: max };
  const lenText = text.slice(slash + 1);
  const length = /^\d{1,3}$/.test(lenText) ? Number(lenText) : Number.NaN;
  if (!(length >= 0 && length <= max))
    throw new CodecError(
      CodecErrorCode.badAddress,
      0,
      `"${text}" is not an address range: the prefix length must be 0 to ${max}`,
    );
  return { addr, length };
}

/** Whether `addr` is inside `p` (never across families). */
export function inPrefix(addr: IpAddress, p: Prefix): boolean {
  if (addr.length !== p.addr.length) return false;
  const whole = p.length >> 3;
  for (let i = 0; i < whole; i++) if (addr[i] !== p.addr[i]) return false;
  const rest = p.length & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (addr[whole]! & mask) === (p.addr[whole]! & mask);
}
