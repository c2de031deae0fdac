import { performance } from "node:perf_hooks";
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { FaultStage } from "../fullnat-sim/fault-stage.js";
import { Gateway } from "../fullnat-sim/gateway.js";
import { KernelTun, Poller } from "../tun/device.js";
import { CopyLoop, PacketLoop } from "./packet-loop.js";
import { GatewayControl, NullControl, type WorkerControl } from "./worker-control.js";
import type { FromWorker, ToWorker, WorkerInput } from "./worker-messages.js";

// The poll timeout bounds how long a stop request or a control message waits.
const POLL_MS = 50;
const clock = (): number => performance.timeOrigin + performance.now();

/** The packet worker: one loop between the two TUNs until the main thread sets the stop flag. */
function run(input: WorkerInput): void {
  const port = parentPort!;
  const post = (m: FromWorker) => port.postMessage(m);
  const ctl = new Int32Array(input.control);
  // The null forwarder has no gateway: its stats stay at zero.
  const stats = new Float64Array(input.stats);
  const client = KernelTun.fromFd("tun-c", input.clientFd);
  const server = KernelTun.fromFd("tun-r", input.serverFd);
  let loop: PacketLoop | CopyLoop;
  let control: WorkerControl;
  const opts = input.offload === true ? { offload: { mtu: input.config.mtu } } : {};
  if (input.forwarder === "null") {
    loop = new CopyLoop(client, server, clock, opts);
    control = new NullControl(loop, post, clock);
  } else {
    const gw = new Gateway(input.config, stats);
    const gateway = new PacketLoop(gw, client, server, clock, opts);
    if (input.faults !== undefined) gateway.faults = new FaultStage(input.faults, stats);
    loop = gateway;
    control = new GatewayControl(gateway, post, clock, input, stats);
  }
  const poller = new Poller([client.fd, server.fd]);
  let reported = false;
  post({ type: "ready" });
  let wait = POLL_MS;
  while (Atomics.load(ctl, 0) === 0) {
    if (poller.wait(wait) > 0) {
      if (poller.readable(0)) loop.fromClient();
      if (poller.readable(1)) loop.fromServer();
    }
    const now = clock();
    // Held packets (delay, reorder) shorten the wait to when the next is due.
    const due = loop.tick(now);
    wait = due < 0 ? POLL_MS : Math.max(0, Math.min(POLL_MS, Math.ceil(due)));
    wait = control.turn(now, wait);
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      control.handle(m.message as ToWorker);
    }
    control.checkCaptures();
    if (loop.firstError !== null && !reported) {
      reported = true;
      const e = loop.firstError;
      const message = e instanceof Error ? (e.stack ?? e.message) : String(e);
      post({ type: "packet-error", message });
    }
  }
  control.finish();
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
