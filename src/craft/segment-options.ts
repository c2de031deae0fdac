import { GatewayError } from "../fullnat-sim/errors.js";
import { familyOf, parseIp } from "../option-codec/address.js";
import { fromHex, writeU16 } from "../option-codec/bytes.js";
import { CodecError } from "../option-codec/errors.js";

/**
 * TCP option lists for scripted clients, written as words so a scenario can
 * say exactly what each segment carries:
 *   mss:N  ws:N  sack-perm  ts  nop  eol  sack:N (N blocks, 1-4)
 *   toa:KIND:ADDR:PORT (a client-made TOA, port-addr layout)  raw:HEX
 * The list is padded with NOPs to a multiple of 4 bytes and must fit the
 * 40 bytes a TCP header has for options.
 */
export interface SegmentOptions {
  readonly bytes: Uint8Array;
  /** Where TSval starts in `bytes` (TSecr follows), or -1 without timestamps. */
  readonly tsAt: number;
  /** Where the SACK blocks start (8 bytes each, filled per segment), or -1. */
  readonly sackAt: number;
  readonly sackBlocks: number;
}

export const NO_OPTIONS: SegmentOptions = {
  bytes: new Uint8Array(0),
  tsAt: -1,
  sackAt: -1,
  sackBlocks: 0,
};

/** What a Linux client sends on a SYN, and on later segments once timestamps are agreed. */
export const LINUX_SYN = ["mss:1460", "sack-perm", "ts", "nop", "ws:7"] as const;
export const LINUX_SEGMENT = ["nop", "nop", "ts"] as const;

function bad(where: string, message: string): never {
  throw new GatewayError("BAD_CONFIG", `${where}: ${message}`);
}

export function parseSegmentOptions(words: readonly unknown[], where: string): SegmentOptions {
  const out: number[] = [];
  let tsAt = -1;
  let sackAt = -1;
  let sackBlocks = 0;
  words.forEach((w, i) => {
    const at = `${where}[${i}]`;
    if (typeof w !== "string")
      bad(at, "an option word, e.g. mss:1460, ts, toa:254:198.51.100.9:80");
    const [name, ...args] = w.split(":");
    const num = (s: string | undefined, min: number, max: number): number => {
      if (s === undefined || !/^\d+$/.test(s) || Number(s) < min || Number(s) > max)
        bad(at, `${JSON.stringify(w)}: wants an integer from ${min} to ${max}`);
      return Number(s);
    };
    switch (name) {
      case "nop":
        out.push(1);
        break;
      case "eol":
        out.push(0);
        break;
      case "mss": {
        const v = num(args[0], 1, 65535);
        out.push(2, 4, v >> 8, v & 0xff);
        break;
      }
      case "ws":
        out.push(3, 3, num(args[0], 0, 14));
        break;
      case "sack-perm":
        out.push(4, 2);
        break;
      case "ts":
        tsAt = out.length + 2;
        out.push(8, 10, 0, 0, 0, 0, 0, 0, 0, 0);
        break;
      case "sack": {
        sackBlocks = num(args[0], 1, 4);
        sackAt = out.length + 2;
        out.push(5, 2 + 8 * sackBlocks, ...new Array<number>(8 * sackBlocks).fill(0));
        break;
      }
      case "toa": {
        if (args.length < 3) bad(at, `${JSON.stringify(w)} is not toa:KIND:ADDR:PORT`);
        const kind = num(args[0], 2, 255);
        const port = num(args[args.length - 1], 0, 65535);
        let addr: Uint8Array;
        try {
          addr = parseIp(args.slice(1, -1).join(":"));
        } catch (e) {
          if (e instanceof CodecError) bad(at, `${JSON.stringify(w)}: bad address`);
          throw e;
        }
        const len = familyOf(addr) === 4 ? 8 : 20;
        const o = new Uint8Array(len);
        o[0] = kind;
        o[1] = len;
        writeU16(o, 2, port);
        o.set(addr, 4);
        out.push(...o);
        break;
      }
      case "raw": {
        if (args.length !== 1 || !/^([0-9a-fA-F]{2})+$/.test(args[0]!))
          bad(at, `${JSON.stringify(w)} is not raw:HEX`);
        out.push(...fromHex(args[0]!));
        break;
      }
      default:
        bad(
          at,
          `unknown option ${JSON.stringify(name)} (mss, ws, sack-perm, ts, nop, eol, sack, toa, raw)`,
        );
    }
  });
  while (out.length % 4 !== 0) out.push(1);
  if (out.length > 40) bad(where, `${out.length} bytes of options; a TCP header holds 40`);
  return { bytes: Uint8Array.from(out), tsAt, sackAt, sackBlocks };
}
