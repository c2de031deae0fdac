// `npm run bench`: connections per second, UDP packets per second and bulk
// TCP (iperf3, v4 and v6, 1 and 4 streams) through the toasim gateway, with
// TUN offloads on (the default) and off, side by side in the same run with
// (a) the kernel forwarding the same traffic (nftables DNAT + SNAT between
// veth pairs, no TOA) and (b) the null forwarder (the same worker loop
// copying packets between the TUNs unparsed, offloads on and off); plus
// the gateway's memory per tracked connection at 100,000 connections. A benchmark, not a test: the targets
// are reported as PASS/MISS lines and the exit code is 0 whatever they say.
//
// Needs root, iproute2, nftables, nginx, ab (apache2-utils), iperf3, curl
// and python3 (scripts/setup.sh installs them). Everything it creates is named
// tsbench-<random>-... (its own namespaces) or toasim-<id>-... (the
// instances', removed by instance.stop()), and is removed on every way out:
// the end, an exception, Ctrl-C, SIGTERM, SIGHUP.

import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createConnection } from "node:net";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { GatewayConfig, ServiceConfig } from "../src/fullnat-sim/config.js";
import { Gateway } from "../src/fullnat-sim/gateway.js";
import { resolveProfile } from "../src/fullnat-sim/profiles.js";
import { Stat } from "../src/fullnat-sim/stats.js";
import { parseEndpoint, parseIp } from "../src/option-codec/address.js";
import { IpProtocol } from "../src/option-codec/ipv4.js";
import { emitPacket, ipHeaderFor, type L4Repr } from "../src/option-codec/packet.js";
import { TcpFlag } from "../src/option-codec/tcp.js";
import {
  mssOption,
  NOP,
  sackPermittedOption,
  timestampsOption,
  windowScaleOption,
} from "../src/option-codec/tcp-options.js";
import { defaultGatewayConfig } from "../src/runtime/defaults.js";
import { type RunningInstance, startInstance } from "../src/runtime/instance.js";
import type { Forwarder } from "../src/runtime/worker-messages.js";
import { inNetns } from "../src/tun/netns.js";
import { checkPreconditions, deleteNamespace, nsExecArgs, runIp } from "../src/tun/topology.js";
import {
  BULK_CASES,
  BULK_PORT,
  BULK_SECONDS,
  type BulkKey,
  type BulkResult,
  iperfClientArgv,
  iperfServerArgv,
  parseIperf,
} from "./bulk-tcp.js";

// ---------------------------------------------------------------------------
// Settings

/** Rounds over the three scenarios (--rounds N); the table shows medians. */
const ROUNDS = 3;
/** Seconds of load before each measured window (JIT, caches, conntrack). */
const WARMUP_S = 1;
/** Seconds of each measured window. */
const WINDOW_S = 5;
/** ab processes, each bound to its own client address, and connections each keeps open. */
const CPS_CLIENTS = ["198.51.100.7", "198.51.100.8"] as const;
const CPS_CONCURRENCY = 16;
/** ab sizes its result array on -n: enough for 40,000 connections/s per process. */
const CPS_MAX_REQUESTS = 200_000;
/** UDP payload bytes ("small datagrams"). */
const UDP_PAYLOAD = 32;
/** Connections fed to the gateway for the memory figure. */
const MEMORY_CONNECTIONS = 100_000;
const TARGET_PPS_RATIO = 0.5;
/** Bulk TCP through the gateway with offloads, as a share of the kernel path's (one IPv4 stream). */
const TARGET_BULK_RATIO = 0.5;
const TARGET_BYTES_PER_CONN = 300;

const VIP = "203.0.113.10";
const VIP6 = "2001:db8:f::10";
const RS = "192.0.2.10";
const RS6 = "2001:db8:5::10";
const MIDDLE_TO_RS = "192.0.2.100";
const MIDDLE_TO_RS6 = "2001:db8:5::100";
const MIDDLE_TO_CLIENT = "198.51.100.1";
const MIDDLE_TO_CLIENT6 = "2001:db8:c::1";
const CLIENT6 = "2001:db8:c::7";
/** Ports the servers listen on: the RS ports, and the VIP ports the null forwarder delivers to. */
const TCP_PORTS = [8080, 80] as const;
const UDP_PORTS = [5353, 53] as const;

const outDir = fileURLToPath(new URL("../../out/", import.meta.url));
const thisFile = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------
// Everything to undo, and the ways out

const tag = randomBytes(3).toString("hex");
const children = new Set<ChildProcess>();
const instances = new Set<RunningInstance>();
const ownNamespaces = new Set<string>();
let workDir: string | null = null;
let interrupted = false;

function killChildren(): void {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {
      // gone
    }
  }
}

/** Synchronous, so that it can also run in the "exit" hook. */
function removeOwnSync(): void {
  killChildren();
  for (const ns of ownNamespaces) {
    try {
      deleteNamespace(ns);
      ownNamespaces.delete(ns);
    } catch (e) {
      console.error(`bench: could not delete netns ${ns}: ${(e as Error).message}`);
    }
  }
  if (workDir !== null) {
    rmSync(workDir, { recursive: true, force: true });
    workDir = null;
  }
}

async function cleanup(): Promise<void> {
  killChildren();
  for (const inst of [...instances]) {
    try {
      await inst.stop();
    } catch (e) {
      console.error(`bench: stopping instance ${inst.info.id}: ${(e as Error).message}`);
    }
    instances.delete(inst);
  }
  removeOwnSync();
}

// Instances remove themselves in their own exit hooks; these are ours.
process.on("exit", removeOwnSync);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    if (interrupted) return; // a second Ctrl-C must not cut the cleanup short
    interrupted = true;
    console.error(`\nbench: ${sig}, cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

class Interrupted extends Error {}

function checkInterrupted(): void {
  if (interrupted) throw new Interrupted("interrupted");
}

const sleep = (ms: number): Promise<void> =>
  new Promise((r) => {
    setTimeout(r, ms);
  });

// ---------------------------------------------------------------------------
// Processes

interface Done {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A child that is always killed: by stop(), by its time limit, or by cleanup. */
class Child {
  readonly proc: ChildProcess;
  stdout = "";
  stderr = "";
  readonly done: Promise<Done>;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly argv: readonly string[],
    timeoutMs: number,
  ) {
    this.proc = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    children.add(this.proc);
    this.proc.stdout!.on("data", (d: Buffer) => {
      this.stdout += d.toString();
    });
    this.proc.stderr!.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.timer = setTimeout(() => {
      this.stderr += `\n[killed after ${timeoutMs} ms]`;
      this.proc.kill("SIGKILL");
    }, timeoutMs);
    this.done = new Promise((res) => {
      let finished = false;
      const finish = (code: number | null) => {
        if (finished) return;
        finished = true;
        clearTimeout(this.timer);
        children.delete(this.proc);
        res({ code, stdout: this.stdout, stderr: this.stderr });
      };
      this.proc.on("error", (e) => {
        this.stderr += e.message;
        finish(null);
      });
      // "close" waits for the pipes too, which a process the child left
      // behind (an nginx worker whose master died) keeps open forever: after
      // "exit", the output gets a moment to drain, then the pipes are dropped.
      this.proc.on("exit", (code) => {
        setTimeout(() => {
          this.proc.stdout?.destroy();
          this.proc.stderr?.destroy();
          finish(code);
        }, 500).unref();
      });
      this.proc.on("close", (code) => finish(code));
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 1000): Promise<Done> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGTERM");
      const t = setTimeout(() => this.proc.kill("SIGKILL"), graceMs);
      const d = await this.done;
      clearTimeout(t);
      return d;
    }
    return this.done;
  }
}

/** argv that runs `cmd` in network namespace `ns` (`ip netns exec` execs it: same pid). */
const inNs = (ns: string | null, cmd: readonly string[]): string[] => nsExecArgs(ns, cmd);

async function run(argv: readonly string[], timeoutMs: number): Promise<Done> {
  return new Child(argv, timeoutMs).done;
}

function findCommand(name: string): string | null {
  const dirs = [...(process.env["PATH"] ?? "").split(":"), "/usr/sbin", "/sbin", "/usr/bin"];
  for (const d of dirs) {
    if (d === "") continue;
    try {
      if (statSync(join(d, name)).isFile()) return join(d, name);
    } catch {
      // not here
    }
  }
  return null;
}

// ---------------------------------------------------------------------------
// Load generators and servers (written to the work folder)

const UDP_SEND_PY = `
import socket, sys, time
dst, port, secs, src, size = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
s.connect((dst, port))
payload = b"q" * size
send = s.send
mono = time.monotonic
end = mono() + secs
n = err = 0
while mono() < end:
    for _ in range(64):
        try:
            send(payload)
            n += 1
        except OSError:
            err += 1
print(n, err, flush=True)
`;

const UDP_SINK_PY = `
import select, signal, socket, sys
socks = {}
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", int(p)))
    s.setblocking(False)
    socks[s.fileno()] = s
def stop(*_):
    raise SystemExit(0)
signal.signal(signal.SIGTERM, stop)
ep = select.epoll()
for fd in socks:
    ep.register(fd, select.EPOLLIN)
buf = bytearray(2048)
count = 0
print("ready", flush=True)
try:
    while True:
        for fd, _ in ep.poll():
            s = socks[fd]
            try:
                while True:
                    s.recv_into(buf)
                    count += 1
            except BlockingIOError:
                pass
finally:
    print(count, flush=True)
`;

function nginxConf(dir: string): string {
  return `worker_processes 2;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
user root;
events { worker_connections 8192; multi_accept on; }
http {
  access_log off;
  default_type text/plain;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  server {
${TCP_PORTS.map((p) => `    listen ${p} backlog=4096;`).join("\n")}
    location / { return 200 "ok\\n"; }
  }
}
`;
}

// ---------------------------------------------------------------------------
// Kernel counters of a namespace, read through a process that lives in it

interface UdpCounters {
  readonly inDatagrams: number;
  readonly rcvbufErrors: number;
  readonly noPorts: number;
  readonly outDatagrams: number;
  readonly sndbufErrors: number;
}

function udpCounters(pid: number, what: string): UdpCounters {
  // /proc/PID/net is the network namespace of PID, whichever ours is.
  let snmp: string;
  try {
    snmp = readFileSync(`/proc/${pid}/net/snmp`, "utf8");
  } catch {
    throw new Error(`the ${what} (pid ${pid}) has exited: no counters to read`);
  }
  const lines = snmp.split("\n").filter((l) => l.startsWith("Udp:"));
  const names = (lines[0] ?? "").split(/\s+/).slice(1);
  const values = (lines[1] ?? "").split(/\s+/).slice(1).map(Number);
  const get = (k: string) => values[names.indexOf(k)] ?? 0;
  return {
    inDatagrams: get("InDatagrams"),
    rcvbufErrors: get("RcvbufErrors"),
    noPorts: get("NoPorts"),
    outDatagrams: get("OutDatagrams"),
    sndbufErrors: get("SndbufErrors"),
  };
}

// ---------------------------------------------------------------------------
// CPU time of this process's threads: the packet worker is the busiest one
// during a window (the main thread sleeps), and its CPU share tells what a
// packet costs the forwarder itself on a machine the load generators share.

/** USER_HZ: /proc times are in 1/100 s on every Linux architecture toasim runs on. */
const CLOCK_TICKS = 100;

function threadTicks(): Map<string, number> {
  const m = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync("/proc/self/task");
  } catch {
    return m;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      m.set(tid, Number(f[11]) + Number(f[12]));
    } catch {
      // the thread ended
    }
  }
  return m;
}

/** CPU seconds of the thread that used the most between the two samples. */
function busiestThreadSeconds(before: Map<string, number>, after: Map<string, number>): number {
  let best = 0;
  for (const [tid, t] of after) best = Math.max(best, t - (before.get(tid) ?? t));
  return best / CLOCK_TICKS;
}

// ---------------------------------------------------------------------------
// One scenario: servers in `serverNs`, load from `clientNs`

interface CpsResult {
  readonly cps: number;
  readonly complete: number;
  readonly failed: number;
  readonly seconds: number;
  readonly perClient: readonly {
    address: string;
    complete: number;
    failed: number;
    seconds: number;
  }[];
  /** The packet worker's CPU share (1 = one whole CPU) during the window; null without a worker. */
  readonly workerCpu: number | null;
}

interface UdpResult {
  /** Datagrams that reached the server's UDP port per second (read by the sink or not). */
  readonly rxPps: number;
  /** Datagrams the client namespace sent per second. */
  readonly txPps: number;
  /** What the sink read, per second (a slow reader loses some to a full buffer). */
  readonly readPps: number;
  readonly seconds: number;
  readonly rx: number;
  readonly tx: number;
  readonly rcvbufErrors: number;
  readonly noPorts: number;
  readonly senderErrors: number;
  /** The packet worker's CPU share during the window; null without a worker. */
  readonly workerCpu: number | null;
  /** rx datagrams per CPU second of the packet worker: its cost per packet, contention aside. */
  readonly rxPerWorkerCpuSecond: number | null;
}

/** What `npm run bench` compares: the gateway and the null forwarder with offloads on and off, and the kernel. */
const SCENARIO_IDS = [
  "gateway",
  "gateway-offload-off",
  "null",
  "null-offload-off",
  "kernel",
] as const;
type ScenarioId = (typeof SCENARIO_IDS)[number];

interface ScenarioResult {
  readonly id: ScenarioId;
  readonly label: string;
  readonly cps: CpsResult;
  readonly udp: UdpResult;
  readonly bulk: BulkResult;
  readonly gatewayStats?: Record<string, number>;
}

interface Paths {
  readonly python: string;
  readonly iperf3: string;
  readonly ab: string;
  readonly nginx: string;
  readonly curl: string;
  readonly nft: string;
  readonly dir: string;
}

function parseAb(out: string): { complete: number; failed: number; seconds: number } {
  const num = (re: RegExp) => Number((re.exec(out)?.[1] ?? "NaN").trim());
  return {
    complete: num(/Complete requests:\s+(\d+)/),
    failed: num(/Failed requests:\s+(\d+)/),
    seconds: num(/Time taken for tests:\s+([\d.]+)/),
  };
}

async function runAb(
  p: Paths,
  clientNs: string,
  seconds: number,
  clients: readonly string[],
  worker: boolean,
): Promise<CpsResult> {
  const ticks0 = threadTicks();
  const t0 = performance.now();
  const runs = clients.map((addr) =>
    run(
      inNs(clientNs, [
        p.ab,
        "-q",
        "-r",
        "-s",
        "5",
        "-B",
        addr,
        "-c",
        String(CPS_CONCURRENCY),
        // -t first: it resets -n to 50,000.
        "-t",
        String(seconds),
        "-n",
        String(CPS_MAX_REQUESTS),
        `http://${VIP}/`,
      ]),
      (seconds + 20) * 1000,
    ),
  );
  const done = await Promise.all(runs);
  const cpu = busiestThreadSeconds(ticks0, threadTicks()) / ((performance.now() - t0) / 1000);
  const perClient = done.map((d, i) => {
    const r = parseAb(d.stdout);
    if (d.code !== 0 || !Number.isFinite(r.complete) || !Number.isFinite(r.seconds)) {
      throw new Error(
        `ab from ${clients[i]} failed (exit ${d.code}): ${(d.stderr || d.stdout).trim().slice(-400)}`,
      );
    }
    return { address: clients[i]!, ...r };
  });
  const complete = perClient.reduce((a, r) => a + r.complete, 0);
  const failed = perClient.reduce((a, r) => a + r.failed, 0);
  const cps = perClient.reduce((a, r) => a + (r.complete - r.failed) / r.seconds, 0);
  const secondsMax = Math.max(...perClient.map((r) => r.seconds));
  return {
    cps,
    complete,
    failed,
    seconds: secondsMax,
    perClient,
    workerCpu: worker ? cpu : null,
  };
}

async function waitHttp(p: Paths, clientNs: string): Promise<void> {
  let last = "";
  for (let i = 0; i < 40; i++) {
    checkInterrupted();
    const d = await run(inNs(clientNs, [p.curl, "-s", "-m", "1", `http://${VIP}/`]), 5000);
    if (d.code === 0 && d.stdout.trim() === "ok") return;
    last = `curl exit ${d.code} ${d.stderr.trim()}`;
    await sleep(100);
  }
  throw new Error(`no HTTP answer from ${VIP}:80 through the path (${last})`);
}

async function measureUdp(
  p: Paths,
  clientNs: string,
  sinkPid: number,
  worker: boolean,
): Promise<UdpResult> {
  const script = join(p.dir, "udp_send.py");
  // Preflight: a short burst must arrive, or the window would only measure drops.
  const before = udpCounters(sinkPid, "UDP sink");
  await run(
    inNs(clientNs, [p.python, script, VIP, "53", "0.2", CPS_CLIENTS[0], String(UDP_PAYLOAD)]),
    10_000,
  );
  await sleep(100);
  const after = udpCounters(sinkPid, "UDP sink");
  if (after.inDatagrams + after.rcvbufErrors === before.inDatagrams + before.rcvbufErrors) {
    throw new Error(`no UDP datagram to ${VIP}:53 reached the server`);
  }
  checkInterrupted();
  const total = WARMUP_S + WINDOW_S + 0.5;
  const sender = new Child(
    inNs(clientNs, [
      p.python,
      script,
      VIP,
      "53",
      String(total),
      CPS_CLIENTS[0],
      String(UDP_PAYLOAD),
    ]),
    (total + 15) * 1000,
  );
  await sleep(WARMUP_S * 1000);
  const r0 = udpCounters(sinkPid, "UDP sink");
  const s0 = udpCounters(sender.pid, "UDP sender");
  const ticks0 = threadTicks();
  const t0 = performance.now();
  await sleep(WINDOW_S * 1000);
  const r1 = udpCounters(sinkPid, "UDP sink");
  const s1 = udpCounters(sender.pid, "UDP sender");
  const ticks1 = threadTicks();
  const seconds = (performance.now() - t0) / 1000;
  const workerSeconds = busiestThreadSeconds(ticks0, ticks1);
  const done = await sender.done;
  const [, errText] = done.stdout.trim().split(/\s+/);
  if (done.code !== 0)
    throw new Error(`UDP sender failed (exit ${done.code}): ${done.stderr.trim()}`);
  const readIn = r1.inDatagrams - r0.inDatagrams;
  const rx = readIn + (r1.rcvbufErrors - r0.rcvbufErrors);
  const tx = s1.outDatagrams - s0.outDatagrams;
  return {
    rxPps: rx / seconds,
    txPps: tx / seconds,
    readPps: readIn / seconds,
    seconds,
    rx,
    tx,
    rcvbufErrors: r1.rcvbufErrors - r0.rcvbufErrors,
    noPorts: r1.noPorts - r0.noPorts,
    senderErrors: Number(errText ?? 0),
    workerCpu: worker ? workerSeconds / seconds : null,
    rxPerWorkerCpuSecond: worker && workerSeconds > 0 ? rx / workerSeconds : null,
  };
}

/** iperf3 to the VIPs, one run per case; a failed run is reported and counts as null. */
async function measureBulk(p: Paths, clientNs: string, errors: string[]): Promise<BulkResult> {
  const out: Partial<Record<BulkKey, number | null>> = {};
  for (const c of BULK_CASES) {
    checkInterrupted();
    const target = c.family === 4 ? VIP : VIP6;
    const d = await run(
      inNs(clientNs, iperfClientArgv(p.iperf3, target, c.streams)),
      (BULK_SECONDS + 30) * 1000,
    );
    try {
      out[c.key] = parseIperf(d.stdout).gbps;
    } catch (e) {
      errors.push(`bulk ${c.key}: ${(e as Error).message} ${d.stderr.trim().slice(-200)}`);
      out[c.key] = null;
    }
  }
  return out as BulkResult;
}

/** Servers up in serverNs, then CPS, UDP and bulk TCP from clientNs; servers stopped whatever happens. */
async function measurePath(
  p: Paths,
  clientNs: string,
  serverNs: string | null,
  worker: boolean,
): Promise<{ cps: CpsResult; udp: UdpResult; bulk: BulkResult; bulkErrors: string[] }> {
  // Ports from 1024: ~64,000 connections per client address before one is reused.
  inNetns(clientNs, () => writeFileSync("/proc/sys/net/ipv4/ip_local_port_range", "1024 65535"));
  const nginx = new Child(
    inNs(serverNs, [
      p.nginx,
      "-p",
      p.dir,
      "-c",
      join(p.dir, "nginx.conf"),
      "-e",
      join(p.dir, "nginx-error.log"),
    ]),
    170_000,
  );
  const sink = new Child(
    inNs(serverNs, [p.python, join(p.dir, "udp_sink.py"), ...UDP_PORTS.map(String)]),
    170_000,
  );
  const iperf = new Child(inNs(serverNs, iperfServerArgv(p.iperf3)), 170_000);
  try {
    for (let i = 0; i < 50 && !sink.stdout.includes("ready"); i++) await sleep(50);
    if (!sink.stdout.includes("ready")) throw new Error(`UDP sink did not start: ${sink.stderr}`);
    await waitHttp(p, clientNs);
    checkInterrupted();
    // UDP first: after the connection test the gateway expires tens of
    // thousands of closed connections (10 s after their close) and the
    // kernel holds as many TIME_WAIT sockets; the single UDP flow leaves
    // nothing behind for the connection test.
    const udp = await measureUdp(p, clientNs, sink.pid, worker);
    checkInterrupted();
    const bulkErrors: string[] = [];
    const bulk = await measureBulk(p, clientNs, bulkErrors);
    checkInterrupted();
    await runAb(p, clientNs, WARMUP_S, CPS_CLIENTS.slice(0, 1), worker);
    checkInterrupted();
    const cps = await runAb(p, clientNs, WINDOW_S, CPS_CLIENTS, worker);
    return { cps, udp, bulk, bulkErrors };
  } finally {
    await Promise.all([nginx.stop(), sink.stop(), iperf.stop()]);
  }
}

// ---------------------------------------------------------------------------
// The three scenarios

function gatewayConfig(maxConnections: number): GatewayConfig {
  return defaultGatewayConfig(resolveProfile("dpvs"), maxConnections);
}

/** The default services, and the iperf3 port on the v4 and v6 VIPs. */
function benchGatewayConfig(): GatewayConfig {
  const c = gatewayConfig(1_000_000);
  const bulk = (vip: string, rs: string): ServiceConfig => ({
    vip: parseEndpoint(vip),
    proto: "tcp",
    servers: [{ endpoint: parseEndpoint(rs), weight: 1 }],
    scheduler: "rr",
  });
  return {
    ...c,
    services: [
      ...c.services,
      bulk(`${VIP}:${BULK_PORT}`, `${RS}:${BULK_PORT}`),
      bulk(`[${VIP6}]:${BULK_PORT}`, `[${RS6}]:${BULK_PORT}`),
    ],
  };
}

function instanceStats(socket: string): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socket);
    let data = "";
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error("stats: no answer"));
    }, 3000);
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      data += d;
    });
    s.on("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on("end", () => {
      clearTimeout(t);
      try {
        resolve((JSON.parse(data) as { stats: Record<string, number> }).stats);
      } catch (e) {
        reject(e);
      }
    });
    s.write(`${JSON.stringify({ cmd: "stats" })}\n`);
  });
}

async function toasimScenario(
  p: Paths,
  forwarder: Forwarder,
  offload: boolean,
  errors: string[],
): Promise<ScenarioResult> {
  const inst = await startInstance(benchGatewayConfig(), [], { forwarder, offload });
  instances.add(inst);
  try {
    checkInterrupted();
    const { cps, udp, bulk, bulkErrors } = await measurePath(
      p,
      inst.info.clientNs,
      inst.info.serverNs,
      true,
    );
    const failure = inst.failure();
    if (failure !== null) throw new Error(`packet worker failed: ${failure}`);
    const name = forwarder === "gateway" ? "toasim gateway (dpvs)" : "null forwarder";
    const base = {
      id: (offload ? forwarder : `${forwarder}-offload-off`) as ScenarioId,
      label: offload ? name : `${name}, offloads off`,
      cps,
      udp,
      bulk,
    } as const;
    errors.push(...bulkErrors.map((e) => `${base.id}: ${e}`));
    return forwarder === "gateway"
      ? { ...base, gatewayStats: await instanceStats(inst.info.socket) }
      : base;
  } finally {
    await inst.stop();
    instances.delete(inst);
  }
}

/** client -- middle (nftables DNAT + SNAT, ip_forward) -- server, over two veth pairs. */
async function kernelScenario(p: Paths, errors: string[]): Promise<ScenarioResult> {
  const prefix = `tsbench-${tag}-`;
  const c = `${prefix}c`;
  const m = `${prefix}m`;
  const r = `${prefix}r`;
  // Interface names live inside the namespaces; short enough for IFNAMSIZ.
  const [cm, mc, mr, rm] = ["cm", "mc", "mr", "rm"].map((s) => `tsb${tag}${s}`) as [
    string,
    string,
    string,
    string,
  ];
  try {
    for (const ns of [c, m, r]) {
      ownNamespaces.add(ns); // before it exists: a failure half-way still removes it
      runIp(["netns", "add", ns]);
      runIp(["-n", ns, "link", "set", "lo", "up"]);
    }
    runIp(["-n", c, "link", "add", cm, "type", "veth", "peer", "name", mc, "netns", m]);
    runIp(["-n", m, "link", "add", mr, "type", "veth", "peer", "name", rm, "netns", r]);
    runIp(["-n", c, "addr", "add", `${CPS_CLIENTS[0]}/24`, "dev", cm]);
    for (const a of CPS_CLIENTS.slice(1)) runIp(["-n", c, "addr", "add", `${a}/24`, "dev", cm]);
    runIp(["-n", c, "link", "set", cm, "up"]);
    runIp(["-n", c, "route", "add", "203.0.113.0/24", "via", MIDDLE_TO_CLIENT]);
    runIp(["-n", m, "addr", "add", `${MIDDLE_TO_CLIENT}/24`, "dev", mc]);
    runIp(["-n", m, "addr", "add", `${MIDDLE_TO_RS}/24`, "dev", mr]);
    runIp(["-n", m, "addr", "add", `${VIP}/32`, "dev", "lo"]);
    runIp(["-n", m, "link", "set", mc, "up"]);
    runIp(["-n", m, "link", "set", mr, "up"]);
    runIp(["-n", r, "addr", "add", `${RS}/24`, "dev", rm]);
    runIp(["-n", r, "link", "set", rm, "up"]);
    // IPv6 for bulk TCP: the same shape (nodad: usable at once).
    runIp(["-n", c, "-6", "addr", "add", `${CLIENT6}/64`, "dev", cm, "nodad"]);
    runIp(["-n", c, "-6", "route", "add", "2001:db8:f::/64", "via", MIDDLE_TO_CLIENT6]);
    runIp(["-n", m, "-6", "addr", "add", `${MIDDLE_TO_CLIENT6}/64`, "dev", mc, "nodad"]);
    runIp(["-n", m, "-6", "addr", "add", `${MIDDLE_TO_RS6}/64`, "dev", mr, "nodad"]);
    runIp(["-n", m, "-6", "addr", "add", `${VIP6}/128`, "dev", "lo"]);
    runIp(["-n", r, "-6", "addr", "add", `${RS6}/64`, "dev", rm, "nodad"]);
    inNetns(m, () => {
      writeFileSync("/proc/sys/net/ipv4/ip_forward", "1");
      writeFileSync("/proc/sys/net/ipv6/conf/all/forwarding", "1");
    });
    const table = `tsbench_${tag}`;
    const rules = join(p.dir, "kernel.nft");
    writeFileSync(
      rules,
      `table ip ${table} {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${VIP} tcp dport 80 dnat to ${RS}:8080
    ip daddr ${VIP} udp dport 53 dnat to ${RS}:5353
    ip daddr ${VIP} tcp dport ${BULK_PORT} dnat to ${RS}:${BULK_PORT}
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "${mr}" snat to ${MIDDLE_TO_RS}
  }
}
table ip6 ${table} {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip6 daddr ${VIP6} tcp dport ${BULK_PORT} dnat to [${RS6}]:${BULK_PORT}
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "${mr}" snat to ${MIDDLE_TO_RS6}
  }
}
`,
    );
    const nft = await run(inNs(m, [p.nft, "-f", rules]), 10_000);
    if (nft.code !== 0) throw new Error(`nft -f: ${nft.stderr.trim()}`);
    checkInterrupted();
    const { cps, udp, bulk, bulkErrors } = await measurePath(p, c, r, false);
    errors.push(...bulkErrors.map((e) => `kernel: ${e}`));
    return { id: "kernel", label: "kernel (nftables DNAT+SNAT, veth)", cps, udp, bulk };
  } finally {
    for (const ns of [c, m, r]) {
      deleteNamespace(ns);
      ownNamespaces.delete(ns);
    }
  }
}

// ---------------------------------------------------------------------------
// Memory per tracked connection (in a child with --expose-gc and nothing else on its heap)

interface MemoryResult {
  readonly connections: number;
  readonly maxConnections: number;
  readonly tableBytes: number;
  readonly tableBytesPerConnection: number;
  /** heapUsed + arrayBuffers growth from before the Gateway existed to after the SYNs, after gc. */
  readonly totalBytes: number;
  readonly totalBytesPerConnection: number;
  /** The same growth from just after construction (the fixed LIP port maps left out). */
  readonly afterConstructionBytesPerConnection: number;
  readonly heapUsedBytes: number;
  readonly arrayBuffersBytes: number;
  readonly rssBytes: number;
  readonly dropped: number;
  readonly feedMs: number;
}

function memoryChild(): void {
  const gc = globalThis.gc;
  if (typeof gc !== "function") throw new Error("run with --expose-gc");
  const collect = () => {
    gc();
    gc();
  };
  const cfg = gatewayConfig(MEMORY_CONNECTIONS);
  const vip = parseIp(VIP);
  const mem = () => process.memoryUsage();
  collect();
  const m0 = mem();
  const gw = new Gateway(cfg);
  collect();
  const m1 = mem();
  const buf = new Uint8Array(2048);
  const t0 = performance.now();
  for (let i = 0; i < MEMORY_CONNECTIONS; i++) {
    // Distinct (address, port): 254 addresses of 198.51.100.0/24 x ~400 ports.
    const src = parseIp(`198.51.100.${1 + (i % 254)}`);
    const l4: L4Repr = {
      protocol: IpProtocol.tcp,
      tcp: {
        srcPort: 1024 + Math.floor(i / 254),
        dstPort: 80,
        seq: (i * 2654435761) >>> 0,
        ack: 0,
        flags: TcpFlag.syn,
        window: 64240,
        urgent: 0,
        // What a Linux client sends.
        options: [
          mssOption(1460),
          sackPermittedOption(),
          timestampsOption(i, 0),
          NOP,
          windowScaleOption(7),
        ],
        payload: new Uint8Array(0),
      },
    };
    const pkt = emitPacket({ ip: ipHeaderFor(src, vip, l4), l4 });
    buf.set(pkt);
    gw.fromClient(buf, pkt.length, 1000);
  }
  const feedMs = performance.now() - t0;
  collect();
  const m2 = mem();
  const n = gw.conns.size;
  const heap = m2.heapUsed - m0.heapUsed;
  const ab = m2.arrayBuffers - m0.arrayBuffers;
  const total = heap + ab;
  const sinceCtor = m2.heapUsed - m1.heapUsed + (m2.arrayBuffers - m1.arrayBuffers);
  const dropped =
    (gw.stats[Stat.dropTableFull] ?? 0) +
    (gw.stats[Stat.dropPortsExhausted] ?? 0) +
    (gw.stats[Stat.dropMalformed] ?? 0);
  const result: MemoryResult = {
    connections: n,
    maxConnections: cfg.maxConnections,
    tableBytes: gw.conns.byteSize,
    tableBytesPerConnection: gw.conns.byteSize / n,
    totalBytes: total,
    totalBytesPerConnection: total / n,
    afterConstructionBytesPerConnection: sinceCtor / n,
    heapUsedBytes: heap,
    arrayBuffersBytes: ab,
    rssBytes: m2.rss - m0.rss,
    dropped,
    feedMs,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function measureMemory(): Promise<MemoryResult> {
  const d = await run([process.execPath, "--expose-gc", thisFile, "--memory-child"], 60_000);
  if (d.code !== 0) throw new Error(`memory child failed (exit ${d.code}): ${d.stderr.trim()}`);
  return JSON.parse(d.stdout.trim().split("\n").pop() ?? "") as MemoryResult;
}

// ---------------------------------------------------------------------------
// Report

const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a");
const fmtGbps = (x: number | null) => (x === null || !Number.isFinite(x) ? "n/a" : x.toFixed(2));
const fmtRatio = (a: number, b: number | undefined) =>
  b !== undefined && b > 0 && Number.isFinite(a) ? `${(a / b).toFixed(2)}x` : "n/a";

function prerequisites(): { paths: Omit<Paths, "dir"> | null; missing: string[] } {
  const missing: string[] = [];
  try {
    checkPreconditions();
  } catch (e) {
    missing.push((e as Error).message);
  }
  const need = (cmd: string, pkg: string) => {
    const p = findCommand(cmd);
    if (p === null) missing.push(`${cmd} (Debian package ${pkg})`);
    return p ?? "";
  };
  // The Debian python3 when there is one: a pyenv shim adds a shell and a lookup per start.
  const python = ["/usr/bin/python3"].find((f) => {
    try {
      return statSync(f).isFile();
    } catch {
      return false;
    }
  });
  const paths = {
    python: python ?? need("python3", "python3"),
    ab: need("ab", "apache2-utils"),
    iperf3: need("iperf3", "iperf3"),
    nginx: need("nginx", "nginx"),
    curl: need("curl", "curl"),
    nft: need("nft", "nftables"),
  };
  return { paths: missing.length === 0 ? paths : null, missing };
}

/** Medians over the rounds that succeeded, and the rounds themselves. */
interface ScenarioSummary {
  readonly id: ScenarioId;
  readonly label: string;
  readonly cps: number;
  readonly txPps: number;
  readonly rxPps: number;
  /** Gbit/s by case, medians of the rounds where the run succeeded. */
  readonly bulk: BulkResult;
  readonly rounds: readonly ScenarioResult[];
}

function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function roundsFlag(): number {
  const i = process.argv.indexOf("--rounds");
  if (i < 0) return ROUNDS;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 1 || n > 5) {
    throw new Error("--rounds: an integer from 1 to 5");
  }
  return n;
}

async function main(): Promise<number> {
  const started = Date.now();
  const rounds = roundsFlag();
  const cpu = cpus();
  console.log(
    `toasim gateway benchmark: ${cpu.length} CPU (${cpu[0]?.model ?? "?"}), node ${process.version}; ` +
      `${rounds} interleaved rounds of ${WARMUP_S} s warm-up + ${WINDOW_S} s window per measurement`,
  );
  const { paths, missing } = prerequisites();
  const results: ScenarioResult[] = [];
  const errors: string[] = [];
  if (paths === null) {
    console.log(`network scenarios skipped, missing: ${missing.join("; ")}`);
    console.log("  (run as root after scripts/setup.sh, e.g. npm run setup)");
  } else {
    workDir = mkdtempSync(join(tmpdir(), `tsbench-${tag}-`));
    const p: Paths = { ...paths, dir: workDir };
    writeFileSync(join(p.dir, "udp_send.py"), UDP_SEND_PY);
    writeFileSync(join(p.dir, "udp_sink.py"), UDP_SINK_PY);
    writeFileSync(join(p.dir, "nginx.conf"), nginxConf(p.dir));
    const plan: [string, () => Promise<ScenarioResult>][] = [
      ["gateway", () => toasimScenario(p, "gateway", true, errors)],
      ["gateway off", () => toasimScenario(p, "gateway", false, errors)],
      ["null", () => toasimScenario(p, "null", true, errors)],
      ["null off", () => toasimScenario(p, "null", false, errors)],
      ["kernel", () => kernelScenario(p, errors)],
    ];
    // Interleaved, so that a slow spell of the machine touches every scenario alike.
    for (let round = 1; round <= rounds; round++) {
      for (const [name, f] of plan) {
        checkInterrupted();
        const t0 = Date.now();
        process.stdout.write(`  round ${round}/${rounds} ${name.padEnd(15)} `);
        try {
          const r = await f();
          results.push(r);
          console.log(
            `${fmtInt(r.cps.cps).padStart(7)} conn/s ${fmtInt(r.udp.rxPps).padStart(9)} pps ` +
              `${fmtGbps(r.bulk.v4x1).padStart(6)} Gbit/s (v4, 1 stream) ` +
              `(${((Date.now() - t0) / 1000).toFixed(1)} s)`,
          );
        } catch (e) {
          if (e instanceof Interrupted || interrupted) throw e;
          const msg = e instanceof Error ? e.message : String(e);
          errors.push(`round ${round} ${name}: ${msg}`);
          console.log(`FAILED: ${msg}`);
        }
      }
    }
  }
  checkInterrupted();
  process.stdout.write("  memory per connection ... ");
  let memory: MemoryResult | null = null;
  try {
    memory = await measureMemory();
    console.log(`${memory.totalBytesPerConnection.toFixed(1)} B/connection`);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    errors.push(`memory: ${msg}`);
    console.log(`FAILED: ${msg}`);
  }

  const scenarios: ScenarioSummary[] = [];
  for (const id of SCENARIO_IDS) {
    const rs = results.filter((r) => r.id === id);
    if (rs.length === 0) continue;
    const bulk = {} as Record<BulkKey, number | null>;
    for (const c of BULK_CASES) {
      const xs = rs.map((r) => r.bulk[c.key]).filter((x): x is number => x !== null);
      bulk[c.key] = xs.length > 0 ? median(xs) : null;
    }
    scenarios.push({
      id,
      label: rs[0]!.label,
      cps: median(rs.map((r) => r.cps.cps)),
      txPps: median(rs.map((r) => r.udp.txPps)),
      rxPps: median(rs.map((r) => r.udp.rxPps)),
      bulk,
      rounds: rs,
    });
  }
  const find = (id: ScenarioId) => scenarios.find((s) => s.id === id);
  const nul = find("null");
  const kern = find("kernel");
  const gw = find("gateway");

  console.log();
  table(
    [
      "scenario (median of rounds)".padEnd(42),
      "conn/s".padStart(9),
      "UDP tx pps".padStart(11),
      "UDP rx pps".padStart(11),
      "cps/null".padStart(9),
      "pps/null".padStart(9),
      "cps/kern".padStart(9),
      "pps/kern".padStart(9),
    ],
    scenarios.map((s) => [
      s.label.padEnd(42),
      fmtInt(s.cps).padStart(9),
      fmtInt(s.txPps).padStart(11),
      fmtInt(s.rxPps).padStart(11),
      fmtRatio(s.cps, nul?.cps).padStart(9),
      fmtRatio(s.rxPps, nul?.rxPps).padStart(9),
      fmtRatio(s.cps, kern?.cps).padStart(9),
      fmtRatio(s.rxPps, kern?.rxPps).padStart(9),
    ]),
  );
  console.log(
    `conn/s: ab x${CPS_CLIENTS.length} (concurrency ${CPS_CONCURRENCY} each, HTTP/1.0: handshake, ` +
      "request, response, close) against nginx; UDP: one python3 sender of " +
      `${UDP_PAYLOAD}-byte datagrams to ${VIP}:53, rx = datagrams reaching the server's port ` +
      "(kernel counters, read by the sink or dropped at its full buffer)",
  );
  for (const s of scenarios) {
    const perRound = s.rounds.map((r) => `${fmtInt(r.cps.cps)}/${fmtInt(r.udp.rxPps)}`).join(", ");
    const cpuPart = s.rounds.every((r) => r.udp.workerCpu !== null)
      ? `; packet worker ${(median(s.rounds.map((r) => r.cps.workerCpu ?? 0)) * 100).toFixed(0)}% ` +
        `of a CPU for conn/s, ${(median(s.rounds.map((r) => r.udp.workerCpu ?? 0)) * 100).toFixed(0)}% ` +
        `for UDP, ${fmtInt(median(s.rounds.map((r) => r.udp.rxPerWorkerCpuSecond ?? 0)))} ` +
        "datagrams per worker CPU second"
      : "";
    console.log(`  ${s.label}: rounds conn/s / rx pps ${perRound}${cpuPart}`);
  }
  console.log();
  table(
    [
      "bulk TCP, Gbit/s (median of rounds)".padEnd(42),
      ...BULK_CASES.map((c) => c.key.padStart(7)),
      ...BULK_CASES.map((c) => `${c.key}/kern`.padStart(10)),
    ],
    scenarios.map((s) => [
      s.label.padEnd(42),
      ...BULK_CASES.map((c) => fmtGbps(s.bulk[c.key]).padStart(7)),
      ...BULK_CASES.map((c) =>
        fmtRatio(s.bulk[c.key] ?? Number.NaN, kern?.bulk[c.key] ?? undefined).padStart(10),
      ),
    ]),
  );
  console.log(
    `bulk TCP: iperf3 -t ${BULK_SECONDS} (after 1 s left out) to the VIP's port ${BULK_PORT}, ` +
      "v4/v6 by 1 or 4 streams, rate received by the server",
  );
  const lastGw = gw?.rounds.at(-1)?.gatewayStats;
  if (lastGw) {
    const drops = Object.entries(lastGw)
      .filter(([k, v]) => k.startsWith("drop") && v > 0)
      .map(([k, v]) => `${k} ${fmtInt(v)}`);
    console.log(
      `  gateway, last round: ${fmtInt(lastGw["connectionsCreated"] ?? Number.NaN)} connections, ` +
        `${fmtInt(lastGw["carriersInserted"] ?? Number.NaN)} carriers inserted, ` +
        `${fmtInt(lastGw["packetsToServer"] ?? Number.NaN)} packets to the server, ` +
        `drops: ${drops.length ? drops.join(", ") : "none"}`,
    );
  }
  if (memory) {
    console.log(
      `memory: ${fmtInt(memory.connections)} tracked connections (max ${fmtInt(memory.maxConnections)}): ` +
        `${memory.totalBytesPerConnection.toFixed(1)} B/connection of heap + ArrayBuffer growth after gc ` +
        `(${memory.afterConstructionBytesPerConnection.toFixed(1)} without the fixed LIP port maps), ` +
        `table arrays (conns.byteSize) ${memory.tableBytesPerConnection.toFixed(1)} B/connection`,
    );
  }
  console.log();
  const ppsRatio = gw && nul ? gw.rxPps / nul.rxPps : Number.NaN;
  const ppsOk = ppsRatio >= TARGET_PPS_RATIO;
  const memOk = memory !== null && memory.totalBytesPerConnection < TARGET_BYTES_PER_CONN;
  console.log(
    `TARGET UDP pps through the gateway >= ${TARGET_PPS_RATIO * 100}% of the null forwarder's: ` +
      (Number.isFinite(ppsRatio)
        ? `${(ppsRatio * 100).toFixed(1)}% (${fmtInt(gw!.rxPps)} vs ${fmtInt(nul!.rxPps)}): ${ppsOk ? "PASS" : "MISS"}`
        : "not measured: MISS"),
  );
  console.log(
    `TARGET gateway memory < ${TARGET_BYTES_PER_CONN} B per tracked connection at ${fmtInt(MEMORY_CONNECTIONS)}: ` +
      (memory
        ? `${memory.totalBytesPerConnection.toFixed(1)} B: ${memOk ? "PASS" : "MISS"}`
        : "not measured: MISS"),
  );
  const bulkRatio =
    gw?.bulk.v4x1 != null && kern?.bulk.v4x1 != null ? gw.bulk.v4x1 / kern.bulk.v4x1 : Number.NaN;
  const bulkOk = bulkRatio >= TARGET_BULK_RATIO;
  console.log(
    `TARGET bulk TCP through the gateway with offloads >= ${TARGET_BULK_RATIO * 100}% of the kernel path's (v4, 1 stream): ` +
      (Number.isFinite(bulkRatio)
        ? `${(bulkRatio * 100).toFixed(1)}% (${fmtGbps(gw!.bulk.v4x1)} vs ${fmtGbps(kern!.bulk.v4x1)} Gbit/s): ${bulkOk ? "PASS" : "MISS"}`
        : "not measured: MISS"),
  );
  for (const e of errors) console.log(`error: ${e}`);

  mkdirSync(outDir, { recursive: true });
  const outFile = join(outDir, "bench-gateway.json");
  const json = {
    benchmark: "gateway",
    generatedAt: new Date().toISOString(),
    durationMs: Date.now() - started,
    node: process.version,
    cpu: cpu[0]?.model ?? null,
    cpus: cpu.length,
    settings: {
      rounds,
      warmupSeconds: WARMUP_S,
      windowSeconds: WINDOW_S,
      cpsClients: CPS_CLIENTS,
      cpsConcurrencyPerClient: CPS_CONCURRENCY,
      udpPayloadBytes: UDP_PAYLOAD,
      profile: "dpvs",
    },
    units: {
      cps: "connections/s",
      pps: "datagrams/s",
      bulk: "Gbit/s received by the server",
      memory: "bytes/connection",
    },
    skipped: paths === null ? missing : null,
    errors,
    scenarios: scenarios.map((s) => ({
      ...s,
      ratioToNull: {
        cps: nul ? s.cps / nul.cps : null,
        udpPps: nul ? s.rxPps / nul.rxPps : null,
        bulk: bulkRatios(s, nul),
      },
      ratioToKernel: {
        cps: kern ? s.cps / kern.cps : null,
        udpPps: kern ? s.rxPps / kern.rxPps : null,
        bulk: bulkRatios(s, kern),
      },
    })),
    memory,
    targets: {
      udpPpsVsNull: {
        threshold: TARGET_PPS_RATIO,
        ratio: Number.isFinite(ppsRatio) ? ppsRatio : null,
        result: ppsOk ? "PASS" : "MISS",
      },
      bulkVsKernel: {
        threshold: TARGET_BULK_RATIO,
        case: "v4x1",
        ratio: Number.isFinite(bulkRatio) ? bulkRatio : null,
        result: bulkOk ? "PASS" : "MISS",
      },
      bytesPerConnection: {
        threshold: TARGET_BYTES_PER_CONN,
        connections: MEMORY_CONNECTIONS,
        bytes: memory?.totalBytesPerConnection ?? null,
        result: memOk ? "PASS" : "MISS",
      },
    },
  };
  writeFileSync(outFile, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`results written to ${outFile} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  // The targets are informational: exit 1 only when something could not be measured.
  return paths === null || errors.length > 0 ? 1 : 0;
}

/** A heading, a rule under it, and the rows, columns padded by the caller. */
function table(head: readonly string[], rows: readonly (readonly string[])[]): void {
  const h = head.join(" ");
  console.log(h);
  console.log("-".repeat(h.length));
  for (const r of rows) console.log(r.join(" "));
}

/** Bulk ratios by case to another scenario's (null where either is missing). */
function bulkRatios(s: ScenarioSummary, to: ScenarioSummary | undefined): BulkResult {
  const out = {} as Record<BulkKey, number | null>;
  for (const c of BULK_CASES) {
    const a = s.bulk[c.key];
    const b = to?.bulk[c.key] ?? null;
    out[c.key] = a !== null && b !== null && b > 0 ? a / b : null;
  }
  return out;
}

if (process.argv.includes("--memory-child")) {
  memoryChild();
} else {
  main()
    .then(async (code) => {
      await cleanup();
      process.exitCode = code;
    })
    .catch(async (e: unknown) => {
      if (interrupted) return; // the signal handler cleans up and exits
      console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
      await cleanup();
      process.exitCode = 1;
    });
}
