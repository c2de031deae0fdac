import { rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { parseScriptSpec } from "../craft/script-spec.js";
import type { DecoderSettings } from "../decoder/maps.js";
import type { GatewayConfig } from "../fullnat-sim/config.js";
import { GatewayError } from "../fullnat-sim/errors.js";
import { type FaultConfig, parseFaultConfig } from "../fullnat-sim/faults.js";
import { newStats, Stat, statsObject } from "../fullnat-sim/stats.js";
import {
  checkPreconditions,
  createTopology,
  newInstanceId,
  removeState,
  runIp,
  SERVER_TUN,
  STATE_DIR,
  type Topology,
  TopologyAddress,
  writeState,
} from "../tun/topology.js";
import { type RsDecoder, startRsDecoder } from "./rs-decoder.js";
import type { Forwarder, FromWorker, ToWorker, WorkerInput } from "./worker.js";

export function controlSocketPath(id: string): string {
  return join(STATE_DIR, `${id}.sock`);
}

export interface InstanceInfo {
  readonly id: string;
  readonly clientNs: string;
  readonly serverNs: string;
  readonly socket: string;
  /** The cgroup `toasim exec rs` runs servers in, when the eBPF decoder is on. */
  readonly rsCgroup: string | null;
}

export interface InstanceOptions {
  /**
   * "gateway" (the default), or "null" for the benchmark's baseline: the
   * worker copies packets between the TUNs unmodified. Packets then reach
   * the server namespace still addressed client -> VIP, so in that mode
   * the server namespace also owns the VIP ranges and routes the client
   * ranges back into tun-r (see nullForwarderRoutes).
   */
  readonly forwarder?: Forwarder;
  /** Load the eBPF decoder for the server namespace with these settings. */
  readonly decoder?: DecoderSettings | null;
  /** Fault injection from the first packet. */
  readonly faults?: FaultConfig;
}

export interface RunningInstance {
  readonly info: InstanceInfo;
  /** Why the packet worker died, if it did (the instance then stops). */
  failure(): string | null;
  /** Resolves when the instance has stopped and everything is removed. */
  readonly stopped: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a gateway instance: namespaces and TUNs, the packet worker, and a
 * control socket for `toasim stats` and `toasim capture`. Everything it
 * creates is removed by stop(), and also if the process exits any other
 * way it can notice (see the exit hook); after a SIGKILL, `toasim down`.
 */
export async function startInstance(
  config: GatewayConfig,
  extraRsAddresses: readonly string[] = [],
  options: InstanceOptions = {},
): Promise<RunningInstance> {
  const forwarder = options.forwarder ?? "gateway";
  checkPreconditions();
  const id = newInstanceId();
  const clientNs = `toasim-${id}-c`;
  const serverNs = `toasim-${id}-r`;
  const socket = controlSocketPath(id);
  let topo: Topology | null = null;
  let worker: Worker | null = null;
  let server: Server | null = null;
  let decoder: RsDecoder | null = null;
  let done = false;
  const exitHook = () => teardownSync();
  const teardownSync = () => {
    if (done) return;
    done = true;
    process.off("exit", exitHook);
    try {
      // Before the namespaces: its tc filter is detached inside one.
      decoder?.close();
      topo?.destroy();
    } finally {
      rmSync(socket, { force: true });
      removeState(id);
    }
  };
  process.on("exit", exitHook);
  try {
    // createTopology writes the state file before the namespaces; add where
    // the control socket is, for the commands that talk to this instance.
    topo = createTopology({ id, extraRsAddresses });
    if (forwarder === "null") nullForwarderRoutes(serverNs);
    const startedAt = new Date().toISOString();
    writeState(id, { pid: process.pid, clientNs, serverNs, startedAt, socket });
    if (options.decoder) {
      decoder = await startRsDecoder(id, serverNs, options.decoder);
      writeState(id, {
        pid: process.pid,
        clientNs,
        serverNs,
        startedAt,
        socket,
        rsCgroup: decoder.cgroup,
        decoder: "ebpf",
      });
    }
  } catch (e) {
    teardownSync();
    throw e;
  }
  const statsBuf = newStats(true);
  const control = new SharedArrayBuffer(4);
  const input: WorkerInput = {
    config,
    clientFd: topo.clientTun.fd,
    serverFd: topo.serverTun.fd,
    stats: statsBuf.buffer as SharedArrayBuffer,
    control,
    forwarder,
    ...(options.faults ? { faults: options.faults } : {}),
  };
  const w = new Worker(new URL("./worker.js", import.meta.url), { workerData: input });
  worker = w;
  const waiters = new Map<string, (m: FromWorker) => void>();
  let workerError: string | null = null;
  const ready = new Promise<void>((resolve, reject) => {
    w.on("message", (m: FromWorker) => {
      if (m.type === "ready") resolve();
      else if (m.type === "error") {
        workerError = m.message;
        reject(new Error(`packet worker: ${m.message}`));
      } else if (m.type === "capture-started" || m.type === "capture-done") {
        waiters.get(m.side)?.(m);
      } else if (m.type === "faults-set" || m.type === "restarted") {
        const waiter = waiters.get(m.type);
        waiters.delete(m.type);
        waiter?.(m);
      } else if (m.type === "script-progress" || m.type === "script-done") {
        waiters.get("script")?.(m);
      } else if (m.type === "refused") {
        const k = { faults: "faults-set", restart: "restarted", script: "script" }[m.request];
        const waiter = waiters.get(k);
        waiters.delete(k);
        waiter?.(m);
      }
    });
    w.on("error", (e) => reject(e));
    w.on("exit", (code) => reject(new Error(`packet worker exited (${code}) before it was ready`)));
  });
  const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
  let stopping: Promise<void> | null = null;
  const clients = new Set<Socket>();
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      Atomics.store(new Int32Array(control), 0, 1);
      const timeout = new Promise<void>((r) => setTimeout(r, 2000).unref());
      await Promise.race([exited, timeout]);
      await worker?.terminate();
      // A capture client waits for the worker's answer: close it, or close() never returns.
      for (const c of clients) c.destroy();
      await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
      teardownSync();
    })();
    return stopping;
  };
  try {
    await ready;
  } catch (e) {
    await stop();
    throw e;
  }
  server = createServer((s) => {
    clients.add(s);
    s.on("close", () => clients.delete(s));
    handleControl(s, statsBuf, w, waiters, stop, decoder);
  });
  await new Promise<void>((resolve, reject) => {
    server!.once("error", reject);
    rmSync(socket, { force: true });
    server!.listen(socket, () => resolve());
  });
  return {
    info: { id, clientNs, serverNs, socket, rsCgroup: decoder?.cgroup ?? null },
    failure: () => workerError,
    stopped: exited.then(() => stop()),
    stop,
  };
}

/**
 * With the null forwarder nothing rewrites client -> VIP into LIP -> RS, so
 * the server namespace must accept packets for the VIPs (local routes: any
 * address of the VIP ranges, as the client namespace does for its ranges)
 * and send its replies to the clients back into tun-r. These go away with
 * the namespace.
 */
function nullForwarderRoutes(serverNs: string): void {
  const A = TopologyAddress;
  const r = ["-n", serverNs];
  runIp([...r, "route", "add", "local", A.vipRange4, "dev", "lo"]);
  runIp([...r, "-6", "route", "add", "local", A.vipRange6, "dev", "lo"]);
  runIp([...r, "route", "add", A.clientRange4, "dev", SERVER_TUN]);
  runIp([...r, "-6", "route", "add", A.clientRange6, "dev", SERVER_TUN]);
}

type ControlRequest =
  | { cmd: "stats" }
  | { cmd: "decoder" }
  | { cmd: "capture"; side: "client" | "server"; path: string; count: number }
  | { cmd: "capture-stop" }
  /** `faults`: the plain form parseFaultConfig reads, or null for none. */
  | { cmd: "faults"; faults: unknown }
  | { cmd: "restart" }
  /** `spec`: the plain form parseScriptSpec reads; answers with progress lines until done. */
  | { cmd: "script"; spec: unknown }
  | { cmd: "script-stop" }
  | { cmd: "stop" };

function handleControl(
  s: Socket,
  stats: Float64Array,
  w: Worker,
  waiters: Map<string, (m: FromWorker) => void>,
  stop: () => Promise<void>,
  decoder: RsDecoder | null,
): void {
  let input = "";
  s.setEncoding("utf8");
  s.on("error", () => {});
  let capturing: "client" | "server" | null = null;
  s.on("data", (chunk: string) => {
    input += chunk;
    const nl = input.indexOf("\n");
    if (nl < 0) return;
    let req: ControlRequest;
    try {
      req = JSON.parse(input.slice(0, nl)) as ControlRequest;
    } catch {
      s.end(`${JSON.stringify({ ok: false, error: "bad request" })}\n`);
      return;
    }
    input = input.slice(nl + 1);
    if (req.cmd === "script-stop") {
      w.postMessage({ type: "script-stop" } satisfies ToWorker);
      return;
    }
    if (req.cmd === "capture-stop") {
      if (capturing) w.postMessage({ type: "capture-stop", side: capturing } satisfies ToWorker);
      return;
    }
    if (req.cmd === "stats") {
      const o = statsObject(stats);
      s.end(`${JSON.stringify({ ok: true, stats: o, active: stats[Stat.connectionsActive] })}\n`);
    } else if (req.cmd === "capture") {
      const side = req.side;
      capturing = side;
      waiters.set(side, (m) => {
        s.write(`${JSON.stringify({ ok: true, ...m })}\n`);
        if (m.type === "capture-done") {
          waiters.delete(side);
          s.end();
        }
      });
      s.on("close", () => {
        if (waiters.has(side)) w.postMessage({ type: "capture-stop", side } satisfies ToWorker);
      });
      w.postMessage({ type: "capture", side, path: req.path, count: req.count } satisfies ToWorker);
    } else if (req.cmd === "faults" || req.cmd === "restart") {
      let msg: ToWorker;
      try {
        msg =
          req.cmd === "restart"
            ? { type: "restart" }
            : { type: "faults", faults: req.faults === null ? null : parseFaultConfig(req.faults) };
      } catch (e) {
        if (!(e instanceof GatewayError)) throw e;
        s.end(`${JSON.stringify({ ok: false, error: e.message })}\n`);
        return;
      }
      waiters.set(req.cmd === "restart" ? "restarted" : "faults-set", (m) => {
        const answer = m.type === "refused" ? { ok: false, error: m.message } : { ok: true, ...m };
        s.end(`${JSON.stringify(answer)}\n`);
      });
      w.postMessage(msg);
    } else if (req.cmd === "script") {
      let spec: ReturnType<typeof parseScriptSpec>;
      try {
        spec = parseScriptSpec(req.spec);
      } catch (e) {
        if (!(e instanceof GatewayError)) throw e;
        s.end(`${JSON.stringify({ ok: false, error: e.message })}\n`);
        return;
      }
      if (waiters.has("script")) {
        s.end(`${JSON.stringify({ ok: false, error: "scripted clients are running already" })}\n`);
        return;
      }
      waiters.set("script", (m) => {
        if (m.type === "refused") {
          s.end(`${JSON.stringify({ ok: false, error: m.message })}\n`);
          return;
        }
        s.write(`${JSON.stringify({ ok: true, ...m })}\n`);
        if (m.type === "script-done") {
          waiters.delete("script");
          s.end();
        }
      });
      // A client that goes away stops its run.
      s.on("close", () => {
        if (waiters.has("script")) w.postMessage({ type: "script-stop" } satisfies ToWorker);
      });
      w.postMessage({ type: "script", spec } satisfies ToWorker);
    } else if (req.cmd === "decoder") {
      s.end(
        `${JSON.stringify({ ok: true, decoder: decoder === null ? null : decoder.stats() })}\n`,
      );
    } else if (req.cmd === "stop") {
      s.end(`${JSON.stringify({ ok: true })}\n`);
      void stop();
    } else {
      s.end(`${JSON.stringify({ ok: false, error: "unknown command" })}\n`);
    }
  });
}
