import { describe, expect, it } from "vitest";
import { CarrierOutcome, type Gateway } from "../../src/fullnat-sim/gateway.js";
import type { ProfileName } from "../../src/fullnat-sim/profiles.js";
import { Stat } from "../../src/fullnat-sim/stats.js";
import { parseEndpoint } from "../../src/option-codec/address.js";
import { fromHex, toHex } from "../../src/option-codec/bytes.js";
import { parsePacket } from "../../src/option-codec/packet.js";
import { TcpFlag } from "../../src/option-codec/tcp.js";
import {
  mssOption,
  NOP,
  type TcpOption,
  timestampsOption,
} from "../../src/option-codec/tcp-options.js";
import { gatewayFor } from "./helpers/gateway.js";
import { expectValidChecksums, tcpPacket } from "./helpers/packets.js";

const ep = {
  client: parseEndpoint("198.51.100.7:40000"),
  vip: parseEndpoint("203.0.113.10:80"),
  lip: parseEndpoint("192.0.2.100:5000"),
  rs: parseEndpoint("192.0.2.10:8080"),
};
const SISN = 1000;
const buf = new Uint8Array(4096);

function seg(
  from: "client" | "server",
  flags: number,
  ack: number,
  payload = 0,
  options: TcpOption[] = [NOP, NOP, timestampsOption(1, 2)],
) {
  const [s, d] = from === "client" ? [ep.client, ep.vip] : [ep.rs, ep.lip];
  return tcpPacket(s.addr, d.addr, {
    sport: s.port,
    dport: d.port,
    seq: from === "server" ? SISN : 1,
    ack,
    flags,
    window: 1000,
    options,
    payload: new Uint8Array(payload),
  });
}

/** One TCP service, one LIP and one LIP port: every packet's addresses are known. */
const gateway = (profile: ProfileName, settings = {}): Gateway =>
  gatewayFor(profile, {
    settings,
    services: [
      { vip: ep.vip, proto: "tcp", servers: [{ endpoint: ep.rs, weight: 1 }], scheduler: "rr" },
    ],
    lips4: [ep.lip.addr],
    lips6: [],
    portMin: ep.lip.port,
    portMax: ep.lip.port,
    maxConnections: 16,
  });

function toServer(f: Gateway, p: Uint8Array): { carried: CarrierOutcome; bytes: Uint8Array } {
  buf.set(p);
  const n = f.fromClient(buf, p.length, 0);
  expect(n).toBeGreaterThan(0);
  expectValidChecksums(buf, n);
  return { carried: f.verdict.carrier, bytes: buf.slice(0, n) };
}

function established(profile: ProfileName, settings = {}): Gateway {
  const f = gateway(profile, settings);
  toServer(f, seg("client", TcpFlag.syn, 0, 0, [mssOption(1460)]));
  const sa = seg("server", TcpFlag.syn | TcpFlag.ack, 2, 0, [mssOption(1460)]);
  buf.set(sa);
  expect(f.fromServer(buf, sa.length, 0)).toBeGreaterThan(0);
  return f;
}

const A = TcpFlag.ack;
const ISN1 = SISN + 1;

describe("which packets carry the TOA", () => {
  it("dpvs: handshake ACK, data and FIN while ack = ISN+1; nothing once server data is acked; never RST", () => {
    const f = established("dpvs");
    expect(toServer(f, seg("client", A, ISN1)).carried).toBe(CarrierOutcome.inserted);
    expect(toServer(f, seg("client", A | TcpFlag.psh, ISN1, 100)).carried).toBe(
      CarrierOutcome.inserted,
    );
    // A retransmission of the first data carries it again.
    expect(toServer(f, seg("client", A | TcpFlag.psh, ISN1, 100)).carried).toBe(
      CarrierOutcome.inserted,
    );
    expect(toServer(f, seg("client", A | TcpFlag.fin, ISN1)).carried).toBe(CarrierOutcome.inserted);
    expect(toServer(f, seg("client", TcpFlag.rst | A, ISN1)).carried).toBe(CarrierOutcome.none);
    expect(toServer(f, seg("client", A, ISN1 + 50)).carried).toBe(CarrierOutcome.none);
  });

  it("lvs: the SYN too, but not FIN", () => {
    const f = gateway("lvs");
    expect(toServer(f, seg("client", TcpFlag.syn, 0, 0, [mssOption(1460)])).carried).toBe(
      CarrierOutcome.inserted,
    );
    const g = established("lvs");
    expect(toServer(g, seg("client", A | TcpFlag.fin, ISN1)).carried).toBe(CarrierOutcome.none);
    expect(toServer(g, seg("client", A, ISN1, 10)).carried).toBe(CarrierOutcome.inserted);
  });

  it("tencent: the handshake ACK only", () => {
    const f = established("tencent");
    expect(toServer(f, seg("client", A, ISN1)).carried).toBe(CarrierOutcome.inserted);
    expect(toServer(f, seg("client", A | TcpFlag.psh, ISN1, 10)).carried).toBe(CarrierOutcome.none);
  });

  it("custom --carry every puts it on every non-RST packet", () => {
    const f = established("custom", { carry: ["every"], toaKind: 200 });
    const r = toServer(f, seg("client", A, 77777, 10));
    expect(r.carried).toBe(CarrierOutcome.inserted);
    const p = parsePacket(r.bytes);
    expect("tcp" in p.l4 && p.l4.tcp.options[0]?.kind).toBe(200);
  });

  it("no carrier before the SYN-ACK is seen, whatever the ack", () => {
    const f = gateway("dpvs");
    toServer(f, seg("client", TcpFlag.syn, 0, 0, [mssOption(1460)]));
    expect(toServer(f, seg("client", A, ISN1)).carried).toBe(CarrierOutcome.none);
  });

  it("drops a non-SYN without a connection, and counts it", () => {
    const f = gateway("dpvs");
    buf.set(seg("client", A, ISN1));
    expect(f.fromClient(buf, 60, 0)).toBe(-1);
    expect(f.stats[Stat.dropNoConnection]).toBe(1);
  });
});

describe("client-sent TOAs", () => {
  it("are NOPed out before the gateway's own goes in", () => {
    const forged = { kind: 254, data: fromHex("0001c0000201") };
    const f = established("dpvs");
    const r = toServer(f, seg("client", A, ISN1, 0, [forged, NOP, NOP]));
    const p = parsePacket(r.bytes);
    if (!("tcp" in p.l4)) throw new Error("tcp");
    const toas = p.l4.tcp.options.filter((o) => o.kind === 254);
    expect(toas.map((o) => toHex(o.data))).toEqual(["9c40c6336407"]);
  });
});

describe("SYN-ACK", () => {
  it("has its MSS lowered by the TOA length on the way to the client", () => {
    const f = gateway("dpvs");
    toServer(f, seg("client", TcpFlag.syn, 0, 0, [mssOption(1460)]));
    const sa = seg("server", TcpFlag.syn | A, 2, 0, [mssOption(1460)]);
    buf.set(sa);
    const n = f.fromServer(buf, sa.length, 0);
    expectValidChecksums(buf, n);
    const p = parsePacket(buf, n);
    expect(p.ip.family === 4 && Array.from(p.ip.v4.src)).toEqual([203, 0, 113, 10]);
    expect("tcp" in p.l4 && toHex(p.l4.tcp.options[0]!.data)).toBe(
      (1452).toString(16).padStart(4, "0"),
    );
  });
});
