import type { Worker } from "node:worker_threads";
import { parseScriptSpec } from "../craft/script-spec.js";
import { parseFaultConfig } from "../fullnat-sim/faults.js";
import type { CaptureSession, ScriptProgress, ScriptRun } from "./control.js";
import { RuntimeError, RuntimeErrorCode } from "./errors.js";
import type { FromWorker, ToWorker } from "./worker-messages.js";

type Side = "client" | "server";

/**
 * The main thread's end of the packet worker: each control request as an
 * async call, each worker message routed to the one request waiting for it.
 * One capture per side, one fault change, one restart and one script run
 * can be under way at a time (the worker answers them in order).
 */
export class WorkerLink {
  onReady: () => void = () => {};
  onFatal: (message: string) => void = () => {};
  /** Why the worker died, if it did. */
  fatal: string | null = null;
  /** The first packet the loop could not handle (it carries on). */
  packetError: string | null = null;
  private closed = false;
  private readonly captures = new Map<Side, (m: FromWorker) => void>();
  private faultsWaiter: ((m: FromWorker) => void) | null = null;
  private restartWaiter: ((m: FromWorker) => void) | null = null;
  private scriptWaiter: ((m: FromWorker) => void) | null = null;

  constructor(private readonly worker: Worker) {
    worker.on("message", (m: FromWorker) => this.receive(m));
  }

  private receive(m: FromWorker): void {
    switch (m.type) {
      case "ready":
        this.onReady();
        return;
      case "error":
        this.fatal = m.message;
        this.onFatal(m.message);
        return;
      case "packet-error":
        this.packetError ??= m.message;
        return;
      case "capture-started":
      case "capture-done":
        this.captures.get(m.side)?.(m);
        return;
      case "faults-set":
        this.take("faults")?.(m);
        return;
      case "restarted":
        this.take("restart")?.(m);
        return;
      case "script-progress":
      case "script-done":
        this.scriptWaiter?.(m);
        return;
      case "refused":
        if (m.request === "script") this.scriptWaiter?.(m);
        else if (m.request === "capture") this.captures.get(m.side ?? "client")?.(m);
        else this.take(m.request)?.(m);
        return;
    }
  }

  private take(which: "faults" | "restart"): ((m: FromWorker) => void) | null {
    const w = which === "faults" ? this.faultsWaiter : this.restartWaiter;
    if (which === "faults") this.faultsWaiter = null;
    else this.restartWaiter = null;
    return w;
  }

  private post(m: ToWorker): void {
    if (this.closed) throw new RuntimeError(RuntimeErrorCode.stopped, "the instance has stopped");
    this.worker.postMessage(m);
  }

  /** The instance is stopping: every waiting call ends now. */
  close(): void {
    this.closed = true;
    const gone = { type: "refused", request: "faults", message: "the instance stopped" } as const;
    for (const w of [...this.captures.values()])
      w({ type: "capture-done", side: "client", packets: -1 });
    this.captures.clear();
    this.take("faults")?.(gone);
    this.take("restart")?.(gone);
    this.scriptWaiter?.({ ...gone, request: "script" });
  }

  capture(side: Side, path: string, count: number): Promise<CaptureSession> {
    if (this.captures.has(side)) {
      return Promise.reject(
        new RuntimeError(RuntimeErrorCode.busy, `a capture of the ${side} side is running already`),
      );
    }
    return new Promise((resolve, reject) => {
      let packets = 0;
      let finish: (n: number) => void = () => {};
      const done = new Promise<number>((r) => {
        finish = r;
      });
      this.captures.set(side, (m) => {
        if (m.type === "capture-started") {
          resolve({
            path: m.path,
            done,
            stop: () => {
              if (!this.closed) this.worker.postMessage({ type: "capture-stop", side });
            },
          });
        } else if (m.type === "refused") {
          this.captures.delete(side);
          finish(0);
          reject(new RuntimeError(RuntimeErrorCode.refused, m.message));
        } else if (m.type === "capture-done") {
          this.captures.delete(side);
          // -1: the instance stopped before the worker could say how many.
          if (m.packets >= 0) packets = m.packets;
          finish(packets);
          reject(new RuntimeError(RuntimeErrorCode.stopped, "the instance stopped"));
        }
      });
      try {
        this.post({ type: "capture", side, path, count });
      } catch (e) {
        this.captures.delete(side);
        reject(e);
      }
    });
  }

  setFaults(plain: unknown): Promise<{ rules: number }> {
    // Checked here, so a bad rule is a GatewayError in the caller's hands.
    const faults = plain === null ? null : parseFaultConfig(plain);
    if (this.faultsWaiter !== null) {
      return Promise.reject(
        new RuntimeError(RuntimeErrorCode.busy, "a fault change is under way already"),
      );
    }
    return new Promise((resolve, reject) => {
      this.faultsWaiter = (m) => {
        if (m.type === "faults-set") resolve({ rules: m.rules });
        else if (m.type === "refused")
          reject(new RuntimeError(RuntimeErrorCode.refused, m.message));
      };
      this.postOr(reject, { type: "faults", faults });
    });
  }

  restart(): Promise<void> {
    if (this.restartWaiter !== null) {
      return Promise.reject(
        new RuntimeError(RuntimeErrorCode.busy, "a restart is under way already"),
      );
    }
    return new Promise((resolve, reject) => {
      this.restartWaiter = (m) => {
        if (m.type === "restarted") resolve();
        else if (m.type === "refused")
          reject(new RuntimeError(RuntimeErrorCode.refused, m.message));
      };
      this.postOr(reject, { type: "restart" });
    });
  }

  script(plain: unknown, onProgress: (p: ScriptProgress) => void): Promise<ScriptRun> {
    const spec = parseScriptSpec(plain);
    if (this.scriptWaiter !== null) {
      return Promise.reject(
        new RuntimeError(RuntimeErrorCode.busy, "scripted clients are running already"),
      );
    }
    return new Promise((resolve, reject) => {
      let finish: (p: ScriptProgress) => void = () => {};
      let fail: (e: Error) => void = () => {};
      const done = new Promise<ScriptProgress>((res, rej) => {
        finish = res;
        fail = rej;
      });
      // Awaited by whoever holds the run; unobserved it must not be an unhandled rejection.
      done.catch(() => {});
      const run: ScriptRun = {
        done,
        stop: () => {
          if (!this.closed) this.worker.postMessage({ type: "script-stop" });
        },
      };
      let started = false;
      this.scriptWaiter = (m) => {
        if (m.type === "refused") {
          this.scriptWaiter = null;
          const e = new RuntimeError(RuntimeErrorCode.refused, m.message);
          if (started) fail(e);
          else reject(e);
          return;
        }
        if (m.type !== "script-progress" && m.type !== "script-done") return;
        const p = { results: m.results, active: m.active, elapsedMs: m.elapsedMs };
        if (!started) {
          started = true;
          resolve(run);
        }
        if (m.type === "script-done") {
          this.scriptWaiter = null;
          finish(p);
        } else onProgress(p);
      };
      this.postOr(reject, { type: "script", spec });
      // The worker reports progress only after a second: the run is under way once posted.
      if (!this.closed && !started) {
        started = true;
        resolve(run);
      }
    });
  }

  private postOr(reject: (e: unknown) => void, m: ToWorker): void {
    try {
      this.post(m);
    } catch (e) {
      reject(e);
    }
  }
}
