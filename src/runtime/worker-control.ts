import { ScriptedClients } from "../craft/scripted-clients.js";
import { FaultStage } from "../fullnat-sim/fault-stage.js";
import type { FaultConfig } from "../fullnat-sim/faults.js";
import { Gateway } from "../fullnat-sim/gateway.js";
import { Stat } from "../fullnat-sim/stats.js";
import { PcapWriter } from "../tun/pcap-writer.js";
import type { Forwarding, PacketLoop } from "./packet-loop.js";
import type { FromWorker, ToWorker, WorkerInput } from "./worker-messages.js";

type Side = "client" | "server";
export type Post = (m: FromWorker) => void;

/** How often scripted clients report their progress, in ms. */
const SCRIPT_REPORT_MS = 1000;

/**
 * The packet worker's answers to the main thread's control messages, built
 * once for the loop it runs: captures work on any loop; restarts, faults
 * and scripted clients need the gateway (GatewayControl), and the null
 * forwarder of the benchmark refuses them (NullControl).
 */
export abstract class WorkerControl {
  private readonly limits = { client: 0, server: 0 };

  constructor(
    protected readonly loop: Forwarding,
    protected readonly post: Post,
    protected readonly clock: () => number,
  ) {}

  handle(m: ToWorker): void {
    switch (m.type) {
      case "capture":
        this.capture(m.side, m.path, m.count);
        return;
      case "capture-stop":
        this.stopCapture(m.side);
        return;
      case "faults":
        this.faults(m.faults);
        return;
      case "restart":
        this.restart();
        return;
      case "script":
        this.script(m);
        return;
      case "script-stop":
        this.stopScript();
        return;
    }
  }

  /** What the loop does between wake-ups besides packets; returns how long it may sleep (ms). */
  abstract turn(now: number, wait: number): number;

  protected abstract faults(faults: FaultConfig | null): void;
  protected abstract restart(): void;
  protected abstract script(m: Extract<ToWorker, { type: "script" }>): void;
  protected abstract stopScript(): void;

  /** Captures that reached their packet count are closed. */
  checkCaptures(): void {
    for (const side of ["client", "server"] as const) {
      const w = this.writer(side);
      if (w && this.limits[side] > 0 && w.packets >= this.limits[side]) this.stopCapture(side);
    }
  }

  /** The loop is ending: captures closed and reported. */
  finish(): void {
    this.stopCapture("client");
    this.stopCapture("server");
  }

  protected refuse(request: "faults" | "restart" | "script", message: string): void {
    this.post({ type: "refused", request, message });
  }

  private writer(side: Side): PcapWriter | null {
    return side === "client" ? this.loop.clientCapture : this.loop.serverCapture;
  }

  private capture(side: Side, path: string, count: number): void {
    this.stopCapture(side);
    let w: PcapWriter;
    try {
      w = new PcapWriter(path);
    } catch (e) {
      // A file that cannot be written must not end the gateway.
      this.post({
        type: "refused",
        request: "capture",
        side,
        message: `cannot write ${path}: ${e instanceof Error ? e.message : String(e)}`,
      });
      return;
    }
    // Exactly `count`: packets of the same batch past it are not written.
    w.limit = count;
    if (side === "client") this.loop.clientCapture = w;
    else this.loop.serverCapture = w;
    this.limits[side] = count;
    this.post({ type: "capture-started", side, path });
  }

  private stopCapture(side: Side): void {
    const w = this.writer(side);
    if (!w) return;
    w.close();
    if (side === "client") this.loop.clientCapture = null;
    else this.loop.serverCapture = null;
    this.post({ type: "capture-done", side, packets: w.packets });
  }
}

/** Control of the gateway's loop: restarts, faults, scripted clients. */
export class GatewayControl extends WorkerControl {
  private scriptStart = 0;
  private scriptReported = 0;

  constructor(
    protected override readonly loop: PacketLoop,
    post: Post,
    clock: () => number,
    private readonly input: WorkerInput,
    private readonly stats: Float64Array,
  ) {
    super(loop, post, clock);
  }

  turn(now: number, wait: number): number {
    const loop = this.loop;
    loop.gateway.expire(now);
    const script = loop.script;
    if (script === null) return wait;
    const want = script.tick(now);
    loop.fromScript();
    const done = script.done;
    if (done || now - this.scriptReported >= SCRIPT_REPORT_MS) {
      this.scriptReported = now;
      this.post({
        type: done ? "script-done" : "script-progress",
        results: script.results,
        active: script.active,
        elapsedMs: now - this.scriptStart,
      });
    }
    if (done) loop.script = null;
    return Math.min(wait, script.pending > 0 ? 0 : Math.ceil(want));
  }

  override finish(): void {
    this.loop.faults?.flush(this.loop);
    super.finish();
  }

  protected faults(faults: FaultConfig | null): void {
    const loop = this.loop;
    loop.faults?.flush(loop);
    loop.faults = faults === null ? null : new FaultStage(faults, this.stats);
    this.post({ type: "faults-set", rules: faults?.rules.length ?? 0 });
  }

  protected restart(): void {
    // Counters carry on (they describe the run); connections and ports start empty.
    this.loop.gateway = new Gateway(this.input.config, this.stats);
    this.stats[Stat.connectionsActive] = 0;
    this.post({ type: "restarted" });
  }

  protected script(m: Extract<ToWorker, { type: "script" }>): void {
    if (this.loop.script !== null) {
      this.refuse("script", "scripted clients are running already");
      return;
    }
    this.scriptStart = this.clock();
    this.scriptReported = this.scriptStart;
    this.loop.script = new ScriptedClients(m.spec, this.clock);
  }

  protected stopScript(): void {
    const s = this.loop.script;
    if (s === null) return;
    this.loop.script = null;
    this.post({
      type: "script-done",
      results: s.results,
      active: s.active,
      elapsedMs: this.clock() - this.scriptStart,
    });
  }
}

/** Control of the null forwarder: captures only. */
export class NullControl extends WorkerControl {
  turn(_now: number, wait: number): number {
    return wait;
  }

  protected faults(): void {
    this.refuse("faults", "the null forwarder has no gateway");
  }

  protected restart(): void {
    this.refuse("restart", "the null forwarder has no gateway");
  }

  protected script(): void {
    this.refuse("script", "the null forwarder has no gateway");
  }

  protected stopScript(): void {}
}
