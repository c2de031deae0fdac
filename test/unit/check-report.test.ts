import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CraftedPacketInfo, craft, writePcap } from "../../src/api/craft.js";
import { ladderSvg } from "../../src/check/ladder.js";
import { reportHtml, scenarioReportHtml } from "../../src/check/report-html.js";
import type { CheckReport } from "../../src/check/result.js";
import { type PcapPacket, readPcap } from "../../src/tun/pcap-reader.js";
import { caseOf, K1 } from "../helpers/check-case.js";

const dir = mkdtempSync(join(tmpdir(), "toasim-check-report-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOSTILE = `<script>alert("x")</script>&'"\u0001`;

/** craft's exchange written as two pcaps (one per side) and read back, as a case's captures are. */
function captures(
  sub: string,
  keep: (p: CraftedPacketInfo) => boolean = () => true,
): { client: PcapPacket[]; server: PcapPacket[]; crafted: CraftedPacketInfo[] } {
  const crafted = craft({ profile: "dpvs" }).packets.filter(keep);
  mkdirSync(join(dir, sub), { recursive: true });
  const side = (s: "client" | "server") => {
    const path = join(dir, sub, `${s}.pcap`);
    writePcap(
      path,
      crafted.filter((p) => p.side === s),
    );
    return readPcap(path);
  };
  return { client: side("client"), server: side("server"), crafted };
}

const isServerHandshakeAck = (p: CraftedPacketInfo) =>
  p.side === "server" && p.note === "handshake ACK";

// The SVG goes through a real XML parser (python3's expat): a regex would
// accept what a browser or an XML tool refuses.
const SVG_SUMMARY = `
import json, sys, xml.etree.ElementTree as ET
NS = "{http://www.w3.org/2000/svg}"
root = ET.fromstring(sys.stdin.read())
def shown(e):
    return " | ".join("".join(t.itertext()) for t in e.iter(NS + "text"))
pkts = [{"cls": g.get("class").split(), "side": g.get("data-side"), "index": int(g.get("data-index")),
         "text": shown(g)}
        for g in root.iter(NS + "g") if "pkt" in (g.get("class") or "").split()]
print(json.dumps({"root": root.tag, "title": root.findtext(NS + "title"), "text": shown(root), "pkts": pkts}))
`;

interface SvgSummary {
  root: string;
  title: string | null;
  text: string;
  pkts: { cls: string[]; side: "client" | "server"; index: number; text: string }[];
}

function parseSvg(svg: string): SvgSummary {
  return JSON.parse(execFileSync("python3", ["-c", SVG_SUMMARY], { input: svg }).toString());
}

/** Where a crafted packet is in its side's capture. */
function positions(crafted: readonly CraftedPacketInfo[], pick: (p: CraftedPacketInfo) => boolean) {
  const out: string[] = [];
  for (const s of ["client", "server"] as const)
    crafted
      .filter((p) => p.side === s)
      .forEach((p, i) => {
        if (pick(p)) out.push(`${s}:${i}`);
      });
  return out.sort();
}

const marked = (x: SvgSummary, cls: string) =>
  x.pkts
    .filter((p) => p.cls.includes(cls))
    .map((p) => `${p.side}:${p.index}`)
    .sort();

describe("ladderSvg", () => {
  it("draws one arrow per packet and marks exactly the packets that carry the TOA", () => {
    const { client, server, crafted } = captures("whole");
    const x = parseSvg(ladderSvg(client, server, { faults: [] }));
    expect(x.root).toBe("{http://www.w3.org/2000/svg}svg");
    expect(x.title).toMatch(/18 packets/);
    expect(x.pkts).toHaveLength(crafted.length);
    expect(x.pkts.filter((p) => p.side === "client")).toHaveLength(client.length);
    const carriers = positions(crafted, (p) => p.carrier !== "");
    expect(carriers.length).toBeGreaterThan(0);
    expect(marked(x, "carrier")).toEqual(carriers);
    for (const p of x.pkts.filter((q) => q.cls.includes("carrier")))
      expect(p.text).toContain("TOA 198.51.100.7:40000");
    expect(x.text.match(/TOA /g)).toHaveLength(carriers.length);
    expect(marked(x, "dropped")).toEqual([]);
    expect(marked(x, "extra")).toEqual([]);
    expect(marked(x, "unparsed")).toEqual([]);
    const syn = x.pkts.find((p) => p.side === "client" && p.index === 0)!;
    expect(syn.text).toContain("SYN seq=0 len=0");
  });

  it("marks a packet the gateway never forwarded as dropped, and only that one", () => {
    const { client, server, crafted } = captures("dropped", (p) => !isServerHandshakeAck(p));
    const x = parseSvg(ladderSvg(client, server, { faults: ["to-server:handshake-ack:drop"] }));
    expect(x.pkts).toHaveLength(crafted.length);
    const ack = positions(crafted, (p) => p.side === "client" && p.note === "handshake ACK");
    expect(marked(x, "dropped")).toEqual(ack);
    expect(x.pkts.find((p) => p.cls.includes("dropped"))!.text).toContain("dropped at the gateway");
    expect(marked(x, "extra")).toEqual([]);
    expect(x.text).toContain("fault: to-server:handshake-ack:drop");
  });

  it("escapes hostile text and draws broken packets as unparsed, without throwing", () => {
    const { client, server } = captures("broken");
    const truncated = server[1]!.data.slice(0, 30);
    const badLength = server[1]!.data.slice();
    badLength[3] = 0xff;
    const broken: PcapPacket[] = [
      new Uint8Array(0),
      Uint8Array.of(0x45),
      new Uint8Array(64).fill(0xa5),
      truncated,
      badLength,
    ].map((data, i) => ({ timeUs: server[0]!.timeUs + i, data }));
    const svg = ladderSvg(client, [...server, ...broken], { faults: [HOSTILE], title: HOSTILE });
    expect(svg).not.toContain("<script");
    const x = parseSvg(svg);
    expect(x.title).toBe(`<script>alert("x")</script>&'"\ufffd`);
    expect(x.text).toContain(`fault: <script>alert("x")</script>&'"\ufffd`);
    expect(x.pkts).toHaveLength(client.length + server.length + broken.length);
    expect(marked(x, "unparsed")).toHaveLength(broken.length);
  });

  it("draws empty captures as an empty diagram", () => {
    const x = parseSvg(ladderSvg([], []));
    expect(x.pkts).toEqual([]);
    expect(x.text).toContain("no packets");
  });
});

// --- the HTML report -----------------------------------------------------------

type Node = string | { tag: string; attrs: Record<string, string>; children: Node[] };
type El = Exclude<Node, string>;

// python3's html.parser, made strict: every element closed, in order.
const HTML_TREE = `
import json, sys
from html.parser import HTMLParser
VOID = {"meta", "br", "input", "img", "link", "hr", "wbr", "source", "col"}
class P(HTMLParser):
    def __init__(s):
        super().__init__(convert_charrefs=True)
        s.root = {"tag": "#root", "attrs": {}, "children": []}
        s.stack = [s.root]
    def node(s, tag, attrs):
        n = {"tag": tag, "attrs": {k: v or "" for k, v in attrs}, "children": []}
        s.stack[-1]["children"].append(n)
        return n
    def handle_starttag(s, tag, attrs):
        n = s.node(tag, attrs)
        if tag not in VOID: s.stack.append(n)
    def handle_startendtag(s, tag, attrs): s.node(tag, attrs)
    def handle_endtag(s, tag):
        if s.stack[-1]["tag"] != tag: sys.exit("</%s> closes <%s>" % (tag, s.stack[-1]["tag"]))
        s.stack.pop()
    def handle_data(s, d): s.stack[-1]["children"].append(d)
p = P(); p.feed(sys.stdin.read()); p.close()
if len(p.stack) != 1: sys.exit("unclosed <%s>" % p.stack[-1]["tag"])
print(json.dumps(p.root))
`;

const parseHtml = (html: string): El =>
  JSON.parse(execFileSync("python3", ["-c", HTML_TREE], { input: html }).toString());

function all(n: Node, pick: (e: El) => boolean, out: El[] = []): El[] {
  if (typeof n === "string") return out;
  if (pick(n)) out.push(n);
  for (const c of n.children) all(c, pick, out);
  return out;
}

const textOf = (n: Node): string => (typeof n === "string" ? n : n.children.map(textOf).join(""));
const hasClass = (c: string) => (e: El) => (e.attrs["class"] ?? "").split(" ").includes(c);

const K2 = "6.12.12-amd64";

/** Two kernels; a pass, a fail with captures, a fail whose captures are gone, an unsupported, an error. */
function sampleReport(): CheckReport {
  captures("report/fail", (p) => !isServerHandshakeAck(p));
  return {
    ok: false,
    decoder: `${HOSTILE}.ko`,
    kernels: [
      {
        kernel: K1,
        built: true,
        buildError: null,
        problems: [],
        memory: "slab back to start",
        unload: "clean",
        ok: true,
      },
      {
        kernel: K2,
        built: true,
        buildError: null,
        problems: ["WARNING: CPU: 0 PID: 1 at <img src=x onerror=alert(1)>"],
        memory: null,
        unload: "clean",
        ok: false,
      },
    ],
    cases: [
      caseOf({ id: "tcp.handshake-ack", result: "pass" }),
      caseOf({
        id: "tcp.handshake-ack-lost",
        title: "the handshake ACK is lost",
        result: "fail",
        got: "192.0.2.100:5000",
        diagnosis: `the gateway's address came <img src=x onerror=alert(1)>: no TOA on the data`,
        pcaps: { client: "report/fail/client.pcap", server: "report/fail/server.pcap" },
        faults: ["to-server:handshake-ack:drop,count=1"],
      }),
      caseOf({
        id: "tcp.handshake-ack-lost",
        title: "the handshake ACK is lost",
        kernel: K2,
        result: "fail",
        got: "ENOENT",
        diagnosis: "no address",
        pcaps: { client: "report/gone/client.pcap", server: "report/gone/server.pcap" },
      }),
      caseOf({
        id: "tcp.handshake-ack",
        kernel: K2,
        reader: "getpeername",
        result: "pass",
      }),
      caseOf({
        id: "udp.uoa-opp",
        title: "UOA in opp mode",
        proto: "udp",
        reader: "2049",
        result: "unsupported",
        got: "ENOPROTOOPT",
        diagnosis: "the module offers no UOA reader",
      }),
      caseOf({
        id: "udp.uoa-opp",
        title: "UOA in opp mode",
        proto: "udp",
        reader: "2049",
        kernel: K2,
        result: "error",
        got: "",
        diagnosis: "the reader server did not start",
      }),
    ],
    toasimVersion: "0.1.0",
    startedAt: "2026-01-01T00:00:00.000Z",
    durationMs: 83_400,
  };
}

describe("reportHtml", () => {
  let doc: El;
  beforeAll(() => {
    doc = parseHtml(reportHtml(sampleReport(), { pcapDir: dir }));
  });

  it("is one well-formed page with nothing to fetch and no hostile markup", () => {
    const scripts = all(doc, (e) => e.tag === "script");
    expect(scripts).toHaveLength(1);
    expect(all(doc, (e) => e.tag === "img")).toEqual([]);
    expect(all(doc, (e) => e.tag === "link")).toEqual([]);
    const srcs = all(doc, (e) => "src" in e.attrs);
    expect(srcs).toEqual([]);
    expect(textOf(all(doc, (e) => e.tag === "title")[0]!)).toContain(`<script>alert("x")</script>`);
    expect(textOf(doc)).toContain("<img src=x onerror=alert(1)>");
  });

  it("summarises the counts and the verdict", () => {
    const counts = Object.fromEntries(
      all(doc, (e) => e.tag === "li" && "data-result" in e.attrs).map((e) => [
        e.attrs["data-result"],
        Number(textOf(all(e, hasClass("n"))[0]!)),
      ]),
    );
    expect(counts).toEqual({ pass: 2, fail: 2, unsupported: 1, error: 1 });
    expect(textOf(all(doc, (e) => e.attrs["id"] === "verdict")[0]!)).toMatch(/^✗ FAIL/);
    expect(textOf(doc)).toContain("1 min 23 s");
  });

  it("has the kernel table and the matrix: a row per case, a column per kernel, words in every cell", () => {
    const kernels = all(doc, hasClass("kernels"))[0]!;
    expect(textOf(kernels)).toContain("✗ PROBLEM");
    const matrix = all(doc, hasClass("matrix"))[0]!;
    const head = all(matrix, (e) => e.tag === "thead")[0]!;
    expect(all(head, (e) => e.tag === "th").map(textOf)).toEqual([
      "case",
      "profile",
      "family",
      "reader",
      `kernel ${K1}`,
      `kernel ${K2}`,
    ]);
    const rows = all(matrix, (e) => e.tag === "tr" && "data-bad" in e.attrs);
    const cells = rows.map((r) => ({
      row: textOf(all(r, (e) => e.tag === "th")[0]!),
      cells: all(r, hasClass("cell")).map((c) => textOf(c)),
      classes: all(r, hasClass("cell")).map((c) => c.attrs["class"]),
    }));
    expect(cells).toHaveLength(3);
    expect(cells[0]!.row).toContain("tcp.handshake-ack");
    expect(cells[0]!.row).toContain("docs/dialects.md#which-packets-the-precise-rule");
    expect(cells.map((c) => c.cells.map((t) => t.split(/got/)[0]))).toEqual([
      ["✓ PASS", "✓ PASS"],
      ["✗ FAIL", "✗ FAIL"],
      ["– UNSUPPORTED", "! ERROR"],
    ]);
    expect(cells[2]!.classes).toEqual(["cell res-unsupported", "cell res-error"]);
    const failCell = all(rows[1]!, hasClass("cell"))[0]!;
    expect(failCell.attrs["title"]).toContain("<img src=x onerror=alert(1)>");
    expect(textOf(failCell)).toContain("got 192.0.2.100:5000");
  });

  it("has one section per failing case, with the ladder or a note when the captures are gone", () => {
    const sections = all(doc, (e) => e.tag === "article" && hasClass("case")(e));
    expect(sections.map((s) => s.attrs["data-result"]).sort()).toEqual(["error", "fail", "fail"]);
    const withPcaps = sections.find((s) => textOf(s).includes("192.0.2.100:5000"))!;
    expect(textOf(withPcaps)).toContain("to-server:handshake-ack:drop,count=1");
    const svg = all(withPcaps, (e) => e.tag === "svg");
    expect(svg).toHaveLength(1);
    expect(all(svg[0]!, hasClass("dropped"))).toHaveLength(1);
    const links = all(withPcaps, (e) => e.tag === "a").map((a) => a.attrs["href"]);
    expect(links).toEqual(["report/fail/client.pcap", "report/fail/server.pcap"]);
    const gone = sections.find((s) => textOf(s).includes("ENOENT"))!;
    expect(all(gone, (e) => e.tag === "svg")).toEqual([]);
    expect(textOf(gone)).toMatch(/No ladder diagram: client-side capture .*: missing/);
    const cellLinks = all(
      doc,
      (e) => e.tag === "a" && (e.attrs["href"] ?? "").startsWith("#case-"),
    );
    for (const a of cellLinks)
      expect(sections.map((s) => `#${s.attrs["id"]}`)).toContain(a.attrs["href"]);
  });
});

describe("reportHtml links", () => {
  it("links the doc under docBase, and never lets a capture path become a scheme", () => {
    const report = sampleReport();
    const hostile = caseOf({
      id: "tcp.x",
      result: "fail",
      pcaps: { client: "javascript:alert(1)", server: "a b/server.pcap" },
    });
    const doc = parseHtml(
      reportHtml(
        { ...report, cases: [hostile] },
        { pcapDir: dir, docBase: "https://toasim.example/tree/main/" },
      ),
    );
    const hrefs = all(doc, (e) => e.tag === "a").map((a) => a.attrs["href"]);
    expect(hrefs).toContain(
      "https://toasim.example/tree/main/docs/dialects.md#which-packets-the-precise-rule",
    );
    expect(hrefs).toContain("javascript%3Aalert(1)");
    expect(hrefs).toContain("a%20b/server.pcap");
  });
});

describe("scenarioReportHtml", () => {
  it("shows each variant with its expectations and the ladder of its captures", () => {
    captures("scenario/handshake-ack-lost-bug", (p) => !isServerHandshakeAck(p));
    const pcapDir = join(dir, "scenario/handshake-ack-lost-bug");
    const html = scenarioReportHtml(
      [
        {
          name: "handshake-ack-lost",
          file: join(import.meta.dirname, "../../scenarios/handshake-ack-lost.json"),
          symptom: "the gateway's address <b>in the logs</b>",
          results: [
            {
              variant: "bug",
              decoder: "ebpf",
              outcomes: [
                { pass: true, expected: "the gateway's address", actual: "192.0.2.100" },
                { pass: false, expected: "toa.syn_recv_sock_no_toa >= 2", actual: "0" },
              ],
              pcaps: [join(pcapDir, "client.pcap"), join(pcapDir, "server.pcap")],
              pass: false,
              broken: [0],
            },
            { variant: "healthy", error: "the reader server did not start", pass: false },
            { variant: "healthy", skipped: "a module decodes" },
          ],
        },
      ],
      { reportDir: dir },
    );
    const doc = parseHtml(html);
    const variants = all(doc, (e) => e.tag === "article");
    expect(variants.map((v) => v.attrs["data-result"])).toEqual(["fail", "error", "skipped"]);
    const cells = all(variants[0]!, (e) => e.tag === "td").map(textOf);
    expect(cells).toContain("✓ PASS");
    expect(cells).toContain("✗ FAIL");
    const svg = all(variants[0]!, (e) => e.tag === "svg");
    expect(svg).toHaveLength(1);
    expect(all(svg[0]!, hasClass("dropped"))).toHaveLength(1);
    // The scenario's own fault rule, read from its file, heads the ladder.
    expect(textOf(svg[0]!)).toContain('"class":"handshake-ack"');
    const hrefs = all(variants[0]!, (e) => e.tag === "a").map((a) => a.attrs["href"]);
    expect(hrefs).toEqual([
      "scenario/handshake-ack-lost-bug/client.pcap",
      "scenario/handshake-ack-lost-bug/server.pcap",
    ]);
    expect(textOf(doc)).toContain("the gateway's address <b>in the logs</b>");
    expect(all(doc, (e) => e.tag === "b")).toEqual([]);
  });
});
