import type { ScriptResults } from "../craft/scripted-clients.js";
import type { DecoderStats } from "../decoder/decoder.js";
import type { StatName } from "../fullnat-sim/stats.js";

/**
 * What can be asked of a running instance, whether it runs in this process
 * (RunningInstance) or in another one (RemoteControl, over the control
 * socket that serves the same calls). Plain forms (faults, scripts) are
 * checked by whoever runs the gateway, so a bad value is refused the same
 * way both ways.
 */
export interface InstanceControl {
  /** The gateway's counters, by name. */
  stats(): Promise<Record<StatName, number>>;
  /** The eBPF decoder's counters, or null when the instance loaded none. */
  decoderStats(): Promise<DecoderStats | null>;
  /** Starts writing a pcap of one side; resolves once the file is open. */
  capture(side: "client" | "server", path: string, count: number): Promise<CaptureSession>;
  /** Replaces the fault rules (the plain form of a config file), or switches them off (null). */
  setFaults(plain: unknown): Promise<{ rules: number }>;
  /** A gateway restart: the connection table starts empty. */
  restart(): Promise<void>;
  /** Scripted clients (the plain form of a script); resolves once they run. */
  script(plain: unknown, onProgress: (p: ScriptProgress) => void): Promise<ScriptRun>;
  /** Stops the instance and removes everything it made. */
  stop(): Promise<void>;
}

export interface CaptureSession {
  readonly path: string;
  /** Resolves with the packet count once the file is closed (stop, count reached, instance gone). */
  readonly done: Promise<number>;
  /** Asks for the file to be closed; `done` then resolves. */
  stop(): void;
}

export interface ScriptProgress {
  readonly results: ScriptResults;
  readonly active: number;
  readonly elapsedMs: number;
}

export interface ScriptRun {
  /** Resolves with the final progress when every connection has finished, or after stop(). */
  readonly done: Promise<ScriptProgress>;
  stop(): void;
}
