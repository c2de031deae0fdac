import { performance } from "node:perf_hooks";
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import type { GatewayConfig } from "../fullnat-sim/config.js";
import { Gateway } from "../fullnat-sim/gateway.js";
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
}

export type ToWorker =
  | {
      readonly type: "capture";
      readonly side: "client" | "server";
      readonly path: string;
      readonly count: number;
    }
  | { readonly type: "capture-stop"; readonly side: "client" | "server" };

export type FromWorker =
  | { readonly type: "ready" }
  | { readonly type: "capture-started"; readonly side: "client" | "server"; readonly path: string }
  | { readonly type: "capture-done"; readonly side: "client" | "server"; readonly packets: number }
  | { readonly type: "error"; readonly message: string }
  | { readonly type: "packet-error"; readonly message: string };

// The poll timeout bounds how long a stop request or a control message waits.
const POLL_MS = 50;

function run(input: WorkerInput): void {
  const port = parentPort!;
  const ctl = new Int32Array(input.control);
  // The null forwarder has no gateway: its stats stay at zero.
  const gw =
    input.forwarder === "null" ? null : new Gateway(input.config, new Float64Array(input.stats));
  const client = KernelTun.fromFd("tun-c", input.clientFd);
  const server = KernelTun.fromFd("tun-r", input.serverFd);
  const clock = () => performance.timeOrigin + performance.now();
  const loop: Forwarding =
    gw === null ? new CopyLoop(client, server, clock) : new PacketLoop(gw, client, server, clock);
  const poller = new Poller([client.fd, server.fd]);
  const limits = { client: 0, server: 0 };
  let reported = false;
  port.postMessage({ type: "ready" } satisfies FromWorker);
  while (Atomics.load(ctl, 0) === 0) {
    if (poller.wait(POLL_MS) > 0) {
      if (poller.readable(0)) loop.fromClient();
      if (poller.readable(1)) loop.fromServer();
    }
    gw?.expire(clock());
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      control(m.message as ToWorker, loop, limits, port);
    }
    checkCapture(loop, limits, port);
    if (loop.firstError !== null && !reported) {
      reported = true;
      const e = loop.firstError;
      const message = e instanceof Error ? (e.stack ?? e.message) : String(e);
      port.postMessage({ type: "packet-error", message } satisfies FromWorker);
    }
  }
  stopCapture(loop, "client", port);
  stopCapture(loop, "server", port);
}

function control(
  m: ToWorker,
  loop: Forwarding,
  limits: { client: number; server: number },
  port: NonNullable<typeof parentPort>,
): void {
  if (m.type === "capture") {
    stopCapture(loop, m.side, port);
    const w = new PcapWriter(m.path);
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
