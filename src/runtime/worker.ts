import { performance } from "node:perf_hooks";
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { ScriptedClients, type ScriptResults, type ScriptSpec } from "../craft/scripted-clients.js";
import type { GatewayConfig } from "../fullnat-sim/config.js";
import { FaultStage } from "../fullnat-sim/fault-stage.js";
import type { FaultConfig } from "../fullnat-sim/faults.js";
import { Gateway } from "../fullnat-sim/gateway.js";
import { Stat } from "../fullnat-sim/stats.js";
import { KernelTun, Poller } from "../tun/device.js";
import { PcapWriter } from "../tun/pcap-writer.js";
import { CopyLoop, type Forwarding, PacketLoop } from "./packet-loop.js";

/**
 * What moves packets between the TUNs: the gateway, or (for the benchmark's
 * baseline) a null forwarder that copies them unmodified, without parsing.
 */
export type Forwarder = "gateway" | "null";

/** What the main thread hands the packet worker. */
export interface WorkerInput {
  readonly config: GatewayConfig;
  readonly clientFd: number;
  readonly serverFd: number;
  /** Float64Array of Stat counters, shared with the main thread. */
  readonly stats: SharedArrayBuffer;
  /** Int32Array: [0] = 1 asks the loop to stop. */
  readonly control: SharedArrayBuffer;
  /** "gateway" when absent. */
  readonly forwarder?: Forwarder;
  /** Fault injection from the start; none when absent. */
  readonly faults?: FaultConfig;
}

export type ToWorker =
  | {
      readonly type: "capture";
      readonly side: "client" | "server";
      readonly path: string;
      readonly count: number;
    }
  | { readonly type: "capture-stop"; readonly side: "client" | "server" }
  /** Replaces the fault rules (held packets go out first); null switches faults off. */
  | { readonly type: "faults"; readonly faults: FaultConfig | null }
  /** A new gateway with an empty connection table, as after a gateway restart. */
  | { readonly type: "restart" }
  /** Starts scripted clients (one run at a time). */
  | { readonly type: "script"; readonly spec: ScriptSpec }
  | { readonly type: "script-stop" };

export type FromWorker =
  | { readonly type: "ready" }
  | { readonly type: "capture-started"; readonly side: "client" | "server"; readonly path: string }
  | { readonly type: "capture-done"; readonly side: "client" | "server"; readonly packets: number }
  | { readonly type: "faults-set"; readonly rules: number }
  | { readonly type: "restarted" }
  /** A control request the worker cannot do now; the instance carries on. */
  | {
      readonly type: "refused";
      readonly request: "faults" | "restart" | "script" | "capture";
      /** capture: the side whose file could not be opened. */
      readonly side?: "client" | "server";
      readonly message: string;
    }
  | {
      readonly type: "script-progress" | "script-done";
      readonly results: ScriptResults;
      readonly active: number;
      readonly elapsedMs: number;
    }
  | { readonly type: "error"; readonly message: string }
  | { readonly type: "packet-error"; readonly message: string };

// The poll timeout bounds how long a stop request or a control message waits.
const POLL_MS = 50;
const clock = (): number => performance.timeOrigin + performance.now();

function run(input: WorkerInput): void {
  const port = parentPort!;
  const ctl = new Int32Array(input.control);
  // The null forwarder has no gateway: its stats stay at zero.
  const stats = new Float64Array(input.stats);
  const gw = input.forwarder === "null" ? null : new Gateway(input.config, stats);
  const client = KernelTun.fromFd("tun-c", input.clientFd);
  const server = KernelTun.fromFd("tun-r", input.serverFd);
  const loop: Forwarding =
    gw === null ? new CopyLoop(client, server, clock) : new PacketLoop(gw, client, server, clock);
  if (loop instanceof PacketLoop && input.faults !== undefined) {
    loop.faults = new FaultStage(input.faults, stats);
  }
  const poller = new Poller([client.fd, server.fd]);
  const limits = { client: 0, server: 0 };
  let reported = false;
  port.postMessage({ type: "ready" } satisfies FromWorker);
  let wait = POLL_MS;
  while (Atomics.load(ctl, 0) === 0) {
    if (poller.wait(wait) > 0) {
      if (poller.readable(0)) loop.fromClient();
      if (poller.readable(1)) loop.fromServer();
    }
    const now = clock();
    if (loop instanceof PacketLoop) loop.gateway.expire(now);
    // Held packets (delay, reorder) shorten the wait to when the next is due.
    const due = loop.tick(now);
    wait = due < 0 ? POLL_MS : Math.max(0, Math.min(POLL_MS, Math.ceil(due)));
    if (loop instanceof PacketLoop && loop.script !== null) {
      wait = Math.min(wait, runScript(loop, loop.script, now, port));
    }
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      control(m.message as ToWorker, loop, limits, port, input, stats);
    }
    checkCapture(loop, limits, port);
    if (loop.firstError !== null && !reported) {
      reported = true;
      const e = loop.firstError;
      const message = e instanceof Error ? (e.stack ?? e.message) : String(e);
      port.postMessage({ type: "packet-error", message } satisfies FromWorker);
    }
  }
  if (loop instanceof PacketLoop) loop.faults?.flush(loop);
  stopCapture(loop, "client", port);
  stopCapture(loop, "server", port);
}

let scriptStart = 0;
let scriptReported = 0;

/** One turn of the scripted clients; returns how long the loop may sleep. */
function runScript(
  loop: PacketLoop,
  script: ScriptedClients,
  now: number,
  port: NonNullable<typeof parentPort>,
): number {
  const want = script.tick(now);
  loop.fromScript();
  const done = script.done;
  if (done || now - scriptReported >= 1000) {
    scriptReported = now;
    port.postMessage({
      type: done ? "script-done" : "script-progress",
      results: script.results,
      active: script.active,
      elapsedMs: now - scriptStart,
    } satisfies FromWorker);
  }
  if (done) loop.script = null;
  return script.pending > 0 ? 0 : Math.ceil(want);
}

function control(
  m: ToWorker,
  loop: Forwarding,
  limits: { client: number; server: number },
  port: NonNullable<typeof parentPort>,
  input: WorkerInput,
  stats: Float64Array,
): void {
  if (m.type === "script" || m.type === "script-stop") {
    if (!(loop instanceof PacketLoop)) {
      if (m.type === "script")
        port.postMessage({
          type: "refused",
          request: "script",
          message: "the null forwarder has no gateway",
        } satisfies FromWorker);
      return;
    }
    if (m.type === "script-stop") {
      const s = loop.script;
      if (s !== null) {
        loop.script = null;
        port.postMessage({
          type: "script-done",
          results: s.results,
          active: s.active,
          elapsedMs: clock() - scriptStart,
        } satisfies FromWorker);
      }
      return;
    }
    if (loop.script !== null) {
      port.postMessage({
        type: "refused",
        request: "script",
        message: "scripted clients are running already",
      } satisfies FromWorker);
      return;
    }
    scriptStart = clock();
    scriptReported = scriptStart;
    loop.script = new ScriptedClients(m.spec, clock);
  } else if (m.type === "faults" || m.type === "restart") {
    if (!(loop instanceof PacketLoop)) {
      port.postMessage({
        type: "refused",
        request: m.type,
        message: "the null forwarder has no gateway",
      } satisfies FromWorker);
      return;
    }
    if (m.type === "restart") {
      // Counters carry on (they describe the run); connections and ports start empty.
      loop.gateway = new Gateway(input.config, stats);
      stats[Stat.connectionsActive] = 0;
      port.postMessage({ type: "restarted" } satisfies FromWorker);
      return;
    }
    loop.faults?.flush(loop);
    loop.faults = m.faults === null ? null : new FaultStage(m.faults, stats);
    port.postMessage({
      type: "faults-set",
      rules: m.faults?.rules.length ?? 0,
    } satisfies FromWorker);
  } else if (m.type === "capture") {
    stopCapture(loop, m.side, port);
    let w: PcapWriter;
    try {
      w = new PcapWriter(m.path);
    } catch (e) {
      // A file that cannot be written must not end the gateway.
      port.postMessage({
        type: "refused",
        request: "capture",
        side: m.side,
        message: `cannot write ${m.path}: ${e instanceof Error ? e.message : String(e)}`,
      } satisfies FromWorker);
      return;
    }
    // Exactly `count`: packets of the same batch past it are not written.
    w.limit = m.count;
    if (m.side === "client") loop.clientCapture = w;
    else loop.serverCapture = w;
    limits[m.side] = m.count;
    port.postMessage({ type: "capture-started", side: m.side, path: m.path } satisfies FromWorker);
  } else {
    stopCapture(loop, m.side, port);
  }
}

function checkCapture(
  loop: Forwarding,
  limits: { client: number; server: number },
  port: NonNullable<typeof parentPort>,
): void {
  for (const side of ["client", "server"] as const) {
    const w = side === "client" ? loop.clientCapture : loop.serverCapture;
    if (w && limits[side] > 0 && w.packets >= limits[side]) stopCapture(loop, side, port);
  }
}

function stopCapture(
  loop: Forwarding,
  side: "client" | "server",
  port: NonNullable<typeof parentPort>,
): void {
  const w = side === "client" ? loop.clientCapture : loop.serverCapture;
  if (!w) return;
  w.close();
  if (side === "client") loop.clientCapture = null;
  else loop.serverCapture = null;
  port.postMessage({ type: "capture-done", side, packets: w.packets } satisfies FromWorker);
}

try {
  run(workerData as WorkerInput);
} catch (e) {
  parentPort?.postMessage({
    type: "error",
    message: e instanceof Error ? e.message : String(e),
  } satisfies FromWorker);
  process.exitCode = 1;
}
