import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { DecoderSettings } from "../decoder/maps.js";
import type { GatewayConfig } from "../fullnat-sim/config.js";
import type { FaultConfig } from "../fullnat-sim/faults.js";
import { newStats, statsObject } from "../fullnat-sim/stats.js";
import { packageRoot } from "../package-files.js";
import {
  checkPreconditions,
  clientNsName,
  createTopology,
  newInstanceId,
  type RsNetns,
  runIp,
  SERVER_TUN,
  serverAddresses,
  serverNsName,
  type Topology,
} from "../tun/topology.js";
import type { InstanceControl } from "./control.js";
import { type ControlServer, serveControl } from "./control-server.js";
import { ADDRESS_PLAN, defaultOffload } from "./defaults.js";
import { RuntimeError, RuntimeErrorCode } from "./errors.js";
import { onProcessEnd } from "./exit-hooks.js";
import {
  claimInstance,
  type InstanceState,
  removeState,
  STATE_DIR,
  writeState,
} from "./registry.js";
import { type RsDecoder, startRsDecoder } from "./rs-decoder.js";
import { WorkerLink } from "./worker-link.js";
import type { Forwarder, WorkerInput } from "./worker-messages.js";

export function controlSocketPath(id: string): string {
  return join(STATE_DIR, `${id}.sock`);
}

export interface InstanceInfo {
  readonly id: string;
  readonly clientNs: string;
  /** null: the server side is the root namespace (inside a toasim vm guest). */
  readonly serverNs: string | null;
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
  /** What other processes should know of the instance (profile, services): kept in its state file. */
  readonly meta?: Readonly<Record<string, unknown>>;
  /** The server side in a namespace of toasim's (the default) or the root namespace. */
  readonly rsNetns?: RsNetns;
  /** TUN offloads (TCP super-packets); defaultOffload() when absent. */
  readonly offload?: boolean;
}

export interface RunningInstance extends InstanceControl {
  readonly info: InstanceInfo;
  /** Why the packet worker died, if it did (the instance then stops). */
  failure(): string | null;
  /** Resolves when the instance has stopped and everything is removed. */
  readonly stopped: Promise<void>;
}

/**
 * Starts a gateway instance: namespaces and TUNs, the packet worker, and a
 * control socket that serves the same calls to `toasim stats`, `capture`,
 * `fault` and `restart` in other processes. Everything it creates is
 * removed by stop(), and also if the process exits or is ended by a signal
 * it does not handle (exit-hooks.ts); after a SIGKILL, `toasim down`.
 */
export async function startInstance(
  config: GatewayConfig,
  extraRsAddresses: readonly string[] = [],
  options: InstanceOptions = {},
): Promise<RunningInstance> {
  const forwarder = options.forwarder ?? "gateway";
  const offload = options.offload ?? defaultOffload();
  checkPreconditions();
  const workerModule = workerUrl();
  const id = newInstanceId();
  const socket = controlSocketPath(id);
  let topo: Topology | null = null;
  let decoder: RsDecoder | null = null;
  let done = false;
  let claimed = false;
  let unhook = (): void => {};
  const teardownSync = () => {
    if (done) return;
    done = true;
    unhook();
    try {
      // Before the namespaces: its tc filter is detached inside one.
      decoder?.close();
      topo?.destroy();
    } finally {
      rmSync(socket, { force: true });
      if (claimed) removeState(id);
    }
  };
  unhook = onProcessEnd(() => teardownSync());
  try {
    if (forwarder === "null" && options.rsNetns === "root") {
      throw new RuntimeError(
        RuntimeErrorCode.unsupported,
        "the null forwarder needs the server side in a namespace of toasim's (it routes the VIPs there)",
      );
    }
    const root = options.rsNetns === "root";
    // The record first, then what it records (see claimInstance).
    let state: InstanceState = {
      ...options.meta,
      pid: process.pid,
      clientNs: clientNsName(id),
      serverNs: root ? null : serverNsName(id),
      ...(root ? { rootAddresses: serverAddresses({ plan: ADDRESS_PLAN, extraRsAddresses }) } : {}),
      startedAt: new Date().toISOString(),
      socket,
    };
    claimInstance(id, state);
    claimed = true;
    topo = createTopology({
      id,
      plan: ADDRESS_PLAN,
      extraRsAddresses,
      rsNetns: options.rsNetns ?? "toasim",
      offload,
    });
    const { serverNs } = topo;
    if (forwarder === "null" && serverNs !== null) nullForwarderRoutes(serverNs);
    if (options.decoder) {
      decoder = await startRsDecoder(id, serverNs, options.decoder);
      state = { ...state, rsCgroup: decoder.cgroup, decoder: "ebpf" };
      writeState(id, state);
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
    offload,
    ...(options.faults ? { faults: options.faults } : {}),
  };
  // No flags of the caller's (--input-type, a loader): the worker is plain compiled JavaScript.
  const w = new Worker(workerModule, { workerData: input, execArgv: [] });
  const link = new WorkerLink(w);
  const ready = new Promise<void>((resolve, reject) => {
    link.onReady = resolve;
    w.on("error", (e) => reject(e));
    w.on("exit", (code) => reject(new Error(`packet worker exited (${code}) before it was ready`)));
    link.onFatal = (message) => reject(new Error(`packet worker: ${message}`));
  });
  const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
  let server: ControlServer | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      Atomics.store(new Int32Array(control), 0, 1);
      const timeout = new Promise<void>((r) => setTimeout(r, 2000).unref());
      await Promise.race([exited, timeout]);
      await w.terminate();
      link.close();
      await server?.close();
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
  const instance: RunningInstance = {
    info: {
      id,
      clientNs: topo.clientNs,
      serverNs: topo.serverNs,
      socket,
      rsCgroup: decoder?.cgroup ?? null,
    },
    failure: () => link.fatal,
    stopped: exited.then(() => stop()),
    stop,
    stats: async () => statsObject(statsBuf),
    decoderStats: async () => (decoder === null ? null : decoder.stats()),
    capture: (side, path, count) => link.capture(side, path, count),
    setFaults: (plain) => link.setFaults(plain),
    restart: () => link.restart(),
    script: (plain, onProgress) => link.script(plain, onProgress),
  };
  try {
    server = await serveControl(socket, instance);
  } catch (e) {
    await stop();
    throw e;
  }
  return instance;
}

/**
 * The packet worker's module. Running from the TypeScript sources (a test
 * runner's), there is none beside this file: a worker thread runs only
 * JavaScript, so the built one is used.
 */
function workerUrl(): URL {
  const here = new URL("./worker.js", import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = join(packageRoot(), "dist/runtime/worker.js");
  if (existsSync(built)) return pathToFileURL(built);
  throw new RuntimeError(
    RuntimeErrorCode.workerFailed,
    "the packet worker is not built (dist/runtime/worker.js): run npm run build",
  );
}

/**
 * With the null forwarder nothing rewrites client -> VIP into LIP -> RS, so
 * the server namespace must accept packets for the VIPs (local routes: any
 * address of the VIP ranges, as the client namespace does for its ranges)
 * and send its replies to the clients back into tun-r. These go away with
 * the namespace.
 */
function nullForwarderRoutes(serverNs: string): void {
  const A = ADDRESS_PLAN;
  const r = ["-n", serverNs];
  runIp([...r, "route", "add", "local", A.vipRange4, "dev", "lo"]);
  runIp([...r, "-6", "route", "add", "local", A.vipRange6, "dev", "lo"]);
  runIp([...r, "route", "add", A.clientRange4, "dev", SERVER_TUN]);
  runIp([...r, "-6", "route", "add", A.clientRange6, "dev", SERVER_TUN]);
}
