import type { ScriptResults, ScriptSpec } from "../craft/scripted-clients.js";
import type { GatewayConfig } from "../fullnat-sim/config.js";
import type { FaultConfig } from "../fullnat-sim/faults.js";

// The messages between the main thread and the packet worker (worker.ts);
// worker-link.ts is the main thread's side, worker-control.ts the worker's.

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
  /** The TUN fds were opened with IFF_VNET_HDR and offloads (false when absent). */
  readonly offload?: boolean;
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
