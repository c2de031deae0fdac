import type { CaseResult } from "./result.js";

/**
 * What the whole matrix says about a decoder, which no single case can:
 * that it reads the TOA from the SYN alone (the SYN-only case passes where
 * the others fail), that it has no IPv6, that it does not rewrite
 * getpeername, that it has no UOA. Each failure these explain gets them as
 * its cause, with the evidence, instead of the case's generic guess.
 */

interface Finding {
  readonly applies: (c: CaseResult) => boolean;
  readonly text: string;
}

const TCP_CLIENT_CASES = ["tcp.basic", "tcp.ack-only", "tcp.handshake-ack-lost"];
const ok = (c: CaseResult | undefined) => c?.result === "pass";
const bad = (c: CaseResult | undefined) => c !== undefined && c.result === "fail";

function findingsOf(rows: readonly CaseResult[]): Finding[] {
  const at = (id: string, family: string, reader: string) =>
    rows.find((c) => c.id === id && c.family === family && c.reader === reader);
  const out: Finding[] = [];
  const getsockopt = ["2049", "1345", "4096"];
  const synOnly = rows.some(
    (c) =>
      c.id === "tcp.syn-only" &&
      ok(c) &&
      TCP_CLIENT_CASES.some((id) => bad(at(id, c.family, c.reader))),
  );
  if (synOnly)
    out.push({
      applies: (c) => c.proto === "tcp" && !c.id.startsWith("tcp.syn-only"),
      text: "it reads the TOA only from the SYN (tcp.syn-only passes, cases with the TOA after the SYN fail)",
    });
  const v4Pass = rows.some((c) => c.proto === "tcp" && c.family === "v4" && ok(c));
  const v6Rows = rows.filter(
    (c) =>
      c.proto === "tcp" &&
      c.family !== "v4" &&
      c.id !== "tcp.options-full-no-prune" &&
      c.id !== "tcp.two-toas",
  );
  if (v4Pass && v6Rows.length > 0 && v6Rows.every((c) => c.result !== "pass"))
    out.push({
      applies: (c) => c.proto === "tcp" && c.family !== "v4",
      text: "it has no IPv6 (no IPv6 client passes any case, IPv4 ones do)",
    });
  const peer = rows.filter(
    (c) => c.reader === "getpeername" && c.family === "v4" && c.id === "tcp.basic",
  );
  const others = rows.filter((c) => getsockopt.includes(c.reader) && ok(c));
  if (peer.length > 0 && peer.every(bad) && others.length > 0)
    out.push({
      applies: (c) => c.reader === "getpeername",
      text: "it does not rewrite getpeername (its getsockopt readers pass where getpeername shows the gateway)",
    });
  const udp = rows.filter((c) => c.proto === "udp");
  if (udp.length > 0 && udp.every((c) => c.result !== "pass"))
    out.push({
      applies: (c) => c.proto === "udp",
      text: "it has no UOA: no datagram's client is found (the server's kernel drops an opp datagram nothing decodes)",
    });
  return out;
}

/** The failures the matrix explains, with that cause in place of the case's guess. */
export function explain(rows: readonly CaseResult[]): CaseResult[] {
  const groups = new Map<string, CaseResult[]>();
  for (const c of rows) {
    const k = `${c.kernel} ${c.profile}`;
    groups.set(k, [...(groups.get(k) ?? []), c]);
  }
  const found = new Map<string, Finding[]>();
  for (const [k, g] of groups) found.set(k, findingsOf(g));
  return rows.map((c) => {
    if (c.result !== "fail" || c.diagnosis === null) return c;
    const why = (found.get(`${c.kernel} ${c.profile}`) ?? []).filter((f) => f.applies(c));
    if (why.length === 0) return c;
    const base = c.diagnosis.replace(/ \(likely: .*\)$/, "");
    return { ...c, diagnosis: `${base} (the decoder: ${why.map((f) => f.text).join("; ")})` };
  });
}
