import { describe, expect, it } from "vitest";
import { peerOf, ScriptedClients, type ScriptSpec } from "../../src/craft/scripted-clients.js";
import { LINUX_SEGMENT, LINUX_SYN, parseSegmentOptions } from "../../src/craft/segment-options.js";
import { FaultStage } from "../../src/fullnat-sim/fault-stage.js";
import { parseFaultConfig } from "../../src/fullnat-sim/faults.js";
import type { ProfileName } from "../../src/fullnat-sim/profiles.js";
import { formatIp, parseEndpoint, parseIp } from "../../src/option-codec/address.js";
import { toHex } from "../../src/option-codec/bytes.js";
import { IpProtocol } from "../../src/option-codec/ipv4.js";
import {
  emitPacket,
  ipHeaderFor,
  type L4Repr,
  type PacketRepr,
  parsePacket,
} from "../../src/option-codec/packet.js";
import { TcpFlag, type TcpRepr } from "../../src/option-codec/tcp.js";
import { PacketLoop } from "../../src/runtime/packet-loop.js";
import { MemoryTun } from "../../src/tun/memory-device.js";
import { gatewayFor } from "./helpers/gateway.js";
import { expectValidChecksums } from "./helpers/packets.js";

// Scripted clients through the real gateway, against a small in-memory
// server that answers as the reader servers do: one JSON line with the
// peer it learned from the TOA (or the LIP it saw when there was none).

const enc = new TextEncoder();

/** A TCP server over the server MemoryTun: SYN-ACK, TOA read, JSON answer with FIN. */
class FakeServer {
  private readonly conns = new Map<
    string,
    { isn: number; rcv: number; peer: string; port: number; answered: boolean }
  >();
  answered = 0;
  dropSynAcks = 0;

  constructor(private readonly dev: MemoryTun) {}

  serve(): number {
    let n = 0;
    for (const bytes of this.dev.drain()) {
      expectValidChecksums(bytes, bytes.length);
      const p = parsePacket(bytes);
      if (!("tcp" in p.l4)) continue;
      this.segment(p, p.l4.tcp);
      n++;
    }
    return n;
  }

  private segment(p: PacketRepr, t: TcpRepr): void {
    const [src, dst] = p.ip.family === 4 ? [p.ip.v4.src, p.ip.v4.dst] : [p.ip.v6.src, p.ip.v6.dst];
    const key = `${formatIp(src)}:${t.srcPort}`;
    let c = this.conns.get(key);
    const toa = t.options.find((o) => o.kind === 254);
    if (t.flags & TcpFlag.syn) {
      c = {
        isn: 7000,
        rcv: (t.seq + 1) >>> 0,
        peer: formatIp(src),
        port: t.srcPort,
        answered: false,
      };
      this.conns.set(key, c);
      this.reply(dst, src, t, c.isn, c.rcv, TcpFlag.syn | TcpFlag.ack, new Uint8Array(0));
      return;
    }
    if (!c) return;
    if (toa && "data" in toa) {
      const d = toa.data;
      c.port = (d[0]! << 8) | d[1]!;
      c.peer = formatIp(d.slice(2));
    }
    const len = t.payload.length;
    if (len > 0 && !c.answered && t.seq === c.rcv) {
      c.rcv = (c.rcv + len) >>> 0;
      c.answered = true;
      this.answered++;
      const line = enc.encode(`${JSON.stringify({ peer: { address: c.peer, port: c.port } })}\n`);
      this.reply(dst, src, t, c.isn + 1, c.rcv, TcpFlag.ack | TcpFlag.psh | TcpFlag.fin, line);
    } else if (t.flags & TcpFlag.fin) {
      c.rcv = (t.seq + len + 1) >>> 0;
      this.reply(dst, src, t, c.isn + 2 + 80, c.rcv, TcpFlag.ack, new Uint8Array(0));
    }
  }

  private reply(
    from: Uint8Array,
    to: Uint8Array,
    t: TcpRepr,
    seq: number,
    ack: number,
    flags: number,
    payload: Uint8Array,
  ): void {
    const l4: L4Repr = {
      protocol: IpProtocol.tcp,
      tcp: {
        srcPort: t.dstPort,
        dstPort: t.srcPort,
        seq,
        ack,
        flags,
        window: 65535,
        urgent: 0,
        options: [],
        payload,
      },
    };
    this.dev.inject(emitPacket({ ip: ipHeaderFor(from, to, l4), l4 }));
  }
}

function spec(o: Partial<ScriptSpec> = {}): ScriptSpec {
  return {
    target: parseEndpoint("203.0.113.10:80"),
    base: parseIp("198.51.100.128"),
    count: 100,
    portBase: 20000,
    connections: 1000,
    concurrency: 64,
    rate: 0,
    request: enc.encode("hello\n"),
    synOptions: parseSegmentOptions(["mss:1460", "sack-perm", "nop", "ws:7"], "syn"),
    ackOptions: parseSegmentOptions([], "ack"),
    segmentOptions: parseSegmentOptions([], "seg"),
    dataOnAck: false,
    timeoutMs: 10_000,
    expectPeer: true,
    ...o,
  };
}

function run(profile: ProfileName, s: ScriptSpec, faults?: unknown) {
  let now = 1_000_000;
  const gw = gatewayFor(profile, { maxConnections: 200_000 });
  const client = new MemoryTun("mem-c");
  const serverDev = new MemoryTun("mem-s");
  const loop = new PacketLoop(gw, client, serverDev, () => now);
  if (faults !== undefined) loop.faults = new FaultStage(parseFaultConfig(faults), gw.stats);
  const script = new ScriptedClients(s, () => now);
  loop.script = script;
  const server = new FakeServer(serverDev);
  for (let round = 0; round < 100_000 && !script.done; round++) {
    const wait = script.tick(now);
    loop.pump();
    const served = server.serve();
    loop.pump();
    if (served === 0 && script.pending === 0) now += Math.max(1, Math.min(wait, 50));
    loop.tick(now);
  }
  return { script, server, client, gw };
}

describe("scripted clients through the gateway", () => {
  it("1,000 connections from 100 IPv4 addresses: every server view matches, nothing reaches the client TUN", () => {
    const { script, server, client } = run("dpvs", spec());
    expect(script.done).toBe(true);
    expect(script.results).toMatchObject({
      opened: 1000,
      completed: 1000,
      matched: 1000,
      mismatched: 0,
    });
    expect(script.results.failed).toEqual({ timeout: 0, reset: 0, "bad-answer": 0 });
    expect(server.answered).toBe(1000);
    expect(client.written).toEqual([]);
  });

  it("IPv6 sources over the v6 VIP, with timestamps on every segment", () => {
    const s = spec({
      target: parseEndpoint("[2001:db8:f::10]:80"),
      base: parseIp("2001:db8:c:5c::1"),
      count: 250,
      connections: 500,
      synOptions: parseSegmentOptions(LINUX_SYN, "syn"),
      ackOptions: parseSegmentOptions(LINUX_SEGMENT, "ack"),
      segmentOptions: parseSegmentOptions(LINUX_SEGMENT, "seg"),
    });
    const { script } = run("dpvs", s);
    expect(script.results).toMatchObject({ completed: 500, matched: 500, mismatched: 0 });
    expect(script.clientAddress(251)).toBe("2001:db8:c:5c::2");
    expect(script.clientPort(251)).toBe(20001);
  });

  it("reports the connections whose server saw the gateway: tencent with the handshake ACK lost", () => {
    const { script } = run("tencent", spec({ connections: 20, count: 10 }), {
      rules: [{ class: "handshake-ack", action: "drop" }],
    });
    expect(script.results).toMatchObject({ completed: 20, matched: 0, mismatched: 20 });
    expect(script.results.mismatches[0]).toEqual({
      client: "198.51.100.128",
      port: 20000,
      seen: expect.stringMatching(/^192\.0\.2\.1\d\d port \d+$/),
    });
    expect(script.results.mismatches).toHaveLength(10);
  });

  it("retransmits a lost SYN and a lost request, and completes", () => {
    const { script } = run("dpvs", spec({ connections: 10 }), {
      rules: [
        { class: "syn", action: "drop", count: 3 },
        { class: "data", action: "drop", count: 2 },
      ],
    });
    expect(script.results).toMatchObject({ completed: 10, matched: 10 });
    expect(script.results.retransmits).toBeGreaterThanOrEqual(5);
  });

  it("gives up after the timeout with a reset, counted by reason", () => {
    const { script } = run("dpvs", spec({ connections: 3, timeoutMs: 2500 }), {
      rules: [{ direction: "to-client", class: "syn-ack", action: "drop" }],
    });
    expect(script.results.failed.timeout).toBe(3);
    expect(script.results.completed).toBe(0);
  });

  it("writes the option bytes asked for, a forged TOA among them", () => {
    const o = parseSegmentOptions(["nop", "nop", "ts", "toa:254:198.51.100.66:4242"], "ack");
    expect(toHex(o.bytes)).toBe("0101080a0000000000000000fe081092c6336442");
    expect(o.tsAt).toBe(4);
    const full = parseSegmentOptions(["nop", "nop", "ts", "nop", "nop", "sack:3"], "ack");
    expect(full.bytes.length).toBe(40);
    expect(() => parseSegmentOptions(["ts", "sack:4"], "ack")).toThrow(
      /44 bytes of options; a TCP header holds 40/,
    );
    expect(() => parseSegmentOptions(["mss:0"], "syn")).toThrow(
      /syn\[0\]: "mss:0": wants an integer from 1 to 65535/,
    );
    expect(() => parseSegmentOptions(["tfo"], "syn")).toThrow(/unknown option "tfo"/);
  });

  it("reads the reader servers' report line", () => {
    expect(peerOf('{"peer":{"family":4,"address":"198.51.100.7","port":4}}\n')).toEqual({
      address: "198.51.100.7",
      port: 4,
    });
    expect(peerOf("HTTP/1.0 200 OK\r\n")).toBeNull();
    expect(peerOf('{"peer":{"ok":false,"errno":107}}')).toBeNull();
  });
});
