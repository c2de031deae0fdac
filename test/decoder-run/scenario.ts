import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Bg, run, sleep } from "./proc.js";
import { moduleStats, type Stats } from "./proc-stats.js";

// One decoder through the whole chain, as root: the real gateway (toasim
// up), the three reader servers (Node, C, Python, started with toasim exec
// rs), real clients (socat), a storm of crafted broken carriers, and the
// decoder's counters. `--decoder module` runs inside the test VM (toasim
// vm) with the kernel under test and also loads, unloads and clashes the
// module; `--decoder ebpf` runs on the host with the eBPF decoder. It
// records into a JSON file; test/helpers/decoder-checks.ts judges, for both.

const ROOT = resolve(import.meta.dirname, "../../..");
const CLI = join(ROOT, "bin/toasim.js");

const { values: opt } = parseArgs({
  options: {
    decoder: { type: "string", default: "module" },
    module: { type: "string" },
    rival: { type: "string" },
    out: { type: "string" },
    storm: { type: "string", default: "2000" },
    replay: { type: "string" },
  },
});
const MODE = opt.decoder === "ebpf" ? "ebpf" : "module";
if (
  !opt.out ||
  (opt.decoder !== "module" && opt.decoder !== "ebpf") ||
  (MODE === "module" && (!opt.module || !opt.rival))
) {
  console.error(
    "usage: scenario --out results.json [--decoder module --module toasim.ko --rival rival.ko | --decoder ebpf]",
  );
  process.exit(2);
}
const MODULE = opt.module ?? "";
const RIVAL = opt.rival ?? "";
const OUT = opt.out;
/** Short, so the expiry of UDP flows is seen within the run. */
const UOA_TIMEOUT = 10;
/** Short too: a SYN's TOA whose handshake never completes must expire in the run. */
const SYN_TIMEOUT = 10;
const LOAD_PARAMS = [`uoa_timeout=${UOA_TIMEOUT}`, `syn_timeout=${SYN_TIMEOUT}`];

type Json = Record<string, unknown>;
const results: Json = {
  kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
  decoder: MODE,
};
const save = (): void => writeFileSync(OUT, `${JSON.stringify(results, null, 1)}\n`);
const log = (s: string): void => console.error(`[scenario] ${s}`);

// ---------------------------------------------------------------------------

/** The decoder's counters: the module's /proc/net files, or the instance's eBPF maps. */
async function stats(inst?: Inst): Promise<Stats> {
  if (MODE === "module") return moduleStats();
  if (inst === undefined) throw new Error("eBPF counters belong to an instance");
  const r = await run(
    [process.execPath, CLI, "decoder", "stats", "--id", inst.id, "--json"],
    30_000,
  );
  if (r.code !== 0) throw new Error(`toasim decoder stats: ${r.stderr.trim()}`);
  const j = JSON.parse(r.stdout) as Stats;
  return { toa: j.toa, uoa: j.uoa };
}

async function insmod(
  path: string,
  params: string[] = [],
): Promise<{ code: number | null; err: string }> {
  const r = await run(["insmod", path, ...params], 60_000);
  return { code: r.code, err: r.stderr.trim() };
}

async function rmmod(name: string): Promise<{ code: number | null; err: string }> {
  const r = await run(["rmmod", name], 60_000);
  return { code: r.code, err: r.stderr.trim() };
}

// ---------------------------------------------------------------------------
// Gateway instances and servers

interface Inst {
  id: string;
  clientNs: string;
  serverNs: string;
  up: Bg;
}

/** Timeouts short enough for the run to see entries expire. */
const DECODER_ARGS =
  MODE === "module"
    ? ["--decoder", "none"]
    : ["--decoder", "ebpf", "--decoder-uoa-timeout", String(UOA_TIMEOUT)];

async function up(args: string[]): Promise<Inst> {
  const p = new Bg([process.execPath, CLI, "up", "--json", ...DECODER_ARGS, ...args]);
  await p.until(() => p.out.includes("\n"), 90_000, "toasim up ready line");
  const ready = JSON.parse(p.out.split("\n")[0]!) as {
    id: string;
    clientNs: string;
    serverNs: string;
  };
  return { id: ready.id, clientNs: ready.clientNs, serverNs: ready.serverNs, up: p };
}

async function down(inst: Inst): Promise<void> {
  await inst.up.stop("SIGTERM");
  await run([process.execPath, CLI, "down", "--id", inst.id], 60_000);
}

export const READERS = ["node", "c", "python"] as const;
type Reader = (typeof READERS)[number];

function readerArgv(r: Reader): string[] {
  if (r === "node") return [process.execPath, join(ROOT, "examples/node/reader-server.mjs")];
  if (r === "c") return [join(ROOT, "examples/c/reader-server")];
  return ["python3", join(ROOT, "examples/python/reader_server.py")];
}

/** Reader i listens on 8080+i (TCP) and 5353+i (UDP), v4 and v6. */
async function startReader(inst: Inst, r: Reader, i: number): Promise<Bg> {
  const ready = `/tmp/reader-${inst.id}-${r}`;
  const argv = [
    ...readerArgv(r),
    "--tcp",
    `192.0.2.10:${8080 + i}`,
    "--tcp",
    `[2001:db8:5::10]:${8080 + i}`,
    "--udp",
    `192.0.2.10:${5353 + i}`,
    "--udp",
    `[2001:db8:5::10]:${5353 + i}`,
    "--ready",
    ready,
  ];
  // exec rs: in the instance's decoder cgroup when there is one.
  const p = new Bg([process.execPath, CLI, "exec", "rs", "--id", inst.id, "--", ...argv]);
  await p.until(() => existsSync(ready), 60_000, `${r} reader ready`);
  return p;
}

/** Services for reader i: VIP ports 80+i / 53+i, v4, v6 and NAT64 (ipo: v4 only). */
function serviceArgs(n: number, v4only = false): string[] {
  const a: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = 8080 + i;
    const u = 5353 + i;
    a.push("--service", `tcp:203.0.113.10:${80 + i}=192.0.2.10:${t}`);
    a.push("--service", `udp:203.0.113.10:${53 + i}=192.0.2.10:${u}`);
    if (v4only) continue;
    a.push("--service", `tcp:[2001:db8:f::10]:${80 + i}=[2001:db8:5::10]:${t}`);
    a.push("--service", `tcp:[2001:db8:f::64]:${80 + i}=192.0.2.10:${t}`);
    a.push("--service", `udp:[2001:db8:f::10]:${53 + i}=[2001:db8:5::10]:${u}`);
    a.push("--service", `udp:[2001:db8:f::64]:${53 + i}=192.0.2.10:${u}`);
  }
  return a;
}

type Family = "v4" | "v6" | "nat64";

const CLIENT = { v4: "198.51.100.23", v6: "2001:db8:c::23", nat64: "2001:db8:c::23" } as const;
const VIP = { v4: "203.0.113.10", v6: "2001:db8:f::10", nat64: "2001:db8:f::64" } as const;

let nextPort = 40_001;

interface Case {
  phase: string;
  profile: string;
  reader: Reader;
  proto: "tcp" | "udp";
  family: Family;
  client: { address: string; port: number };
  report: Json | null;
  error?: string;
}

/** One TCP connection or UDP datagram from a fixed client address and port. */
async function attempt(
  inst: Inst,
  phase: string,
  profile: string,
  reader: Reader,
  i: number,
  proto: "tcp" | "udp",
  family: Family,
  port = nextPort++,
): Promise<Case> {
  const v6 = family !== "v4";
  const addr = CLIENT[family];
  const vip = v6 ? `[${VIP[family]}]` : VIP[family];
  const bind = v6 ? `[${addr}]:${port}` : `${addr}:${port}`;
  const vport = proto === "tcp" ? 80 + i : 53 + i;
  const kind = `${proto.toUpperCase()}${v6 ? "6" : "4"}`;
  const r = await run(
    [
      "ip",
      "netns",
      "exec",
      inst.clientNs,
      "socat",
      "-t",
      "5",
      "-T",
      "10",
      "-",
      `${kind}:${vip}:${vport},bind=${bind}`,
    ],
    30_000,
    `hello ${reader} ${proto} ${family}\n`,
  );
  const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
  const c: Case = {
    phase,
    profile,
    reader,
    proto,
    family,
    client: { address: addr, port },
    report: null,
  };
  if (line) {
    try {
      c.report = JSON.parse(line) as Json;
    } catch {
      c.error = `bad report: ${line}`;
    }
  } else {
    c.error = `no report (socat exit ${r.code}): ${r.stderr.trim()}`;
  }
  return c;
}

const cases: Case[] = [];
results["cases"] = cases;

// ---------------------------------------------------------------------------

async function dmesg(): Promise<string> {
  return (await run(["dmesg"], 20_000)).stdout;
}

/** The kernel log lines added since `before` (a dmesg snapshot). */
function newLines(before: string, after: string): string[] {
  const old = new Set(before.split("\n"));
  return after.split("\n").filter((l) => l !== "" && !old.has(l));
}

async function rivalPhase(): Promise<void> {
  log("rival module owning getsockopt 2048");
  const rival = await insmod(RIVAL);
  const before = await dmesg();
  const ours = await insmod(MODULE);
  const lsmod = (await run(["lsmod"])).stdout;
  results["rival"] = {
    rivalLoad: rival,
    toasimLoad: ours,
    toasimListed: /^toasim\s/m.test(lsmod),
    procLeft: existsSync("/proc/net/toa_stats") || existsSync("/proc/net/uoa_stats"),
    dmesg: newLines(before, await dmesg()),
    rivalUnload: await rmmod("toasim_rival"),
  };
  save();
}

/** Bad parameter values fail the load, naming the parameter. */
async function badParamsPhase(): Promise<void> {
  log("bad module parameters");
  const out: Json[] = [];
  for (const p of ["trusted=300.1.2.3/8", "tcp_kinds=1,999", "v6_on_v4=maybe", "max_flows=0"]) {
    const before = await dmesg();
    const r = await insmod(MODULE, [p]);
    out.push({ param: p, ...r, dmesg: newLines(before, await dmesg()) });
  }
  results["badParams"] = { cases: out, procLeft: existsSync("/proc/net/toa_stats") };
  save();
}

async function readersPhase(uoa: "opp" | "ipo"): Promise<void> {
  const phase = `readers-${uoa}`;
  log(phase);
  const inst = await up([
    "--profile",
    "dpvs",
    "--uoa",
    uoa,
    ...serviceArgs(READERS.length, uoa === "ipo"),
  ]);
  const servers: Bg[] = [];
  try {
    for (const [i, r] of READERS.entries()) servers.push(await startReader(inst, r, i));
    const before = await stats(inst);
    let tcp = 0;
    for (const [i, r] of READERS.entries()) {
      if (uoa === "opp") {
        for (const f of ["v4", "v6", "nat64"] as const) {
          cases.push(await attempt(inst, phase, "dpvs", r, i, "tcp", f));
          tcp++;
        }
      }
      for (const f of uoa === "opp" ? (["v4", "v6", "nat64"] as const) : (["v4"] as const)) {
        cases.push(await attempt(inst, phase, "dpvs", r, i, "udp", f));
      }
    }
    await sleep(3000); // TIME_WAIT replaces the full sockets: their entries go
    results[phase] = { tcpConnections: tcp, before, after: await stats(inst) };
    save();

    if (uoa === "ipo") {
      // Expiry: three datagrams of one flow carry the UOA (max-trail 3) and
      // keep its entry; then it expires, and a fourth datagram, plain,
      // finds nothing.
      log("uoa expiry");
      const port = nextPort++;
      const first = await attempt(inst, "expiry", "dpvs", "node", 0, "udp", "v4", port);
      await attempt(inst, "expiry", "dpvs", "node", 0, "udp", "v4", port);
      const third = await attempt(inst, "expiry", "dpvs", "node", 0, "udp", "v4", port);
      const mid = await stats(inst);
      await sleep((UOA_TIMEOUT + 3) * 1000);
      const after = await stats(inst);
      const fourth = await attempt(inst, "expiry", "dpvs", "node", 0, "udp", "v4", port);
      results["expiry"] = { first, third, fourth, mid, after };
      save();
    }
  } finally {
    for (const s of servers) await s.stop();
    await down(inst);
  }
}

/** v6_on_v4=inet6: getpeername() of a NAT64 client on an IPv4 socket is the IPv6 client. */
async function inet6Phase(): Promise<void> {
  log("v6_on_v4=inet6");
  const unload = await rmmod("toasim");
  const load = await insmod(MODULE, [...LOAD_PARAMS, "v6_on_v4=inet6"]);
  const inst = await up(["--profile", "dpvs", ...serviceArgs(READERS.length)]);
  const servers: Bg[] = [];
  try {
    for (const [i, r] of READERS.entries()) servers.push(await startReader(inst, r, i));
    for (const [i, r] of READERS.entries()) {
      cases.push(await attempt(inst, "inet6", "dpvs", r, i, "tcp", "nat64"));
      cases.push(await attempt(inst, "inet6", "dpvs", r, i, "tcp", "v4"));
    }
  } finally {
    for (const s of servers) await s.stop();
    await down(inst);
  }
  const back = [await rmmod("toasim"), await insmod(MODULE, LOAD_PARAMS)];
  results["inet6"] = { unload, load, back };
  save();
}

/** Every TCP dialect, read by the Node reader, v4 and v6. */
const PROFILES: readonly { name: string; args: string[]; v6: boolean }[] = [
  { name: "lvs", args: [], v6: true },
  { name: "tencent", args: [], v6: true },
  { name: "ksyun-ttm", args: [], v6: true },
  { name: "noa", args: [], v6: true },
  { name: "bytedance", args: [], v6: true },
  { name: "bytedance-vaddr", args: ["--toa-layout", "port-addr-vaddr"], v6: false },
  { name: "aliyun-cdn", args: [], v6: true },
  { name: "ucloud", args: [], v6: false },
];

async function dialectsPhase(): Promise<void> {
  for (const p of PROFILES) {
    log(`dialect ${p.name}`);
    const profile = p.name === "bytedance-vaddr" ? "bytedance" : p.name;
    const inst = await up(["--profile", profile, ...p.args, ...serviceArgs(1)]);
    let server: Bg | undefined;
    try {
      server = await startReader(inst, "node", 0);
      cases.push(await attempt(inst, "dialects", p.name, "node", 0, "tcp", "v4"));
      if (p.v6) cases.push(await attempt(inst, "dialects", p.name, "node", 0, "tcp", "v6"));
    } finally {
      await server?.stop();
      await down(inst);
    }
    save();
  }
}

/** The user's view: `toasim demo` with the module loaded shows every client. */
async function demoPhase(): Promise<void> {
  log("toasim demo --profile dpvs");
  const r = await run([process.execPath, CLI, "demo", "--profile", "dpvs", "--json"], 240_000);
  let out: unknown = null;
  try {
    out = JSON.parse(r.stdout);
  } catch {
    out = null;
  }
  results["demo"] = { code: r.code, stderr: r.stderr.slice(-2000), out };
  save();
}

async function stormPhase(): Promise<void> {
  log(`storm of ${opt.storm} malformed carriers`);
  const storm = join(ROOT, "build/test/decoder-run/storm.js");
  const r = await run(
    [
      process.execPath,
      storm,
      "--tcp",
      opt.storm!,
      "--udp",
      "400",
      "--seed",
      "4",
      "--decoder",
      MODE,
      "--settle",
      String(UOA_TIMEOUT + 3),
    ],
    1_200_000,
  );
  let summary: (Json & { stats?: Json }) | null = null;
  try {
    summary = JSON.parse(r.stdout) as Json;
  } catch {
    summary = null;
  }
  const s = (summary?.stats ?? {}) as Json;
  results["storm"] = {
    code: r.code,
    stderr: r.stderr.slice(-4000),
    summary,
    before: s["before"] ?? null,
    after: s["after"] ?? null,
    settled: s["settled"] ?? null,
  };
  save();
}

/**
 * Recorded gateway output (record.ts's pcaps) played to a reader behind
 * this decoder: the answers, for the parity test against the other decoder.
 */
async function parityPhase(dir: string): Promise<void> {
  log(`replay of ${dir}`);
  const out = `/tmp/replay-${process.pid}.json`;
  const r = await run(
    [
      process.execPath,
      join(ROOT, "build/test/decoder-run/replay.js"),
      "--dir",
      dir,
      "--decoder",
      MODE,
      "--out",
      out,
    ],
    600_000,
  );
  results["parity"] = {
    code: r.code,
    stderr: r.stderr.slice(-2000),
    answers: existsSync(out) ? (JSON.parse(readFileSync(out, "utf8")) as Json)["answers"] : null,
  };
  save();
}

/** Lines a background client has printed so far. */
const lines = (p: Bg): number => p.out.split("\n").filter((l) => l.trim() !== "").length;

/**
 * rmmod while connections are open and busy: ten echo connections keep
 * exchanging lines, and a loop of new connections keeps asking the Node
 * reader (getpeername and the getsockopt ABIs) before, during and after.
 */
async function unloadPhase(): Promise<void> {
  log("unload with connections open");
  const inst = await up(["--profile", "dpvs", ...serviceArgs(2)]);
  const echo = new Bg([
    "ip",
    "netns",
    "exec",
    inst.serverNs,
    "socat",
    // backlog: socat's default of 5 is less than the ten clients that
    // connect at once, and an emulated guest accepts slowly.
    "TCP6-LISTEN:8080,ipv6only=0,fork,reuseaddr,backlog=64",
    "EXEC:cat",
  ]);
  const clients: Bg[] = [];
  const clientShell = (script: string): Bg =>
    new Bg(["ip", "netns", "exec", inst.clientNs, "sh", "-c", script]);
  const client = (i: number): Bg =>
    clientShell(
      `while :; do echo ping; sleep 0.3; done | socat -t 5 - ${i % 2 === 0 ? "TCP4:203.0.113.10:80" : "TCP6:[2001:db8:f::10]:80"}`,
    );
  // What a client that never got an echo said.
  const trouble = (c: Bg, i: number): Json | null =>
    lines(c) === 0 && c.exited ? { client: i, err: c.err.slice(-500) } : null;
  const replaced: Json[] = [];
  let churn: Bg | null = null;
  let reader: Bg | null = null;
  try {
    reader = await startReader(inst, "node", 1);
    await sleep(1000);
    for (let i = 0; i < 10; i++) clients.push(client(i));
    // Counted until all ten are up (or 60 s): under software emulation,
    // beside other VMs, a client's socat can take seconds to start. A
    // client that ended without an echo is started once more (and what it
    // said is kept): this phase is about unloading under open connections,
    // which connection setup in a stalled guest is not.
    let open = 0;
    for (let waited = 0; waited < 60_000 && open < 10; waited += 1000) {
      await sleep(1000);
      for (let i = 0; i < clients.length; i++) {
        const t = trouble(clients[i]!, i);
        if (t === null || replaced.length >= 10) continue;
        replaced.push(t);
        clients[i] = client(i);
      }
      const ss = await run([
        "ip",
        "netns",
        "exec",
        inst.serverNs,
        "ss",
        "-Htn",
        "state",
        "established",
      ]);
      open = ss.stdout.split("\n").filter((l) => l.includes(":8080")).length;
    }
    // -T 20: under software emulation insmod and rmmod stall the guest for
    // seconds; a connection caught in that stall is late, not lost.
    churn = clientShell(
      "for i in $(seq 1 30); do echo churn | socat -t 20 -T 20 - TCP4:203.0.113.10:81 | head -n 1; done",
    );
    await churn.until(() => lines(churn!) >= 3, 60_000, "first churn reports");
    const before = await stats();
    const echoedBefore = clients.map(lines);
    const churnBefore = lines(churn);
    const unload = await rmmod("toasim");
    const procGone = !existsSync("/proc/net/toa_stats");
    await sleep(4000);
    const echoedAfter = clients.map(lines);
    const churnAfter = lines(churn);
    const reload = await insmod(MODULE, LOAD_PARAMS);
    await churn.until(() => churn!.exited, 240_000, "churn loop end");
    const reports = churn.out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Json);
    results["unload"] = {
      open,
      // For whoever reads a failure: clients started again, and what the
      // clients without an echo and the echo server said.
      replaced,
      clientTrouble: clients.map(trouble).filter((t) => t !== null),
      echoErr: echo.err.slice(-1000),
      before,
      unload,
      procGone,
      reload,
      procAfterReload: existsSync("/proc/net/toa_stats"),
      echoedBefore,
      echoedAfter,
      churnBefore,
      churnAfter,
      churnReports: reports.length,
      churnToaSet: reports.filter((r) => (r["toaCtl"] as Json | undefined)?.["toaSet"] === true)
        .length,
      churnNoDecoder: reports.filter(
        (r) => (r["toaCtl"] as Json | undefined)?.["error"] === "ENOPROTOOPT",
      ).length,
      churnLast: reports.at(-1) ?? null,
    };
    save();
  } finally {
    await churn?.stop("SIGKILL");
    for (const c of clients) await c.stop("SIGKILL");
    await reader?.stop();
    await echo.stop();
    await down(inst);
  }
}

async function main(): Promise<void> {
  const bootLog = await dmesg();
  if (MODE === "module") {
    await rivalPhase();
    await badParamsPhase();
    const load = await insmod(MODULE, LOAD_PARAMS);
    results["load"] = load;
    save();
    if (load.code !== 0) throw new Error(`insmod ${MODULE}: ${load.err}`);
  }
  await readersPhase("opp");
  await readersPhase("ipo");
  // An eBPF getpeername program cannot turn an IPv4 address into an IPv6 one.
  if (MODE === "module") await inet6Phase();
  await dialectsPhase();
  await demoPhase();
  if (opt.replay !== undefined) await parityPhase(opt.replay);
  await stormPhase();
  if (MODE === "module") {
    await unloadPhase();
    // Every socket is closed by now and every UDP flow older than its timeout.
    await sleep((UOA_TIMEOUT + 3) * 1000);
    results["final"] = await stats();
    results["finalUnload"] = await rmmod("toasim");
    results["tainted"] = readFileSync("/proc/sys/kernel/tainted", "utf8").trim();
  }
  results["dmesg"] = newLines(bootLog, await dmesg());
  results["done"] = true;
  save();
}

// Whatever hangs, the run ends with what it recorded and a reason.
setTimeout(() => {
  results["error"] = "watchdog: the scenario did not finish within 20 minutes";
  save();
  process.exit(1);
}, 1_200_000).unref();

main().then(
  // Children left behind must not keep the guest (and the VM) running.
  () => process.exit(0),
  (e: unknown) => {
    results["error"] = e instanceof Error ? e.stack : String(e);
    save();
    console.error(e);
    process.exit(1);
  },
);
