import type { CheckCase } from "./cases.js";
import { FORGED } from "./cases.js";
import type { ClientLine } from "./client.js";
import type { Family, ReaderName, Result } from "./result.js";

/**
 * One reader's verdict on what the reader server reported for a case's
 * connections (or datagrams): pass, fail with a one-line diagnosis that
 * names what came, what was expected and the likely cause, or unsupported
 * when the decoder offers no such reader.
 */

export interface Verdict {
  readonly result: Result;
  readonly expected: string;
  readonly got: string;
  readonly diagnosis: string | null;
}

export interface JudgeInput {
  readonly case: CheckCase;
  readonly family: Family;
  readonly reader: ReaderName;
  /** The client's address, as the client bound it. */
  readonly client: string;
  /** The carrier has no port (Aliyun CDN's version-addr layout): only the address counts. */
  readonly noPort: boolean;
  /** What decodes; "none" makes every failure a "no decoder" diagnosis. */
  readonly decoder: string;
  /** Clients of earlier runs of the check, by address: the case each belonged to. */
  readonly earlier?: ReadonlyMap<string, string>;
  readonly lines: readonly ClientLine[];
}

type Json = Record<string, unknown>;

/** The report field each reader's answer is in. */
const FIELD: Readonly<Record<ReaderName, string>> = {
  getpeername: "peer",
  "2049": "toaCtl",
  "4096": "toaLookup",
  "1345": "ttm",
  "2048/56": "uoaNoa",
  "2048/58": "uoaDpvs",
};

const ENOPROTOOPT = 92;

/** The readers that apply to a protocol and family. */
export function readersFor(proto: "tcp" | "udp", family: Family): ReaderName[] {
  if (proto === "udp") return ["2048/56", "2048/58"];
  return family === "nat64"
    ? ["getpeername", "2049", "4096", "1345"]
    : ["getpeername", "2049", "1345"];
}

/** One of the gateway's local addresses (the LIP pool, 192.0.2.100-131, 2001:db8:5::100-131). */
export function isGatewayAddress(a: string): boolean {
  return (
    /^192\.0\.2\.(1[0-2]\d|13[01])$/.test(a) || /^2001:db8:5::(1[0-2][0-9a-f]|13[01])$/.test(a)
  );
}

const show = (a: string, port: unknown): string =>
  typeof port === "number" ? (a.includes(":") ? `[${a}]:${port}` : `${a}:${port}`) : a;

/** What one answer says, as text, and its address when it has one. */
function answer(
  reader: ReaderName,
  v: Json | undefined,
): {
  text: string;
  address: string | null;
  port: number | null;
  errno: number | null;
  toaSet: boolean | null;
} {
  if (v === undefined)
    return { text: "no answer", address: null, port: null, errno: null, toaSet: null };
  if (v["ok"] === false) {
    const errno = typeof v["errno"] === "number" ? v["errno"] : null;
    return { text: String(v["error"] ?? "error"), address: null, port: null, errno, toaSet: null };
  }
  const address = typeof v["address"] === "string" ? v["address"] : null;
  const port = typeof v["port"] === "number" ? v["port"] : null;
  const toaSet = typeof v["toaSet"] === "boolean" ? v["toaSet"] : null;
  const text =
    address === null
      ? JSON.stringify(v)
      : `${show(address, port ?? undefined)}${reader === "2049" && toaSet === false ? " (toa_set 0)" : ""}`;
  return { text, address, port, errno: null, toaSet };
}

function what(reader: ReaderName): string {
  return reader === "getpeername" ? "getpeername" : `getsockopt ${reader}`;
}

/** The verdict on one connection's (or datagram's) answer. */
function one(input: JudgeInput, line: ClientLine): Verdict {
  const client = line.client ?? input.client;
  const c = { ...input.case, expect: line.expect ?? input.case.expect };
  const expected =
    c.expect === "client"
      ? show(client, input.noPort ? undefined : line.clientPort)
      : c.expect === "client-or-nothing"
        ? `${show(client, input.noPort ? undefined : line.clientPort)} or no client`
        : c.expect === "client-nothing-or-lost"
          ? `${show(client, input.noPort ? undefined : line.clientPort)}, no client, or the datagram dropped`
          : c.expect === "nothing"
            ? "no client (the gateway's address, toa_set 0, or an error)"
            : `anything but the forged ${show(FORGED.address, FORGED.port)}`;
  const noDecoder = input.decoder === "none" ? "no decoder: " : "";
  // Without a decoder the likely cause is that one, whatever the case.
  const cause =
    input.decoder === "none"
      ? "nothing on this kernel decodes TOA/UOA: load the module, or let toasim load its eBPF decoder"
      : c.cause;
  if (line.report === null && c.expect === "client-nothing-or-lost")
    return { result: "pass", expected, got: line.error ?? "no report", diagnosis: null };
  if (line.report === null)
    return {
      result: "fail",
      expected,
      got: line.error ?? "no report",
      diagnosis: `${noDecoder}the server never reported this ${c.proto === "tcp" ? "connection" : "datagram"} (${line.error ?? "no report"})${c.proto === "udp" ? ": the server's kernel dropped it, which it does with a UOA it cannot read" : ""}`,
    };
  const a = answer(input.reader, line.report[FIELD[input.reader]] as Json | undefined);
  const got = a.text;
  const r = (result: Result, diagnosis: string | null): Verdict => ({
    result,
    expected,
    got,
    diagnosis,
  });
  if (a.errno === ENOPROTOOPT)
    return r(
      "unsupported",
      `${noDecoder}no handler for ${what(input.reader)} is registered: the decoder does not offer this reader`,
    );
  if (c.expect === "not-forged") {
    return a.address === FORGED.address
      ? r(
          "fail",
          `${what(input.reader)} gave ${got}, the address the client wrote itself: ${cause}`,
        )
      : r("pass", null);
  }
  const lip = a.address !== null && isGatewayAddress(a.address);
  const stale = a.address === null ? undefined : input.earlier?.get(a.address);
  const staleText = `${what(input.reader)} gave ${got}, the client of an earlier connection (case ${stale}) on the same gateway addresses and ports: the decoder keeps entries after their connection ended`;
  if (c.expect === "nothing") {
    const invented = a.address !== null && !lip && a.address !== client && a.toaSet !== false;
    if (invented && stale !== undefined) return r("fail", staleText);
    return invented
      ? r("fail", `${what(input.reader)} gave ${got}, an address no packet carried: ${cause}`)
      : r("pass", null);
  }
  const matches =
    a.address === client && (input.noPort || a.port === line.clientPort) && a.toaSet !== false;
  if (matches) return r("pass", null);
  const nothingWillDo = c.expect === "client-or-nothing" || c.expect === "client-nothing-or-lost";
  if (nothingWillDo && (a.errno !== null || a.toaSet === false || lip)) return r("pass", null);
  if (input.reader === "getpeername" && input.family === "nat64" && lip)
    return r(
      "unsupported",
      "getpeername keeps the gateway's address for an IPv6 client on an IPv4 socket (DPVS's way: such servers read 4096)",
    );
  if (a.errno !== null)
    return r(
      "fail",
      `${noDecoder}${what(input.reader)} failed with ${got}: no client for this socket (likely: ${cause})`,
    );
  if (a.toaSet === false || lip)
    return r(
      "fail",
      `${noDecoder}${what(input.reader)} gave the gateway's address ${got}, not the client ${expected} (likely: ${cause})`,
    );
  if (stale !== undefined && a.address !== client) return r("fail", staleText);
  if (a.address === client)
    return r(
      "fail",
      `${what(input.reader)} gave the client's address with port ${a.port}, not ${line.clientPort}: the decoder mixed up connections or ports`,
    );
  return r(
    "fail",
    `${what(input.reader)} gave ${got}, not the client ${expected} (likely: ${cause})`,
  );
}

/**
 * The verdict over every connection or datagram of the case: the first
 * that does not pass decides (with which one it was, when there were
 * several); unsupported wins over pass.
 */
export function judge(input: JudgeInput): Verdict {
  if (input.lines.length === 0)
    return {
      result: "error",
      expected: "",
      got: "",
      diagnosis: "the client reported nothing (the harness could not run it)",
    };
  const verdicts = input.lines.map((l) => one(input, l));
  const bad = verdicts.findIndex((v) => v.result === "fail");
  if (bad >= 0) {
    const v = verdicts[bad]!;
    if (verdicts.length === 1) return v;
    const unit = input.case.proto === "tcp" ? "connection" : "datagram";
    const label = input.lines[bad]?.label;
    return {
      ...v,
      diagnosis: `${unit} ${bad + 1} of ${verdicts.length}${label ? ` (${label})` : ""}: ${v.diagnosis}`,
    };
  }
  return verdicts.find((v) => v.result === "unsupported") ?? verdicts[0]!;
}
