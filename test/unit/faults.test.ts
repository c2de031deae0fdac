import { describe, expect, it } from "vitest";
import { GatewayError } from "../../src/fullnat-sim/errors.js";
import { FaultStage } from "../../src/fullnat-sim/fault-stage.js";
import {
  type FaultConfig,
  parseFaultConfig,
  parseFaultRule,
} from "../../src/fullnat-sim/faults.js";
import type { Gateway } from "../../src/fullnat-sim/gateway.js";
import { PacketClass, packetClassNames } from "../../src/fullnat-sim/packet-class.js";
import type { ProfileName } from "../../src/fullnat-sim/profiles.js";
import { Stat } from "../../src/fullnat-sim/stats.js";
import type { IpAddress } from "../../src/option-codec/address.js";
import { readU16, readU32 } from "../../src/option-codec/bytes.js";
import { PacketInfo, verifyL4Checksum } from "../../src/option-codec/packet.js";
import { TcpFlag } from "../../src/option-codec/tcp.js";
import { mssOption, NOP, timestampsOption } from "../../src/option-codec/tcp-options.js";
import { defaultLips4 } from "../../src/runtime/defaults.js";
import { PacketLoop } from "../../src/runtime/packet-loop.js";
import { MemoryTun } from "../../src/tun/memory-device.js";
import { gatewayFor } from "./helpers/gateway.js";
import { C4, expectValidChecksums, R4, tcpPacket, udpPacket, V4 } from "./helpers/packets.js";

// Fault rules applied by the packet loop between the gateway and the links,
// over MemoryTuns: the test plays client and server, as packet-loop.test.ts.

const A = TcpFlag.ack;
const S = TcpFlag.syn;
const SISN = 5000;

function tcp(
  src: IpAddress,
  dst: IpAddress,
  sport: number,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
  payload = 0,
): Uint8Array {
  return tcpPacket(src, dst, {
    sport,
    dport,
    seq,
    ack,
    flags,
    window: 1000,
    options:
      flags & S
        ? [mssOption(1460), NOP, NOP, timestampsOption(7, 0)]
        : [NOP, NOP, timestampsOption(8, 9)],
    payload: new Uint8Array(payload).fill(0x61),
  });
}

const udp = (sport: number, payload: number): Uint8Array =>
  udpPacket(C4, V4, new Uint8Array(payload), { sport });

class Bench {
  now = 1_000_000;
  readonly client = new MemoryTun("mem-c");
  readonly server = new MemoryTun("mem-s");
  readonly gw: Gateway;
  readonly loop: PacketLoop;
  /** Class bits of every packet the gateway sent, in order, with its direction. */
  readonly classes: string[] = [];

  constructor(profile: ProfileName, faults: FaultConfig | null) {
    this.gw = gatewayFor(profile);
    this.loop = new PacketLoop(this.gw, this.client, this.server, () => this.now);
    if (faults) this.loop.faults = new FaultStage(faults, this.gw.stats);
  }

  toServer(p: Uint8Array): Uint8Array[] {
    this.client.inject(p);
    this.loop.pump();
    this.classes.push(`s:${packetClassNames(this.gw.verdict.cls).join("+")}`);
    return this.server.drain();
  }

  toClient(p: Uint8Array): Uint8Array[] {
    this.server.inject(p);
    this.loop.pump();
    this.classes.push(`c:${packetClassNames(this.gw.verdict.cls).join("+")}`);
    return this.client.drain();
  }

  /** SYN, SYN-ACK: returns the LIP port the server sees. */
  open(cport = 40000): number {
    const [syn] = this.toServer(tcp(C4, V4, cport, 80, 1, 0, S));
    const lport = readU16(syn!, 20);
    this.toClient(tcp(R4, lipOf(syn!), 8080, lport, SISN, 2, S | A));
    return lport;
  }

  stat(s: Stat): number {
    return this.gw.stats[s]!;
  }
}

const lipOf = (p: Uint8Array): IpAddress => p.slice(12, 16);
const rules = (...r: Record<string, unknown>[]) => parseFaultConfig({ rules: r });
const hasToa = (p: Uint8Array): boolean => {
  const info = new PacketInfo().parse(p, p.length);
  for (let i = info.l4Offset + 20; i < info.payloadOffset; ) {
    const k = p[i]!;
    if (k === 254) return true;
    if (k <= 1) i++;
    else i += p[i + 1]!;
  }
  return false;
};

describe("packet classes the gateway reports", () => {
  it("names SYN, SYN-ACK, the handshake ACK, TOA-carrying data, FIN, RST and UDP datagrams", () => {
    const b = new Bench("dpvs", null);
    const lport = b.open();
    b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A));
    b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A | TcpFlag.psh, 100));
    b.toClient(tcp(R4, defaultLips4()[0]!, 8080, lport, SISN + 1, 102, A, 50));
    b.toServer(tcp(C4, V4, 40000, 80, 102, SISN + 51, A | TcpFlag.fin));
    b.toServer(tcp(C4, V4, 40001, 80, 1, 0, S));
    b.toServer(tcp(C4, V4, 40001, 80, 2, 0, TcpFlag.rst));
    b.toServer(udp(41000, 10));
    expect(b.classes).toEqual([
      "s:syn",
      "c:syn-ack",
      "s:handshake-ack+toa",
      // dpvs carries the TOA on data until the server acknowledges it.
      "s:toa+data",
      "c:data",
      "s:fin",
      "s:syn",
      "s:rst",
      "s:toa+udp",
    ]);
    expect(b.gw.verdict.index).toBe(1);
  });
});

describe("fault rules in the packet loop", () => {
  it("drops the handshake ACK once; dpvs then carries the TOA on the first data", () => {
    const b = new Bench("dpvs", rules({ class: "handshake-ack", action: "drop", count: 1 }));
    b.open();
    expect(b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A))).toEqual([]);
    const [data] = b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A | TcpFlag.psh, 100));
    expect(hasToa(data!)).toBe(true);
    expect(b.stat(Stat.faultDropped)).toBe(1);
  });

  it("drops the handshake ACK; a profile that carries the TOA on it alone then never sends one", () => {
    const b = new Bench("tencent", rules({ class: "handshake-ack", action: "drop" }));
    b.open();
    b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A));
    const [data] = b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A | TcpFlag.psh, 100));
    expect(data).toBeDefined();
    expect(hasToa(data!)).toBe(false);
  });

  it("skip and count choose which matching packets it acts on", () => {
    const b = new Bench(
      "dpvs",
      rules({ direction: "to-server", class: "syn", action: "drop", skip: 1, count: 2 }),
    );
    const out = [40000, 40001, 40002, 40003, 40004].map(
      (p) => b.toServer(tcp(C4, V4, p, 80, 1, 0, S)).length,
    );
    expect(out).toEqual([1, 0, 0, 1, 1]);
  });

  it("duplicates and delays; held packets leave when due, in order", () => {
    const b = new Bench(
      "dpvs",
      rules(
        { direction: "to-client", class: "syn-ack", action: "duplicate", copies: 2 },
        { direction: "to-server", class: "data", action: "delay", ms: 300 },
      ),
    );
    const [syn] = b.toServer(tcp(C4, V4, 40000, 80, 1, 0, S));
    const synAcks = b.toClient(tcp(R4, lipOf(syn!), 8080, readU16(syn!, 20), SISN, 2, S | A));
    expect(synAcks).toHaveLength(3);
    expect(b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A | TcpFlag.psh, 10))).toEqual([]);
    expect(b.toServer(tcp(C4, V4, 40000, 80, 12, SISN + 1, A | TcpFlag.psh, 20))).toEqual([]);
    expect(b.loop.tick(b.now + 299)).toBeCloseTo(1, 5);
    expect(b.server.drain()).toEqual([]);
    b.loop.tick(b.now + 300);
    const out = b.server.drain();
    expect(out.map((p) => readU32(p, 24))).toEqual([2, 12]);
    expect(b.loop.tick(b.now + 301)).toBe(-1);
    expect(b.stat(Stat.faultDuplicated)).toBe(2);
    expect(b.stat(Stat.faultDelayed)).toBe(2);
  });

  it("reorders: the held packet goes out after the next one, or after maxMs", () => {
    const b = new Bench(
      "dpvs",
      rules({ class: "data", action: "reorder", after: 1, maxMs: 500, count: 2 }),
    );
    b.open();
    b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A));
    expect(b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A, 10))).toEqual([]);
    const seqs = b.toServer(tcp(C4, V4, 40000, 80, 12, SISN + 1, A, 10)).map((p) => readU32(p, 24));
    // The second was held too (count 2) and the first waits for one to pass: both still held.
    expect(seqs).toEqual([]);
    const third = b.toServer(tcp(C4, V4, 40000, 80, 22, SISN + 1, A, 10));
    expect(third.map((p) => readU32(p, 24))).toEqual([22, 2, 12]);
    expect(b.toServer(tcp(C4, V4, 40000, 80, 32, SISN + 1, A, 10))).toHaveLength(1);
    expect(b.loop.tick(b.now)).toBe(-1);
  });

  it("a reordered packet that nothing overtakes leaves after maxMs", () => {
    const b = new Bench("dpvs", rules({ class: "syn", action: "reorder", maxMs: 200 }));
    expect(b.toServer(tcp(C4, V4, 40000, 80, 1, 0, S))).toEqual([]);
    expect(b.loop.tick(b.now + 100)).toBeCloseTo(100, 5);
    b.loop.tick(b.now + 200);
    expect(b.server.drain()).toHaveLength(1);
  });

  it("corrupts a TOA byte with checksums fixed, or left stale", () => {
    for (const checksum of ["fix", "keep"] as const) {
      const b = new Bench(
        "dpvs",
        rules({
          class: "handshake-ack",
          action: "corrupt",
          field: "tcp-option:254:2",
          set: 0x12,
          checksum,
        }),
      );
      b.open();
      const [ack] = b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A));
      const info = new PacketInfo().parse(ack!, ack!.length);
      let at = -1;
      for (let i = info.l4Offset + 20; i < info.payloadOffset; ) {
        if (ack![i] === 254) {
          at = i;
          break;
        }
        i += ack![i]! <= 1 ? 1 : ack![i + 1]!;
      }
      // Port 40000 = 0x9c40: its high byte became 0x12.
      expect([ack![at + 2], ack![at + 3]]).toEqual([0x12, 0x40]);
      expect(verifyL4Checksum(ack!, info)).toBe(checksum === "fix");
      expect(b.stat(Stat.faultCorrupted)).toBe(1);
    }
  });

  it("corrupts header fields by xor (the default) and add", () => {
    const b = new Bench(
      "dpvs",
      rules(
        { class: "syn", action: "corrupt", field: "ip.ttl", add: 1 },
        { class: "syn", action: "corrupt", field: "tcp.window", xor: 0xffff },
      ),
    );
    const [syn] = b.toServer(tcp(C4, V4, 40000, 80, 1, 0, S));
    expectValidChecksums(syn!, syn!.length);
    expect(syn![8]).toBe(65);
    expect(readU16(syn!, 34)).toBe(1000 ^ 0xffff);
  });

  it("a rule whose field the packet lacks does not act and is not spent", () => {
    const b = new Bench("dpvs", rules({ action: "corrupt", field: "tcp-option:254:0", count: 1 }));
    b.open();
    expect(b.stat(Stat.faultCorrupted)).toBe(0);
    const [ack] = b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A));
    expect(hasToa(ack!)).toBe(false);
    expect(b.stat(Stat.faultCorrupted)).toBe(1);
  });

  it("truncates with the headers left claiming the old length, or made to match", () => {
    const keep = new Bench("dpvs", rules({ class: "data", action: "truncate", by: 30 }));
    keep.open();
    keep.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A));
    const [cut] = keep.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A, 100));
    expect(readU16(cut!, 2)).toBe(cut!.length + 30);
    const fix = new Bench(
      "dpvs",
      rules({ class: "data", action: "truncate", by: 30, lengths: "fix" }),
    );
    fix.open();
    fix.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A));
    const [short] = fix.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A, 100));
    expect(readU16(short!, 2)).toBe(short!.length);
    expectValidChecksums(short!, short!.length);
    expect(fix.stat(Stat.faultTruncated)).toBe(1);
  });

  it("a link MTU drops longer packets toward that side only", () => {
    const b = new Bench("dpvs", parseFaultConfig({ mtu: { server: 120 } }));
    b.open();
    b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A));
    expect(b.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A, 60))).toHaveLength(1);
    expect(b.toServer(tcp(C4, V4, 40000, 80, 62, SISN + 1, A, 80))).toEqual([]);
    expect(b.toClient(tcp(R4, defaultLips4()[0]!, 8080, 1025, SISN + 1, 62, A, 500))).toHaveLength(
      1,
    );
    expect(b.stat(Stat.faultMtuDropped)).toBe(1);
  });

  it("UDP first=N selects the first datagrams of each flow", () => {
    const b = new Bench("dpvs", rules({ class: "udp", first: 2, action: "drop" }));
    const got = [1, 2, 3, 4].map(() => b.toServer(udp(41000, 8)).length);
    const other = [1, 2, 3].map(() => b.toServer(udp(41001, 8)).length);
    expect(got).toEqual([0, 0, 1, 1]);
    expect(other).toEqual([0, 0, 1]);
  });

  it("probability draws from the seed: the same seed, the same packets", () => {
    const pattern = (seed: number) => {
      const b = new Bench(
        "dpvs",
        parseFaultConfig({ seed, rules: [{ class: "syn", action: "drop", probability: 0.3 }] }),
      );
      return Array.from(
        { length: 200 },
        (_, i) => b.toServer(tcp(C4, V4, 40000 + i, 80, 1, 0, S)).length,
      ).join("");
    };
    expect(pattern(7)).toBe(pattern(7));
    expect(pattern(7)).not.toBe(pattern(8));
    const dropped = [...pattern(7)].filter((c) => c === "0").length;
    expect(dropped).toBeGreaterThan(30);
    expect(dropped).toBeLessThan(90);
  });

  it("without faults, or with faults that match nothing, packets are untouched", () => {
    const plain = new Bench("dpvs", null);
    const idle = new Bench("dpvs", rules({ direction: "to-client", class: "fin", action: "drop" }));
    for (const b of [plain, idle]) b.open();
    const a = plain.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A, 40));
    const c = idle.toServer(tcp(C4, V4, 40000, 80, 2, SISN + 1, A, 40));
    expect(c).toEqual(a);
  });
});

describe("fault rules from their plain form", () => {
  const err = (raw: unknown): string => {
    try {
      parseFaultRule(raw, "faults[0]");
    } catch (e) {
      expect(e).toBeInstanceOf(GatewayError);
      expect((e as GatewayError).code).toBe("BAD_FAULT");
      return (e as Error).message;
    }
    throw new Error("accepted");
  };

  it("names the key and says what is wrong", () => {
    expect(err([])).toBe(
      "faults[0]: a fault rule is an object, or a string DIRECTION:CLASS:ACTION[,KEY=VALUE...]",
    );
    expect(err({ action: "drop", colour: 1 })).toBe("faults[0].colour: unknown key");
    expect(err({ action: "explode" })).toMatch(
      /^faults\[0\]\.action: "explode" is not one of drop, duplicate/,
    );
    expect(err({})).toMatch(/^faults\[0\]\.action: undefined is not one of/);
    expect(err({ action: "drop", direction: "up" })).toMatch(
      /direction: "up" is not one of to-server, to-client, both/,
    );
    expect(err({ action: "drop", class: ["syn", "synack"] })).toMatch(
      /^faults\[0\]\.class\[1\]: "synack" is not one of/,
    );
    expect(err({ action: "drop", ms: 3 })).toBe("faults[0].ms: does not apply to action drop");
    expect(err({ action: "delay" })).toMatch(
      /^faults\[0\]\.ms: undefined is not an integer from 1/,
    );
    expect(err({ action: "drop", count: 0 })).toMatch(/count: 0 is not an integer from 1/);
    expect(err({ action: "drop", probability: 1.5 })).toMatch(
      /probability: 1.5 is not a number in \(0, 1\]/,
    );
    expect(err({ action: "drop", direction: "to-client", first: 2 })).toMatch(
      /first: counts datagrams toward the server/,
    );
    expect(err({ action: "corrupt", field: "tcp.seqq" })).toMatch(
      /"tcp.seqq" is not ip.tos, ip.id/,
    );
    expect(err({ action: "corrupt", field: "tcp-option:300:1" })).toMatch(
      /the option kind must be an integer from 0 to 255/,
    );
    expect(err({ action: "corrupt", field: "tcp.seq", set: 1, xor: 2 })).toBe(
      "faults[0]: give one of set, xor, add",
    );
    expect(err({ action: "corrupt", field: "ip.ttl", set: 256 })).toMatch(
      /set: 256 is not an integer from 0 to 255/,
    );
    expect(err({ action: "corrupt", field: "tcp.checksum", checksum: "fix" })).toMatch(
      /fix would undo a corrupted checksum/,
    );
    expect(err({ action: "truncate" })).toBe("faults[0]: give one of to, by");
    expect(err({ action: "truncate", to: 10, by: 2 })).toBe("faults[0]: give one of to, by");
  });

  it("fills defaults: to-server, any class, every packet, checksums fixed", () => {
    const r = parseFaultRule({ action: "corrupt", field: "tcp.seq" }, "r");
    expect(r).toMatchObject({ toward: 1, classes: 0, skip: 0, count: Infinity, probability: 1 });
    expect(r.action).toEqual({
      kind: "corrupt",
      target: { at: "field", field: "tcp.seq" },
      op: "xor",
      value: 0xffffffff,
      checksum: "fix",
    });
    expect(parseFaultRule({ action: "drop", class: ["data", "toa"] }, "r").classes).toBe(
      PacketClass.data | PacketClass.toa,
    );
  });

  it("checks the whole configuration", () => {
    expect(() => parseFaultConfig({ rules: {} })).toThrow("faults.rules: a list of fault rules");
    expect(() => parseFaultConfig({ mtu: { server: 40 } })).toThrow(
      "faults.mtu.server: 40 is not an integer from 68 to 65535",
    );
    expect(() => parseFaultConfig({ mtu: { middle: 1400 } })).toThrow(
      "faults.mtu.middle: unknown key",
    );
    expect(() => parseFaultConfig({ seeds: 1 })).toThrow("faults.seeds: unknown key");
    expect(parseFaultConfig(undefined).rules).toEqual([]);
  });
});
