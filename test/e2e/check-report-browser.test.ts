import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { pathToFileURL } from "node:url";
import { inflateSync } from "node:zlib";
import { beforeAll, expect, it } from "vitest";
import { type CraftedPacketInfo, craft, writePcap } from "../../src/api/craft.js";
import type { ScenarioRun } from "../../src/api/scenarios.js";
import { reportHtml, scenarioReportHtml } from "../../src/check/report-html.js";
import type { CheckReport } from "../../src/check/result.js";
import { caseOf, K1 } from "../helpers/check-case.js";
import { commandMissing, describeTier } from "../helpers/tier.js";
import { ROOT } from "./helpers.js";

/**
 * The HTML reports in a real browser (Debian's chromium, headless, driven
 * over the DevTools protocol on a pipe, so that console messages come with
 * their level): the page loads with no console error, no exception and no
 * request beyond its own file, its styles and script pass its
 * Content-Security-Policy, and the screenshot is a real page. The pages and
 * screenshots stay in out/check-report/ for a person to look at.
 */

const OUT = join(ROOT, "out", "check-report");
const missing = commandMissing("chromium");

// No network for the browser: no background services, no QUIC, and no name
// resolves, should anything try.
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--host-resolver-rules=MAP * ~NOTFOUND",
  "--enable-logging=stderr",
  "--v=0",
  "--remote-debugging-pipe",
];

interface Rendered {
  /** Console errors, exceptions and error log entries, as text. */
  readonly problems: string[];
  /** Every URL the page asked for. */
  readonly requests: string[];
  /** What `probe` evaluated to in the page, after load. */
  readonly probe: unknown;
  readonly stderr: string;
}

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

/** A DevTools protocol client over chromium's pipe (fd 3 in, fd 4 out, messages end with NUL). */
function cdp(child: ChildProcess) {
  const out = child.stdio[3] as Writable;
  const inp = child.stdio[4] as Readable;
  let next = 1;
  let buf = "";
  const waiting = new Map<number, (m: CdpMessage) => void>();
  const listeners: ((m: CdpMessage) => void)[] = [];
  inp.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let end = buf.indexOf("\0"); end >= 0; end = buf.indexOf("\0")) {
      const m = JSON.parse(buf.slice(0, end)) as CdpMessage;
      buf = buf.slice(end + 1);
      if (m.id !== undefined) waiting.get(m.id)?.(m);
      else for (const l of listeners) l(m);
    }
  });
  return {
    send(method: string, params: object = {}, sessionId?: string) {
      const id = next++;
      out.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
      return new Promise<Record<string, unknown>>((resolve, reject) => {
        waiting.set(id, (m) =>
          m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result ?? {}),
        );
      });
    },
    on(l: (m: CdpMessage) => void) {
      listeners.push(l);
    },
  };
}

const describeArgs = (args: unknown): string =>
  (Array.isArray(args) ? args : [])
    .map((a: { value?: unknown; description?: string }) => String(a.value ?? a.description))
    .join(" ");

/** Loads `file` at 1200×2000, records what went wrong, screenshots it to `png`. */
async function render(file: string, png: string, probe = "null"): Promise<Rendered> {
  const profile = mkdtempSync(join(tmpdir(), "toasim-chromium-"));
  const child = spawn("chromium", [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`], {
    stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  const problems: string[] = [];
  const requests: string[] = [];
  try {
    const c = cdp(child);
    let loaded: () => void = () => {};
    const load = new Promise<void>((r) => {
      loaded = r;
    });
    c.on((m) => {
      const p = m.params ?? {};
      if (
        m.method === "Runtime.consoleAPICalled" &&
        (p["type"] === "error" || p["type"] === "assert")
      )
        problems.push(`console.${p["type"]}: ${describeArgs(p["args"])}`);
      if (m.method === "Runtime.exceptionThrown")
        problems.push(`exception: ${JSON.stringify(p["exceptionDetails"])}`);
      const entry = p["entry"] as { level?: string; text?: string } | undefined;
      if (m.method === "Log.entryAdded" && entry?.level === "error")
        problems.push(`log: ${entry.text}`);
      if (m.method === "Network.requestWillBeSent")
        requests.push(String((p["request"] as { url?: unknown }).url));
      if (m.method === "Page.loadEventFired") loaded();
    });
    const { targetId } = await c.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await c.send("Target.attachToTarget", { targetId, flatten: true });
    const s = sessionId as string;
    for (const domain of ["Runtime", "Log", "Page", "Network"])
      await c.send(`${domain}.enable`, {}, s);
    await c.send(
      "Emulation.setDeviceMetricsOverride",
      { width: 1200, height: 2000, deviceScaleFactor: 1, mobile: false },
      s,
    );
    await c.send("Page.navigate", { url: pathToFileURL(file).href }, s);
    await load;
    // Messages logged during load may arrive just after the load event.
    await new Promise((r) => setTimeout(r, 300));
    const value = await c.send("Runtime.evaluate", { expression: probe, returnByValue: true }, s);
    const shot = await c.send("Page.captureScreenshot", { format: "png" }, s);
    writeFileSync(png, Buffer.from(shot["data"] as string, "base64"));
    await c.send("Browser.close").catch(() => ({}));
    return {
      problems,
      requests,
      probe: (value["result"] as { value?: unknown }).value,
      stderr,
    };
  } finally {
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    if (child.exitCode === null && child.signalCode === null) {
      child.stdio[3]?.destroy();
      await exited;
    }
    clearTimeout(timer);
    rmSync(profile, { recursive: true, force: true });
  }
}

/** Distinct colours and the share of pixels that are not white, from an 8-bit RGB(A) PNG. */
function pngColours(path: string): {
  width: number;
  height: number;
  colours: Set<number>;
  inked: number;
} {
  const b = readFileSync(path);
  const idat: Buffer[] = [];
  let width = 0;
  let height = 0;
  let bpp = 0;
  for (let o = 8; o < b.length; ) {
    const len = b.readUInt32BE(o);
    const type = b.toString("latin1", o + 4, o + 8);
    const data = b.subarray(o + 8, o + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect(data[8], "bit depth").toBe(8);
      bpp = { 2: 3, 6: 4 }[data[9]!] ?? 0;
      expect(bpp, `colour type ${data[9]}`).toBeGreaterThan(0);
    } else if (type === "IDAT") idat.push(data);
    o += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  let prev = Buffer.alloc(stride);
  const colours = new Set<number>();
  let inked = 0;
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? line[i - bpp]! : 0;
      const up = prev[i]!;
      const c = i >= bpp ? prev[i - bpp]! : 0;
      const paeth = () => {
        const p = a + up - c;
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - up), Math.abs(p - c)];
        return pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
      };
      const add = [0, a, up, (a + up) >> 1, paeth()][filter] ?? 0;
      line[i] = (line[i]! + add) & 0xff;
    }
    for (let x = 0; x < width; x++) {
      const rgb = (line[x * bpp]! << 16) | (line[x * bpp + 1]! << 8) | line[x * bpp + 2]!;
      colours.add(rgb);
      if (rgb !== 0xffffff) inked++;
    }
    prev = line;
  }
  return { width, height, colours, inked: inked / (width * height) };
}

function expectRealPage(png: string): Set<number> {
  expect(statSync(png).size).toBeGreaterThan(20_000);
  const { width, height, colours, inked } = pngColours(png);
  expect([width, height]).toEqual([1200, 2000]);
  expect(colours.size).toBeGreaterThan(50);
  expect(inked).toBeGreaterThan(0.05);
  return colours;
}

function expectClean(r: Rendered): void {
  expect(r.problems, r.stderr.slice(-4000)).toEqual([]);
  for (const url of r.requests) expect(url).toMatch(/^(file|data):/);
}

// --- the pages: the report of test/unit/check-report.test.ts -----------------

const HOSTILE = `<script>alert("x")</script>&'"`;
const K2 = "6.12.12-amd64";

function pcaps(sub: string, drop: (p: CraftedPacketInfo) => boolean): void {
  const packets = craft({ profile: "dpvs" }).packets.filter((p) => !drop(p));
  mkdirSync(join(OUT, sub), { recursive: true });
  for (const side of ["client", "server"] as const)
    writePcap(
      join(OUT, sub, `${side}.pcap`),
      packets.filter((p) => p.side === side),
    );
}

const lostAck = (p: CraftedPacketInfo) => p.side === "server" && p.note === "handshake ACK";

function sampleReport(): CheckReport {
  pcaps("report/fail", lostAck);
  const lost = { id: "tcp.handshake-ack-lost", title: "the handshake ACK is lost" } as const;
  const opp = {
    id: "udp.uoa-opp",
    title: "UOA in opp mode",
    proto: "udp",
    reader: "2049",
  } as const;
  const healthy = { built: true, buildError: null, memory: null, unload: "clean" } as const;
  return {
    ok: false,
    decoder: `${HOSTILE}.ko`,
    kernels: [
      { ...healthy, kernel: K1, problems: [], memory: "slab back to start", ok: true },
      { ...healthy, kernel: K2, problems: ["WARNING: at <img src=x onerror=alert(1)>"], ok: false },
    ],
    cases: [
      caseOf({ id: "tcp.handshake-ack", result: "pass" }),
      caseOf({
        ...lost,
        result: "fail",
        got: "192.0.2.100:5000",
        diagnosis: "the gateway's address came <img src=x onerror=alert(1)>: no TOA on the data",
        pcaps: { client: "report/fail/client.pcap", server: "report/fail/server.pcap" },
        faults: ["to-server:handshake-ack:drop,count=1"],
      }),
      caseOf({
        ...lost,
        kernel: K2,
        result: "fail",
        got: "ENOENT",
        diagnosis: "no address",
        pcaps: { client: "report/gone/client.pcap", server: "report/gone/server.pcap" },
      }),
      caseOf({ id: "tcp.handshake-ack", kernel: K2, result: "pass" }),
      caseOf({
        ...opp,
        result: "unsupported",
        got: "ENOPROTOOPT",
        diagnosis: "the module offers no UOA reader",
      }),
      caseOf({
        ...opp,
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

function sampleScenarios(): ScenarioRun[] {
  pcaps("scenario/handshake-ack-lost-bug", lostAck);
  const dir = join(OUT, "scenario", "handshake-ack-lost-bug");
  return [
    {
      name: "handshake-ack-lost",
      file: join(ROOT, "scenarios", "handshake-ack-lost.json"),
      symptom: "Some connections show the gateway's address <b>in the logs</b>.",
      results: [
        {
          variant: "bug",
          decoder: "ebpf",
          outcomes: [
            { pass: true, expected: "the gateway's address", actual: "192.0.2.100" },
            { pass: false, expected: "toa.syn_recv_sock_no_toa >= 2", actual: "0" },
          ],
          pcaps: [join(dir, "client.pcap"), join(dir, "server.pcap")],
          pass: false,
          broken: [0],
        },
        { variant: "healthy", error: "the reader server did not start", pass: false },
      ],
    },
  ];
}

// What the page shows once loaded: the filter works, the styles were let in.
const PROBE = `(() => {
  const rows = () => [...document.querySelectorAll("tr[data-bad]")].filter((r) => !r.hidden).length;
  const before = rows();
  const box = document.getElementById("only-bad");
  box.click();
  const after = rows();
  box.click();
  return {
    before, after,
    failBackground: getComputedStyle(document.querySelector("td.res-fail")).backgroundColor,
    sections: document.querySelectorAll("article.case").length,
    ladders: document.querySelectorAll("article.case svg").length,
    scripts: document.scripts.length,
  };
})()`;

describeTier("browser", missing, "the HTML reports in headless chromium", () => {
  beforeAll(() => {
    rmSync(OUT, { recursive: true, force: true });
    mkdirSync(OUT, { recursive: true });
  });

  it("notices a page that logs a console error (the check itself works)", async () => {
    const page = join(OUT, "control.html");
    writeFileSync(
      page,
      '<!doctype html><title>control</title><p>control</p><script>console.error("injected");null.x</script>',
    );
    const r = await render(page, join(OUT, "control.png"));
    expect(r.problems.join("\n")).toMatch(/console\.error: injected/);
    expect(r.problems.join("\n")).toMatch(/exception/);
    rmSync(page);
    rmSync(join(OUT, "control.png"));
  }, 60_000);

  it("renders the check report: no console error, nothing fetched, styles and filter working", async () => {
    const page = join(OUT, "report.html");
    writeFileSync(page, reportHtml(sampleReport(), { pcapDir: OUT }));
    const r = await render(page, join(OUT, "report.png"), PROBE);
    expectClean(r);
    expect(r.probe).toEqual({
      before: 3,
      after: 2,
      failBackground: "rgb(254, 226, 226)",
      sections: 3,
      ladders: 1,
      scripts: 1,
    });
    const colours = expectRealPage(join(OUT, "report.png"));
    // PASS and FAIL cells in their colours: the stylesheet applied.
    expect(colours.has(0xdcfce7)).toBe(true);
    expect(colours.has(0xfee2e2)).toBe(true);
  }, 60_000);

  it("renders the scenario report the same way", async () => {
    const page = join(OUT, "scenarios.html");
    writeFileSync(page, scenarioReportHtml(sampleScenarios(), { reportDir: OUT }));
    const r = await render(
      page,
      join(OUT, "scenarios.png"),
      `document.querySelectorAll("article.variant svg").length`,
    );
    expectClean(r);
    expect(r.probe).toBe(1);
    expectRealPage(join(OUT, "scenarios.png"));
  }, 60_000);
});
