import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseScriptSpec } from "../../src/craft/script-spec.js";
import { faultSpecToRule } from "../../src/fullnat-sim/fault-spec.js";
import { parseFaultConfig } from "../../src/fullnat-sim/faults.js";
import { Gateway } from "../../src/fullnat-sim/gateway.js";
import { newStats, Stat } from "../../src/fullnat-sim/stats.js";
import { TcpFlag } from "../../src/option-codec/tcp.js";
import { CopyLoop, PacketLoop } from "../../src/runtime/packet-loop.js";
import { GatewayControl, NullControl } from "../../src/runtime/worker-control.js";
import type { FromWorker, WorkerInput } from "../../src/runtime/worker-messages.js";
import { MemoryTun } from "../../src/tun/memory-device.js";
import { gatewayConfigFor } from "./helpers/gateway.js";
import { C4, tcpPacket, V4 } from "./helpers/packets.js";

// The packet worker's control messages, answered by the object built for its
// loop, over in-memory devices: what each message does and what it answers.

const tmp = mkdtempSync(join(tmpdir(), "toasim-worker-control-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const config = gatewayConfigFor("dpvs", { maxConnections: 64 });

let now = 1_000_000;
const clock = () => now;

const syn = (port: number): Uint8Array =>
  tcpPacket(C4, V4, { flags: TcpFlag.syn, sport: port, options: [], payload: new Uint8Array(0) });

function gatewayWorker() {
  const stats = newStats();
  const client = new MemoryTun("mem-c");
  const server = new MemoryTun("mem-s");
  const loop = new PacketLoop(new Gateway(config, stats), client, server, clock);
  const posted: FromWorker[] = [];
  const input = { config } as WorkerInput;
  const control = new GatewayControl(loop, (m) => posted.push(m), clock, input, stats);
  return { stats, client, server, loop, posted, control };
}

describe("the packet worker's control of the gateway loop", () => {
  it("restart: a new gateway with an empty table, counters kept", () => {
    const w = gatewayWorker();
    w.client.inject(syn(40000));
    w.loop.pump();
    expect(w.loop.gateway.conns.size).toBe(1);
    const before = w.loop.gateway;
    w.control.handle({ type: "restart" });
    expect(w.posted).toEqual([{ type: "restarted" }]);
    expect(w.loop.gateway).not.toBe(before);
    expect(w.loop.gateway.conns.size).toBe(0);
    expect(w.stats[Stat.connectionsActive]).toBe(0);
    expect(w.stats[Stat.connectionsCreated]).toBe(1);
  });

  it("faults: set (rules counted), then off", () => {
    const w = gatewayWorker();
    const faults = parseFaultConfig({ rules: [faultSpecToRule("to-server:syn:drop", "--fault")] });
    w.control.handle({ type: "faults", faults });
    expect(w.posted).toEqual([{ type: "faults-set", rules: 1 }]);
    w.client.inject(syn(40001));
    w.loop.pump();
    expect(w.server.drain()).toHaveLength(0);
    expect(w.stats[Stat.faultDropped]).toBe(1);
    w.control.handle({ type: "faults", faults: null });
    expect(w.loop.faults).toBeNull();
    w.client.inject(syn(40002));
    w.loop.pump();
    expect(w.server.drain()).toHaveLength(1);
  });

  it("captures: started, closed at their count with the packets written; an unwritable path is refused", () => {
    const w = gatewayWorker();
    const path = join(tmp, "client.pcap");
    w.control.handle({ type: "capture", side: "client", path, count: 2 });
    expect(w.posted).toEqual([{ type: "capture-started", side: "client", path }]);
    for (const p of [40010, 40011, 40012]) w.client.inject(syn(p));
    w.loop.pump();
    w.control.checkCaptures();
    expect(w.posted[1]).toEqual({ type: "capture-done", side: "client", packets: 2 });
    expect(w.loop.clientCapture).toBeNull();
    // A pcap header (24 bytes), then two records of a 40-byte SYN (16 + 40).
    expect(readFileSync(path).length).toBe(24 + 2 * (16 + 40));
    w.control.handle({
      type: "capture",
      side: "server",
      path: join(tmp, "no/such/dir/x.pcap"),
      count: 0,
    });
    expect(w.posted[2]).toMatchObject({ type: "refused", request: "capture", side: "server" });
    expect((w.posted[2] as { message: string }).message).toMatch(/^cannot write .*ENOENT/);
  });

  it("scripted clients: one run at a time, progress and the end reported", () => {
    const w = gatewayWorker();
    const spec = parseScriptSpec({ target: "203.0.113.10:80", connections: 1, timeoutMs: 1000 });
    w.control.handle({ type: "script", spec });
    expect(w.loop.script).not.toBeNull();
    w.control.handle({ type: "script", spec });
    expect(w.posted).toEqual([
      { type: "refused", request: "script", message: "scripted clients are running already" },
    ]);
    // Nobody answers its SYNs: it times out, and says so once done.
    for (let i = 0; i < 40 && w.loop.script !== null; i++) {
      now += 100;
      w.control.turn(now, 50);
    }
    expect(w.loop.script).toBeNull();
    const done = w.posted.find((m) => m.type === "script-done");
    expect(done).toMatchObject({ type: "script-done", active: 0 });
    expect(w.server.drain().length).toBeGreaterThan(0);
  });

  it("finish closes the captures and reports them", () => {
    const w = gatewayWorker();
    const path = join(tmp, "server.pcap");
    w.control.handle({ type: "capture", side: "server", path, count: 0 });
    w.control.finish();
    expect(w.posted.at(-1)).toEqual({ type: "capture-done", side: "server", packets: 0 });
  });
});

describe("the packet worker's control of the null forwarder", () => {
  it("refuses what needs a gateway, and still captures", () => {
    const posted: FromWorker[] = [];
    const loop = new CopyLoop(new MemoryTun("mem-c"), new MemoryTun("mem-s"), clock);
    const control = new NullControl(loop, (m) => posted.push(m), clock);
    control.handle({ type: "restart" });
    control.handle({ type: "faults", faults: null });
    control.handle({ type: "script", spec: parseScriptSpec({ target: "203.0.113.10:80" }) });
    expect(
      posted.map((m) => (m.type === "refused" ? `${m.request}: ${m.message}` : m.type)),
    ).toEqual([
      "restart: the null forwarder has no gateway",
      "faults: the null forwarder has no gateway",
      "script: the null forwarder has no gateway",
    ]);
    const path = join(tmp, "null.pcap");
    control.handle({ type: "capture", side: "client", path, count: 0 });
    expect(posted.at(-1)).toEqual({ type: "capture-started", side: "client", path });
    expect(control.turn(now, 17)).toBe(17);
  });
});
