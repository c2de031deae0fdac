import { describe, expect, it } from "vitest";
import { DEFAULT_TIMEOUTS, type GatewayConfig } from "../../src/fullnat-sim/config.js";
import { ConnState, ConnTable } from "../../src/fullnat-sim/conn-table.js";
import { Gateway } from "../../src/fullnat-sim/gateway.js";
import { resolveProfile } from "../../src/fullnat-sim/profiles.js";
import { Stat } from "../../src/fullnat-sim/stats.js";
import { parseEndpoint, parseIp } from "../../src/option-codec/address.js";
import { TcpFlag } from "../../src/option-codec/tcp.js";
import { gatewayConfigFor } from "./helpers/gateway.js";
import { tcpPacket } from "./helpers/packets.js";

const vip = parseEndpoint("203.0.113.10:80");
const rsA = parseEndpoint("192.0.2.10:8080");
const rsB = parseEndpoint("192.0.2.11:8080");
const buf = new Uint8Array(2048);

function config(over: Partial<GatewayConfig> = {}): GatewayConfig {
  return gatewayConfigFor("dpvs", {
    services: [
      { vip, proto: "tcp", servers: [{ endpoint: rsA, weight: 1 }], scheduler: "rr" },
      {
        vip: parseEndpoint("203.0.113.10:53"),
        proto: "udp",
        servers: [{ endpoint: rsA, weight: 1 }],
        scheduler: "rr",
      },
    ],
    lips4: [parseIp("192.0.2.100"), parseIp("192.0.2.101")],
    lips6: [],
    portMin: 1025,
    portMax: 65535,
    maxConnections: 100_000,
    ...over,
  });
}

function syn(clientIp: string, port: number): number {
  const p = tcpPacket(parseIp(clientIp), vip.addr, {
    sport: port,
    seq: 1,
    ack: 0,
    flags: TcpFlag.syn,
    window: 1,
    options: [],
    payload: new Uint8Array(0),
  });
  buf.set(p);
  return p.length;
}

describe("gateway connection handling", () => {
  it("spreads connections 3:1 with weighted round-robin", () => {
    const gw = new Gateway(
      config({
        services: [
          {
            vip,
            proto: "tcp",
            servers: [
              { endpoint: rsA, weight: 3 },
              { endpoint: rsB, weight: 1 },
            ],
            scheduler: "wrr",
          },
        ],
      }),
    );
    const seen: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      expect(gw.fromClient(buf, syn("198.51.100.7", 10000 + i), 0)).toBeGreaterThan(0);
      const d = `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`;
      seen[d] = (seen[d] ?? 0) + 1;
    }
    expect(seen).toEqual({ "192.0.2.10": 30, "192.0.2.11": 10 });
  });

  it("finds 50,000 connections by both keys, survives growth and removal", () => {
    const gw = new Gateway(config());
    for (let i = 0; i < 50_000; i++) {
      const a = `198.51.100.${(i % 250) + 1}`;
      expect(gw.fromClient(buf, syn(a, 1024 + Math.floor(i / 250)), 0)).toBeGreaterThan(0);
    }
    const t = gw.conns;
    expect(t.size).toBe(50_000);
    expect(gw.stats[Stat.connectionsActive]).toBe(50_000);
    // Every connection is found again from its client side (no new one made).
    for (let i = 0; i < 50_000; i += 97) {
      gw.fromClient(buf, syn(`198.51.100.${(i % 250) + 1}`, 1024 + Math.floor(i / 250)), 0);
    }
    expect(t.size).toBe(50_000);
    expect(t.byteSize / t.capacity).toBeLessThan(100);
    // Everything expires once its SYN timeout has passed.
    let removed = 0;
    while (t.size > 0) removed += gw.expire(DEFAULT_TIMEOUTS.tcpSyn + 1, 10_000);
    expect(removed).toBe(50_000);
    expect(gw.stats[Stat.connectionsExpired]).toBe(50_000);
  });

  it("keeps every column of every connection when the table grows", () => {
    const t = new ConnTable(1000, 4);
    const addr = new Uint8Array(16);
    const ids: number[] = [];
    for (let i = 0; i < 40; i++) {
      addr.fill(i + 1);
      const c = t.add(6, addr, 0, i % 2 === 0 ? 4 : 16, 1000 + i, i, i + 1, 4, i % 3, 2000 + i);
      t.datagrams[c] = i * 3;
      t.expires[c] = i + 0.5;
      t.streamDelta[c] = -(i + 1);
      ids.push(c);
    }
    expect(t.capacity).toBe(64);
    // 67 bytes a connection: 51 in the columns, 16 in the two chains' links and buckets.
    expect(t.byteSize).toBe(64 * 67);
    ids.forEach((c, i) => {
      addr.fill(i + 1);
      const len = i % 2 === 0 ? 4 : 16;
      expect(t.findByClient(6, addr, 0, len, 1000 + i, i)).toBe(c);
      expect(t.findByServer(6, 4, i % 3, 2000 + i)).toBe(c);
      expect([t.datagrams[c], t.expires[c], t.streamDelta[c], t.server[c]]).toEqual([
        i * 3,
        i + 0.5,
        -(i + 1),
        i + 1,
      ]);
      expect(t.clientAddr.subarray(c * 16, c * 16 + len).every((b) => b === i + 1)).toBe(true);
    });
  });

  it("drops with ports-exhausted when every LIP port is taken, and reuses freed ports", () => {
    const gw = new Gateway(
      config({ lips4: [parseIp("192.0.2.100")], portMin: 2000, portMax: 2001 }),
    );
    expect(gw.fromClient(buf, syn("198.51.100.7", 1), 0)).toBeGreaterThan(0);
    expect(gw.fromClient(buf, syn("198.51.100.7", 2), 0)).toBeGreaterThan(0);
    expect(gw.fromClient(buf, syn("198.51.100.7", 3), 0)).toBe(-1);
    expect(gw.stats[Stat.dropPortsExhausted]).toBe(1);
    gw.expire(DEFAULT_TIMEOUTS.tcpSyn + 1);
    expect(gw.fromClient(buf, syn("198.51.100.7", 3), DEFAULT_TIMEOUTS.tcpSyn + 2)).toBeGreaterThan(
      0,
    );
  });

  it("drops with table-full at maxConnections", () => {
    const gw = new Gateway(config({ maxConnections: 3 }));
    for (let i = 0; i < 3; i++)
      expect(gw.fromClient(buf, syn("198.51.100.7", 100 + i), 0)).toBeGreaterThan(0);
    expect(gw.fromClient(buf, syn("198.51.100.7", 200), 0)).toBe(-1);
    expect(gw.stats[Stat.dropTableFull]).toBe(1);
  });

  it("counts packets for no service and malformed ones", () => {
    const gw = new Gateway(config());
    const n = syn("198.51.100.7", 5);
    buf[19] = 99; // another VIP; the header checksum no longer matters to the lookup
    expect(gw.fromClient(buf, n, 0)).toBe(-1);
    expect(gw.stats[Stat.dropNoService]).toBe(1);
    expect(gw.fromClient(buf, 10, 0)).toBe(-1);
    expect(gw.stats[Stat.dropMalformed]).toBe(1);
  });
});

describe("ConnTable", () => {
  it("keeps hash chains intact when removing from the middle", () => {
    const t = new ConnTable(1000, 8);
    const a = parseIp("198.51.100.7");
    const ids: number[] = [];
    for (let p = 0; p < 200; p++) ids.push(t.add(6, a, 0, 4, p, 0, 0, 4, 0, 3000 + p));
    for (let p = 0; p < 200; p += 3) t.remove(ids[p]!);
    for (let p = 0; p < 200; p++) {
      const want = p % 3 === 0 ? -1 : ids[p];
      expect(t.findByClient(6, a, 0, 4, p, 0)).toBe(want);
      expect(t.findByServer(6, 4, 0, 3000 + p)).toBe(want);
    }
  });
});

describe("gateway configuration", () => {
  it("refuses a UOA ipo service that is not IPv4 on both sides", () => {
    const v6svc = {
      vip: parseEndpoint("[2001:db8:f::10]:53"),
      proto: "udp" as const,
      servers: [{ endpoint: parseEndpoint("[2001:db8:5::10]:5353"), weight: 1 }],
      scheduler: "rr" as const,
    };
    expect(
      () =>
        new Gateway(
          config({
            profile: resolveProfile("dpvs", { uoaMode: "ipo" }),
            services: [v6svc],
            lips6: [parseIp("2001:db8:5::100")],
          }),
        ),
    ).toThrow(/ipo/);
  });
});

describe("bad TCP options", () => {
  it.each([
    ["length 0", [0xfe, 0x00, 0x01, 0x01]],
    ["length 1", [0xfe, 0x01, 0x01, 0x01]],
    ["past the header", [0x01, 0x01, 0xfe, 0x09]],
  ])("a SYN with an option of %s is dropped and counted, never thrown", (_name, opt) => {
    const gw = new Gateway(config());
    const n = syn("198.51.100.7", 4242);
    // Grow the header by one word holding the bad option (checksums do not matter here).
    const p = new Uint8Array(n + 4);
    p.set(buf.subarray(0, 40));
    p.set(opt, 40);
    p[3] = n + 4;
    p[32] = 0x60;
    expect(gw.fromClient(p, p.length, 0)).toBe(-1);
    expect(gw.stats[Stat.dropMalformed]).toBe(1);
  });
});

describe("port reuse", () => {
  it("a new SYN on the client port of a closing connection starts a new one", () => {
    const gw = new Gateway(config());
    expect(gw.fromClient(buf, syn("198.51.100.7", 5555), 0)).toBeGreaterThan(0);
    const first = gw.verdict.conn;
    gw.conns.state[first] = ConnState.closing;
    expect(gw.fromClient(buf, syn("198.51.100.7", 5555), 1)).toBeGreaterThan(0);
    expect(gw.stats[Stat.connectionsCreated]).toBe(2);
    expect(gw.conns.size).toBe(1);
  });
});
