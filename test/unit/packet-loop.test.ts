import { describe, expect, it } from "vitest";
import type { ServiceConfig } from "../../src/fullnat-sim/config.js";
import { DEFAULT_PORTS, DEFAULT_TIMEOUTS } from "../../src/fullnat-sim/config.js";
import type { Gateway } from "../../src/fullnat-sim/gateway.js";
import {
  type ProfileName,
  type ProfileSettings,
  resolveProfile,
} from "../../src/fullnat-sim/profiles.js";
import { DROP_REASONS, Stat } from "../../src/fullnat-sim/stats.js";
import { type IpAddress, parseIp } from "../../src/option-codec/address.js";
import { writeU16 } from "../../src/option-codec/bytes.js";
import { CodecError } from "../../src/option-codec/errors.js";
import { IpProtocol } from "../../src/option-codec/ipv4.js";
import { PacketInfo, type PacketRepr, parsePacket } from "../../src/option-codec/packet.js";
import { TcpFlag, type TcpRepr } from "../../src/option-codec/tcp.js";
import {
  mssOption,
  NOP,
  readMss,
  sackPermittedOption,
  type TcpOption,
  TcpOptionKind,
  timestampsOption,
  windowScaleOption,
} from "../../src/option-codec/tcp-options.js";
import { removeUoaOpp } from "../../src/option-codec/uoa-surgery.js";
import { defaultServices } from "../../src/runtime/defaults.js";
import { PacketLoop } from "../../src/runtime/packet-loop.js";
import { MemoryTun } from "../../src/tun/memory-device.js";
import { gatewayFor } from "./helpers/gateway.js";
import {
  C4,
  C6,
  expectValidChecksums,
  R4,
  R6,
  type TcpFields,
  tcpPacket,
  udpPacket,
  V4,
  V6,
} from "./helpers/packets.js";

// Whole exchanges through PacketLoop over two MemoryTuns: the test plays the
// client (injects into the client device) and the server (reads what the
// loop wrote into the server device and answers by injecting there).

const V64 = parseIp("2001:db8:f::64");
const A = TcpFlag.ack;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const bytes = (b: Uint8Array): number[] => Array.from(b);
const u16 = (n: number): number[] => [n >> 8, n & 0xff];

/** Gateway, loop and the two devices, with a fake clock (milliseconds) a test advances. */
class Bench {
  now = 1_000_000;
  readonly loop: PacketLoop;

  constructor(
    readonly gw: Gateway,
    readonly client: MemoryTun,
    readonly server: MemoryTun,
  ) {
    this.loop = new PacketLoop(gw, client, server, () => this.now);
  }

  /** Injects as the client, pumps, and returns what came out on the server side (checked). */
  toServer(...packets: Uint8Array[]): Uint8Array[] {
    for (const p of packets) this.client.inject(p);
    this.loop.pump();
    return checked(this.server.drain());
  }

  /** Injects as the server, pumps, and returns what came out on the client side (checked). */
  toClient(...packets: Uint8Array[]): Uint8Array[] {
    for (const p of packets) this.server.inject(p);
    this.loop.pump();
    return checked(this.client.drain());
  }
}

/**
 * The default services and LIP pools (src/runtime/defaults.ts), path MTU
 * 1500; with UOA ipo only the v4-to-v4 ones, as `toasim up` would choose.
 */
function bench(
  profile: ProfileName,
  settings: ProfileSettings = {},
  o: { serverCapacity?: number } = {},
): Bench {
  const p = resolveProfile(profile, settings);
  const ipo = p.udp?.carrier === "uoa" && p.udp.mode === "ipo";
  const v4Only = (s: ServiceConfig) =>
    s.vip.addr.length === 4 && s.servers.every((r) => r.endpoint.addr.length === 4);
  const gw = gatewayFor(profile, {
    settings,
    services: defaultServices().filter((s) => !ipo || v4Only(s)),
  });
  const server = new MemoryTun(
    "mem-s",
    o.serverCapacity === undefined ? {} : { capacity: o.serverCapacity },
  );
  return new Bench(gw, new MemoryTun("mem-c"), server);
}

function checked(out: Uint8Array[]): Uint8Array[] {
  for (const p of out) expectValidChecksums(p, p.length);
  return out;
}

function one(out: Uint8Array[]): PacketRepr {
  expect(out).toHaveLength(1);
  return parsePacket(out[0]!);
}

function tcpOf(p: PacketRepr): TcpRepr {
  if (!("tcp" in p.l4)) throw new Error(`expected TCP, got protocol ${p.l4.protocol}`);
  return p.l4.tcp;
}

function udpOf(p: PacketRepr): { srcPort: number; dstPort: number; payload: Uint8Array } {
  if (!("udp" in p.l4)) throw new Error(`expected UDP, got protocol ${p.l4.protocol}`);
  return p.l4.udp;
}

function addrs(p: PacketRepr): { src: number[]; dst: number[]; family: 4 | 6 } {
  return p.ip.family === 4
    ? { family: 4, src: bytes(p.ip.v4.src), dst: bytes(p.ip.v4.dst) }
    : { family: 6, src: bytes(p.ip.v6.src), dst: bytes(p.ip.v6.dst) };
}

const EMPTY = new Uint8Array(0);

/** The shared builder with this file's defaults: no payload, timestamps 7/9, window 1000. */
const tcp = (src: IpAddress, dst: IpAddress, sport: number, dport: number, o: TcpFields) =>
  tcpPacket(src, dst, {
    sport,
    dport,
    window: 1000,
    options: [NOP, NOP, timestampsOption(7, 9)],
    payload: EMPTY,
    ...o,
  });

const udp = (src: IpAddress, dst: IpAddress, sport: number, dport: number, payload: Uint8Array) =>
  udpPacket(src, dst, payload, { sport, dport });

const lipIndex4 = (a: number[]): number =>
  a[0] === 192 && a[1] === 0 && a[2] === 2 ? (a[3] ?? 0) - 100 : -1;

function expectLip4(a: number[]): void {
  const i = lipIndex4(a);
  expect(i, `LIP ${a.join(".")}`).toBeGreaterThanOrEqual(0);
  expect(i).toBeLessThan(32);
}

function expectLip6(a: number[]): void {
  expect(a.slice(0, 14)).toEqual(bytes(parseIp("2001:db8:5::")).slice(0, 14));
  const last = ((a[14] ?? 0) << 8) | (a[15] ?? 0);
  // 2001:db8:5::100 .. ::131 are hex groups 0x100..0x131.
  expect(last).toBeGreaterThanOrEqual(0x100);
  expect(last).toBeLessThanOrEqual(0x131);
}

function toaOf(t: TcpRepr): TcpOption | undefined {
  return t.options.find((o) => o.kind === 254);
}

describe("PacketLoop: dpvs TCP over IPv4", () => {
  it("runs a whole connection: SYN, SYN-ACK, TOA on handshake ACK and first data, response, FIN, expiry", () => {
    const b = bench("dpvs");
    const CPORT = 40000;
    const CISN = 1000;
    const SISN = 5000;

    // Client SYN with timestamps: DPVS turns them into NOPs; no TOA on the SYN.
    const synOpts = [
      mssOption(1460),
      sackPermittedOption(),
      timestampsOption(111, 0),
      NOP,
      windowScaleOption(7),
    ];
    const syn = one(
      b.toServer(
        tcp(C4, V4, CPORT, 80, { seq: CISN, ack: 0, flags: TcpFlag.syn, options: synOpts }),
      ),
    );
    const sa = addrs(syn);
    expect(sa.family).toBe(4);
    expectLip4(sa.src);
    expect(sa.dst).toEqual(bytes(R4));
    const st = tcpOf(syn);
    expect(st.dstPort).toBe(8080);
    expect(st.srcPort).toBeGreaterThanOrEqual(DEFAULT_PORTS.min);
    expect(st.flags).toBe(TcpFlag.syn);
    expect(st.seq).toBe(CISN);
    expect(st.options.map((o) => o.kind)).toEqual([
      TcpOptionKind.mss,
      TcpOptionKind.sackPermitted,
      ...Array<number>(10).fill(TcpOptionKind.nop),
      TcpOptionKind.nop,
      TcpOptionKind.windowScale,
    ]);
    expect(toaOf(st)).toBeUndefined();
    const lip = Uint8Array.from(sa.src);
    const lport = st.srcPort;

    // Server SYN-ACK, MSS 1460: the client sees it from the VIP with MSS 1460 - 8.
    b.now += 1;
    const synAck = one(
      b.toClient(
        tcp(R4, lip, 8080, lport, {
          seq: SISN,
          ack: CISN + 1,
          flags: TcpFlag.syn | A,
          options: [mssOption(1460), NOP, NOP, timestampsOption(222, 111)],
        }),
      ),
    );
    expect(addrs(synAck)).toEqual({ family: 4, src: bytes(V4), dst: bytes(C4) });
    const sat = tcpOf(synAck);
    expect([sat.srcPort, sat.dstPort]).toEqual([80, CPORT]);
    expect([sat.seq, sat.ack, sat.flags]).toEqual([SISN, CISN + 1, TcpFlag.syn | A]);
    expect(sat.options[0]?.kind).toBe(TcpOptionKind.mss);
    expect(readMss(sat.options[0]!)).toBe(1452);

    const toaData = [...u16(CPORT), ...bytes(C4)];
    const expectToaFirst = (t: TcpRepr): void => {
      const o = t.options[0];
      expect(o?.kind).toBe(254);
      expect(o?.data.length).toBe(6); // option length 8 with kind and length
      expect(bytes(o!.data)).toEqual(toaData);
      expect(t.options.filter((x) => x.kind === 254)).toHaveLength(1);
    };

    // Handshake ACK: carries the TOA, first.
    b.now += 1;
    const hack = one(
      b.toServer(tcp(C4, V4, CPORT, 80, { seq: CISN + 1, ack: SISN + 1, flags: A })),
    );
    expect(addrs(hack)).toEqual({ family: 4, src: bytes(lip), dst: bytes(R4) });
    const ht = tcpOf(hack);
    expect([ht.srcPort, ht.dstPort, ht.seq, ht.ack]).toEqual([lport, 8080, CISN + 1, SISN + 1]);
    expectToaFirst(ht);
    expect(ht.payload.length).toBe(0);

    // Request data, still ack = server ISN + 1: carries it too.
    b.now += 1;
    const req = enc("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const rq = tcpOf(
      one(
        b.toServer(
          tcp(C4, V4, CPORT, 80, {
            seq: CISN + 1,
            ack: SISN + 1,
            flags: A | TcpFlag.psh,
            payload: req,
          }),
        ),
      ),
    );
    expectToaFirst(rq);
    expect(dec(rq.payload)).toBe(dec(req));
    expect(rq.seq).toBe(CISN + 1);

    // Server response reaches the client from the VIP, unchanged otherwise.
    b.now += 1;
    const resp = enc("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    const cseq = CISN + 1 + req.length;
    const rp = one(
      b.toClient(
        tcp(R4, lip, 8080, lport, {
          seq: SISN + 1,
          ack: cseq,
          flags: A | TcpFlag.psh,
          payload: resp,
        }),
      ),
    );
    expect(addrs(rp)).toEqual({ family: 4, src: bytes(V4), dst: bytes(C4) });
    const rpt = tcpOf(rp);
    expect([rpt.srcPort, rpt.dstPort, rpt.seq, rpt.ack]).toEqual([80, CPORT, SISN + 1, cseq]);
    expect(dec(rpt.payload)).toBe(dec(resp));
    const sseq = SISN + 1 + resp.length;

    // The client acks the response: no TOA any more.
    b.now += 1;
    const ca = tcpOf(one(b.toServer(tcp(C4, V4, CPORT, 80, { seq: cseq, ack: sseq, flags: A }))));
    expect(toaOf(ca)).toBeUndefined();
    expect(ca.ack).toBe(sseq);

    // FIN exchange: client FIN, server FIN, client's last ACK; none carries the TOA.
    b.now += 1;
    const cfin = tcpOf(
      one(b.toServer(tcp(C4, V4, CPORT, 80, { seq: cseq, ack: sseq, flags: A | TcpFlag.fin }))),
    );
    expect(cfin.flags).toBe(A | TcpFlag.fin);
    expect(toaOf(cfin)).toBeUndefined();
    b.now += 1;
    const sfin = tcpOf(
      one(
        b.toClient(tcp(R4, lip, 8080, lport, { seq: sseq, ack: cseq + 1, flags: A | TcpFlag.fin })),
      ),
    );
    expect([sfin.srcPort, sfin.dstPort, sfin.flags]).toEqual([80, CPORT, A | TcpFlag.fin]);
    b.now += 1;
    const last = tcpOf(
      one(b.toServer(tcp(C4, V4, CPORT, 80, { seq: cseq + 1, ack: sseq + 1, flags: A }))),
    );
    expect(toaOf(last)).toBeUndefined();

    expect(b.gw.conns.size).toBe(1);
    expect(b.gw.stats[Stat.connectionsActive]).toBe(1);
    expect(b.gw.stats[Stat.carriersInserted]).toBe(2);
    expect(b.loop.counters.writeBusy).toBe(0);
    // Closing: lives tcpClose after the last packet, not a millisecond more.
    expect(b.gw.expire(b.now + DEFAULT_TIMEOUTS.tcpClose - 1)).toBe(0);
    expect(b.gw.conns.size).toBe(1);
    expect(b.gw.expire(b.now + DEFAULT_TIMEOUTS.tcpClose + 1)).toBe(1);
    expect(b.gw.conns.size).toBe(0);
    expect(b.gw.stats[Stat.connectionsActive]).toBe(0);
    expect(b.gw.stats[Stat.connectionsExpired]).toBe(1);

    // Afterwards a late packet of that connection belongs to none.
    expect(b.toServer(tcp(C4, V4, CPORT, 80, { seq: cseq + 1, ack: sseq + 1, flags: A }))).toEqual(
      [],
    );
    expect(b.gw.stats[Stat.dropNoConnection]).toBe(1);
  });
});

describe("PacketLoop: NAT64", () => {
  it("IPv6 client to [2001:db8:f::64]:80 reaches the IPv4 server with a 20-byte TOA; replies return as IPv6", () => {
    const b = bench("dpvs");
    const CPORT = 40001;
    const CISN = 77;
    const SISN = 9000;

    const syn = one(
      b.toServer(
        tcp(C6, V64, CPORT, 80, {
          seq: CISN,
          ack: 0,
          flags: TcpFlag.syn,
          options: [mssOption(1440)],
        }),
      ),
    );
    expect(syn.ip.family).toBe(4);
    const sa = addrs(syn);
    expectLip4(sa.src);
    expect(sa.dst).toEqual(bytes(R4));
    const st = tcpOf(syn);
    expect(st.dstPort).toBe(8080);
    expect(toaOf(st)).toBeUndefined();
    const lip = Uint8Array.from(sa.src);
    const lport = st.srcPort;

    b.now += 1;
    const synAck = one(
      b.toClient(
        tcp(R4, lip, 8080, lport, {
          seq: SISN,
          ack: CISN + 1,
          flags: TcpFlag.syn | A,
          options: [mssOption(1460)],
        }),
      ),
    );
    expect(addrs(synAck)).toEqual({ family: 6, src: bytes(V64), dst: bytes(C6) });
    const sat = tcpOf(synAck);
    expect([sat.srcPort, sat.dstPort, sat.seq, sat.ack]).toEqual([80, CPORT, SISN, CISN + 1]);
    // Lowered by the IPv6 TOA's 20 bytes.
    expect(readMss(sat.options[0]!)).toBe(1440);

    const toaData = [...u16(CPORT), ...bytes(C6)];
    b.now += 1;
    const hack = one(
      b.toServer(tcp(C6, V64, CPORT, 80, { seq: CISN + 1, ack: SISN + 1, flags: A })),
    );
    expect(addrs(hack)).toEqual({ family: 4, src: bytes(lip), dst: bytes(R4) });
    const ht = tcpOf(hack);
    expect(ht.options[0]?.kind).toBe(254);
    expect(ht.options[0]?.data.length).toBe(18); // 20 with kind and length
    expect(bytes(ht.options[0]!.data)).toEqual(toaData);

    b.now += 1;
    const req = enc("GET /64 HTTP/1.1\r\n\r\n");
    const rq = tcpOf(
      one(
        b.toServer(
          tcp(C6, V64, CPORT, 80, {
            seq: CISN + 1,
            ack: SISN + 1,
            flags: A | TcpFlag.psh,
            payload: req,
          }),
        ),
      ),
    );
    expect(bytes(rq.options[0]!.data)).toEqual(toaData);
    expect(dec(rq.payload)).toBe(dec(req));

    b.now += 1;
    const resp = enc("HTTP/1.1 204 No Content\r\n\r\n");
    const rp = one(
      b.toClient(
        tcp(R4, lip, 8080, lport, {
          seq: SISN + 1,
          ack: CISN + 1 + req.length,
          flags: A | TcpFlag.psh,
          payload: resp,
        }),
      ),
    );
    expect(addrs(rp)).toEqual({ family: 6, src: bytes(V64), dst: bytes(C6) });
    const rpt = tcpOf(rp);
    expect([rpt.srcPort, rpt.dstPort]).toEqual([80, CPORT]);
    expect(dec(rpt.payload)).toBe(dec(resp));

    b.now += 1;
    const ca = tcpOf(
      one(
        b.toServer(
          tcp(C6, V64, CPORT, 80, {
            seq: CISN + 1 + req.length,
            ack: SISN + 1 + resp.length,
            flags: A,
          }),
        ),
      ),
    );
    expect(toaOf(ca)).toBeUndefined();
  });
});

describe("PacketLoop: UDP with UOA ipo", () => {
  const ipo = (): Bench => bench("dpvs", { uoaMode: "ipo" });
  const uoaOpt = (port: number) => ({ type: 31, data: [...u16(port), ...bytes(C4)] });
  const ipOptions = (p: PacketRepr): { type: number; data: number[] }[] =>
    p.ip.family === 4 ? p.ip.v4.options.map((o) => ({ type: o.type, data: bytes(o.data) })) : [];

  it("puts option 31 in the IP header of the first 3 datagrams, not the 4th; replies come back", () => {
    const b = ipo();
    const out: PacketRepr[] = [];
    for (let i = 0; i < 4; i++) {
      b.now += 1;
      out.push(one(b.toServer(udp(C4, V4, 40000, 53, enc(`query ${i}`)))));
    }
    const first = out[0]!;
    const a = addrs(first);
    expectLip4(a.src);
    expect(a.dst).toEqual(bytes(R4));
    const lport = udpOf(first).srcPort;
    out.forEach((p, i) => {
      expect(addrs(p)).toEqual(a);
      const u = udpOf(p);
      expect([u.srcPort, u.dstPort]).toEqual([lport, 5353]);
      expect(dec(u.payload)).toBe(`query ${i}`);
      expect(ipOptions(p)).toEqual(i < 3 ? [uoaOpt(40000)] : []);
    });
    expect(b.gw.stats[Stat.carriersInserted]).toBe(3);
    expect(b.gw.stats[Stat.uoaProbes]).toBe(0);

    b.now += 1;
    const reply = one(b.toClient(udp(R4, Uint8Array.from(a.src), 5353, lport, enc("answer"))));
    expect(addrs(reply)).toEqual({ family: 4, src: bytes(V4), dst: bytes(C4) });
    const ru = udpOf(reply);
    expect([ru.srcPort, ru.dstPort]).toEqual([53, 40000]);
    expect(dec(ru.payload)).toBe("answer");
  });

  it("sends the zero-payload probe with the option before a datagram too big to carry it", () => {
    const b = ipo();
    const big = new Uint8Array(1472).map((_, i) => i & 0xff);
    const bigPacket = udp(C4, V4, 40100, 53, big);
    expect(bigPacket.length).toBe(1500);
    const out = b.toServer(bigPacket);
    expect(out).toHaveLength(2);
    const [probe, orig] = out.map((p) => parsePacket(p));
    // The probe: option 31, empty UDP payload, same addresses and ports.
    expect(ipOptions(probe!)).toEqual([uoaOpt(40100)]);
    const pu = udpOf(probe!);
    expect(pu.payload.length).toBe(0);
    expect(pu.dstPort).toBe(5353);
    expect(out[0]!.length).toBe(20 + 8 + 8);
    // Then the original, unchanged in size, without the option.
    expect(ipOptions(orig!)).toEqual([]);
    expect(out[1]!.length).toBe(1500);
    const ou = udpOf(orig!);
    expect(bytes(ou.payload)).toEqual(bytes(big));
    expect(ou.srcPort).toBe(pu.srcPort);
    expect(addrs(probe!)).toEqual(addrs(orig!));
    expectLip4(addrs(orig!).src);
    expect(addrs(orig!).dst).toEqual(bytes(R4));
    expect(b.gw.stats[Stat.uoaProbes]).toBe(1);

    // The flow's next (small) datagram carries the option inline again.
    b.now += 1;
    const next = one(b.toServer(udp(C4, V4, 40100, 53, enc("small"))));
    expect(ipOptions(next)).toEqual([uoaOpt(40100)]);
    expect(udpOf(next).srcPort).toBe(pu.srcPort);
  });
});

describe("PacketLoop: UDP with UOA opp over IPv6", () => {
  it("sets next header 248 on the first 3 datagrams (valid inside), plain UDP after; replies come back", () => {
    const b = bench("dpvs");
    const raw: Uint8Array[] = [];
    for (let i = 0; i < 4; i++) {
      b.now += 1;
      const out = b.toServer(udp(C6, V6, 40000, 53, enc(`q6 ${i}`)));
      expect(out).toHaveLength(1);
      raw.push(out[0]!);
    }
    let lip: number[] = [];
    let lport = -1;
    raw.forEach((p, i) => {
      const r = parsePacket(p);
      if (r.ip.family !== 6) throw new Error("expected IPv6");
      expectLip6(bytes(r.ip.v6.src));
      expect(bytes(r.ip.v6.dst)).toEqual(bytes(R6));
      expect(r.ip.v6.extensionHeaders).toEqual([]);
      expect(p[6]).toBe(i < 3 ? 248 : IpProtocol.udp);
      expect(r.ip.v6.protocol).toBe(i < 3 ? 248 : IpProtocol.udp);
      const info = new PacketInfo().parse(p, p.length);
      if (i < 3) {
        // Take the opp header off as the server's module does: address and a valid UDP inside.
        const copy = p.slice();
        const uoa = removeUoaOpp(copy, info);
        expect(bytes(uoa.addr)).toEqual(bytes(C6));
        expect(uoa.port).toBe(40000);
        expect(copy[6]).toBe(IpProtocol.udp);
        expectValidChecksums(copy, info.length);
        const u = udpOf(parsePacket(copy, info.length));
        expect(dec(u.payload)).toBe(`q6 ${i}`);
        expect(u.dstPort).toBe(5353);
        if (i === 0) {
          lip = bytes(r.ip.v6.src);
          lport = u.srcPort;
        }
        expect(u.srcPort).toBe(lport);
      } else {
        const u = udpOf(r);
        expect([u.srcPort, u.dstPort]).toEqual([lport, 5353]);
        expect(dec(u.payload)).toBe("q6 3");
      }
      expect(bytes(r.ip.v6.src)).toEqual(lip);
    });

    b.now += 1;
    const reply = one(b.toClient(udp(R6, Uint8Array.from(lip), 5353, lport, enc("a6"))));
    expect(addrs(reply)).toEqual({ family: 6, src: bytes(V6), dst: bytes(C6) });
    const ru = udpOf(reply);
    expect([ru.srcPort, ru.dstPort]).toEqual([53, 40000]);
    expect(dec(ru.payload)).toBe("a6");
  });
});

describe("PacketLoop: full queues", () => {
  it("counts writes the server device refuses, throws nothing, and recovers once drained", () => {
    // maxTrail 0: plain UDP, no carrier, so only the queue matters.
    const b = bench("dpvs", { maxTrail: 0 }, { serverCapacity: 2 });
    for (let i = 0; i < 5; i++) b.client.inject(udp(C4, V4, 41000 + i, 53, enc(`d${i}`)));
    expect(() => b.loop.pump()).not.toThrow();
    expect(b.loop.counters.writeBusy).toBe(3);
    expect(b.server.written).toHaveLength(2);
    expect(b.gw.stats[Stat.packetsToServer]).toBe(5);
    checked(b.server.drain());
    // Room again: the next datagram gets through.
    const out = b.toServer(udp(C4, V4, 41000, 53, enc("again")));
    expect(out).toHaveLength(1);
    expect(dec(udpOf(parsePacket(out[0]!)).payload)).toBe("again");
    expect(b.loop.counters.writeBusy).toBe(3);
  });

  it("counts a refused UOA probe and its datagram separately", () => {
    const b = bench("dpvs", { uoaMode: "ipo" }, { serverCapacity: 0 });
    b.client.inject(udp(C4, V4, 42000, 53, new Uint8Array(1472)));
    expect(() => b.loop.pump()).not.toThrow();
    expect(b.loop.counters.writeBusy).toBe(2);
    expect(b.server.written).toHaveLength(0);
  });
});

describe("PacketLoop: garbage from the client", () => {
  /** A small deterministic PRNG (mulberry32), so failures reproduce. */
  function rng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function isMalformed(p: Uint8Array): boolean {
    try {
      new PacketInfo().parse(p, p.length);
      return false;
    } catch (e) {
      if (e instanceof CodecError) return true;
      throw e;
    }
  }

  function crafted(): Uint8Array[] {
    const good4 = tcp(C4, V4, 40000, 80, { seq: 1, ack: 1, flags: A, payload: enc("hello") });
    const good6 = tcp(C6, V6, 40000, 80, { seq: 1, ack: 1, flags: A, payload: enc("hello") });
    const goodU = udp(C4, V4, 40000, 53, enc("hello"));
    const out: Uint8Array[] = [
      good4.slice(0, 1), // one byte
      good4.slice(0, 19), // IPv4 header cut short
      good4.slice(0, 30), // header fine, total length beyond the bytes
      good4.slice(0, good4.length - 1),
      good6.slice(0, 39), // IPv6 header cut short
      good6.slice(0, 50), // TCP header cut short
      goodU.slice(0, 24), // UDP header cut short
    ];
    const ihl4 = good4.slice();
    ihl4[0] = 0x44; // IHL below 5
    out.push(ihl4);
    const v7 = good4.slice();
    v7[0] = 0x75; // IP version 7
    out.push(v7);
    const doff = good4.slice();
    doff[20 + 12] = 0x40; // TCP data offset 4 (< 5)
    out.push(doff);
    const udpLen = goodU.slice();
    writeU16(udpLen, 20 + 4, 200); // UDP length beyond the IP payload
    out.push(udpLen);
    const totalShort = good4.slice();
    writeU16(totalShort, 2, 10); // total length shorter than the header
    out.push(totalShort);
    return out;
  }

  function garbage(): { packets: Uint8Array[]; malformed: number } {
    const r = rng(0x70a5);
    const packets = crafted();
    for (const p of packets) expect(isMalformed(p), `crafted ${bytes(p).slice(0, 4)}`).toBe(true);
    for (let i = 0; i < 200; i++) {
      const n = 1 + Math.floor(r() * 120);
      const p = new Uint8Array(n).map(() => Math.floor(r() * 256));
      // Half of them look like IPv4/IPv6 at first glance, to get past the version check.
      if (i % 2 === 0) p[0] = i % 4 === 0 ? 0x45 : 0x60;
      packets.push(p);
    }
    return { packets, malformed: packets.filter(isMalformed).length };
  }

  const dropTotal = (s: Float64Array): number =>
    Object.values(DROP_REASONS).reduce((n, i) => n + (s[i] ?? 0), 0);

  it("drops and counts them, and an open connection keeps working around them", () => {
    const b = bench("dpvs");
    const CPORT = 40000;
    const SISN = 3000;
    const synOut = one(
      b.toServer(
        tcp(C4, V4, CPORT, 80, { seq: 10, ack: 0, flags: TcpFlag.syn, options: [mssOption(1460)] }),
      ),
    );
    const lip = Uint8Array.from(addrs(synOut).src);
    const lport = tcpOf(synOut).srcPort;
    one(
      b.toClient(
        tcp(R4, lip, 8080, lport, {
          seq: SISN,
          ack: 11,
          flags: TcpFlag.syn | A,
          options: [mssOption(1460)],
        }),
      ),
    );

    const { packets, malformed } = garbage();
    expect(malformed).toBeGreaterThanOrEqual(crafted().length);
    const before = dropTotal(b.gw.stats);
    const fromClient = b.gw.stats[Stat.packetsFromClient]!;
    // Garbage, then the handshake ACK, then more garbage, then data: one pump.
    const half = packets.length >> 1;
    for (const p of packets.slice(0, half)) b.client.inject(p);
    b.client.inject(tcp(C4, V4, CPORT, 80, { seq: 11, ack: SISN + 1, flags: A }));
    for (const p of packets.slice(half)) b.client.inject(p);
    b.client.inject(
      tcp(C4, V4, CPORT, 80, {
        seq: 11,
        ack: SISN + 1,
        flags: A | TcpFlag.psh,
        payload: enc("still here"),
      }),
    );
    expect(() => b.loop.pump()).not.toThrow();

    expect(b.gw.stats[Stat.packetsFromClient]).toBe(fromClient + packets.length + 2);
    expect(b.gw.stats[Stat.dropMalformed]).toBe(malformed);
    // The rest (random bytes that happen to parse) are dropped for other reasons.
    expect(dropTotal(b.gw.stats) - before).toBe(packets.length);
    const out = checked(b.server.drain()).map((p) => tcpOf(parsePacket(p)));
    expect(out).toHaveLength(2);
    for (const t of out) {
      expect([t.srcPort, t.dstPort]).toEqual([lport, 8080]);
      expect(bytes(t.options[0]!.data)).toEqual([...u16(CPORT), ...bytes(C4)]);
    }
    expect(dec(out[1]!.payload)).toBe("still here");

    // And the server's answer still reaches the client.
    b.now += 1;
    const rp = tcpOf(
      one(
        b.toClient(
          tcp(R4, lip, 8080, lport, {
            seq: SISN + 1,
            ack: 21,
            flags: A | TcpFlag.psh,
            payload: enc("ok"),
          }),
        ),
      ),
    );
    expect([rp.srcPort, rp.dstPort]).toEqual([80, CPORT]);
    expect(dec(rp.payload)).toBe("ok");
    expect(b.gw.conns.size).toBe(1);
  });

  it("drops garbage from the server side too, counted as malformed", () => {
    const b = bench("dpvs");
    const { packets, malformed } = garbage();
    for (const p of packets) b.server.inject(p);
    expect(() => b.loop.pump()).not.toThrow();
    expect(b.client.written).toHaveLength(0);
    expect(b.gw.stats[Stat.dropMalformed]).toBe(malformed);
    expect(dropTotal(b.gw.stats)).toBe(packets.length);
  });
});

describe("PacketLoop: a bug in the gateway", () => {
  it("on either path costs that packet and is reported, the loop goes on", () => {
    const b = bench("dpvs");
    const bug = new Error("a bug in the gateway");
    // A gateway that fails on its first packet each way, as a bug would.
    const failing = { client: true, server: true };
    const fromClient = b.gw.fromClient.bind(b.gw);
    const fromServer = b.gw.fromServer.bind(b.gw);
    b.gw.fromClient = (buf, len, now) => {
      if (failing.client) {
        failing.client = false;
        throw bug;
      }
      return fromClient(buf, len, now);
    };
    b.gw.fromServer = (buf, len, now) => {
      if (failing.server) {
        failing.server = false;
        throw new Error("another bug");
      }
      return fromServer(buf, len, now);
    };
    const syn = tcp(C4, V4, 40000, 80, { seq: 10, ack: 0, flags: TcpFlag.syn });
    expect(b.toServer(syn)).toHaveLength(0);
    expect(b.loop.counters.errors).toBe(1);
    expect(b.loop.firstError).toBe(bug);
    const out = one(b.toServer(syn));
    const lip = Uint8Array.from(addrs(out).src);
    const lport = tcpOf(out).srcPort;
    const synAck = tcp(R4, lip, 8080, lport, { seq: 3000, ack: 11, flags: TcpFlag.syn | A });
    expect(b.toClient(synAck)).toHaveLength(0);
    expect(b.loop.counters.errors).toBe(2);
    expect(b.loop.firstError).toBe(bug);
    expect(tcpOf(one(b.toClient(synAck))).flags).toBe(TcpFlag.syn | A);
  });
});
