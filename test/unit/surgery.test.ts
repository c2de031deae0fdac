import { describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../src/option-codec/bytes.js";
import { IpProtocol } from "../../src/option-codec/ipv4.js";
import { rewriteAddresses, translate4to6, translate6to4 } from "../../src/option-codec/nat.js";
import { PacketInfo, parsePacket } from "../../src/option-codec/packet.js";
import {
  insertPayloadPrefix,
  removePayloadPrefix,
} from "../../src/option-codec/payload-surgery.js";
import { TcpFlag, type TcpRepr } from "../../src/option-codec/tcp.js";
import {
  mssOption,
  NOP,
  sackOption,
  sackPermittedOption,
  timestampsOption,
  windowScaleOption,
} from "../../src/option-codec/tcp-options.js";
import {
  InsertResult,
  insertTcpOption,
  lowerMss,
  nopOutTcpOptions,
} from "../../src/option-codec/tcp-surgery.js";
import { decodeToa, encodeToa } from "../../src/option-codec/toa.js";
import {
  insertUoaIpo,
  insertUoaOpp,
  removeUoaIpo,
  removeUoaOpp,
  writeUoaIpoProbe,
} from "../../src/option-codec/uoa-surgery.js";
import {
  C4,
  C6,
  expectValidChecksums,
  L4,
  L6,
  R4,
  R6,
  roomy,
  tcpPacket,
  udpPacket,
  V4,
  V6,
} from "./helpers/packets.js";

const info = new PacketInfo();
const dpvs = { kind: 254, layout: "port-addr" } as const;
const keep = { mtu: 1500, prune: false, staleKinds: [254] };
const prune = { mtu: 1500, prune: true, staleKinds: [254] };

function toa(addr: Uint8Array, port = 40000): Uint8Array {
  const b = new Uint8Array(40);
  const n = encodeToa(dpvs, { addr, port }, b, 0);
  return b.slice(0, n);
}

function tcpOf(b: Uint8Array, len: number): TcpRepr {
  const p = parsePacket(b, len);
  if (!("tcp" in p.l4)) throw new Error("not TCP");
  return p.l4.tcp;
}

describe("insertTcpOption", () => {
  it("puts an 8-byte TOA first and moves options and payload, checksums valid", () => {
    const orig = tcpPacket(C4, V4);
    const b = roomy(orig);
    info.parse(b, orig.length);
    const opt = toa(C4);
    expect(insertTcpOption(b, info, opt, 0, opt.length, keep)).toBe(InsertResult.inserted);
    expect(info.length).toBe(orig.length + 8);
    expectValidChecksums(b, info.length);
    const before = tcpOf(orig, orig.length);
    const after = tcpOf(b, info.length);
    expect(toHex(after.payload)).toBe(toHex(before.payload));
    expect(after.options.map((o) => o.kind)).toEqual([254, 1, 1, 8]);
    expect(decodeToa(dpvs, b, info.l4Offset + 20, info.payloadOffset).port).toBe(40000);
  });

  it("NOP-pads a 7-byte option and a 20-byte one keeps alignment (IPv6)", () => {
    const orig = tcpPacket(C6, V6);
    const b = roomy(orig);
    info.parse(b, orig.length);
    const seven = fromHex("1c0701c6336407");
    expect(insertTcpOption(b, info, seven, 0, 7, keep)).toBe(InsertResult.inserted);
    expectValidChecksums(b, info.length);
    expect(tcpOf(b, info.length).options.map((o) => o.kind)).toEqual([28, 1, 1, 1, 8]);
    const opt = toa(C6);
    expect(insertTcpOption(b, info, opt, 0, opt.length, keep)).toBe(InsertResult.inserted);
    expectValidChecksums(b, info.length);
    expect(info.length).toBe(orig.length + 28);
  });

  it("refuses past 40 option bytes without pruning and leaves the packet as it was", () => {
    const full = [
      mssOption(1460),
      NOP,
      windowScaleOption(7),
      sackOption([
        [1, 2],
        [3, 4],
        [5, 6],
      ]),
      NOP,
      NOP,
    ];
    const orig = tcpPacket(C4, V4, { options: full });
    const b = roomy(orig);
    info.parse(b, orig.length);
    const opt = toa(C4);
    expect(insertTcpOption(b, info, opt, 0, opt.length, keep)).toBe(InsertResult.noRoom);
    expect(toHex(b.slice(0, orig.length))).toBe(toHex(orig));
  });

  it("prunes NOPs and client-sent TOAs first (DPVS order)", () => {
    const forged = { kind: 254, data: fromHex("0001c0000201") };
    const opts = [
      NOP,
      NOP,
      timestampsOption(5, 6),
      forged,
      sackOption([
        [1, 2],
        [3, 4],
      ]),
    ];
    const orig = tcpPacket(C4, V4, { options: opts });
    const b = roomy(orig);
    info.parse(b, orig.length);
    const opt = toa(C6);
    expect(insertTcpOption(b, info, opt, 0, opt.length, prune)).toBe(
      InsertResult.insertedAfterPruning,
    );
    expectValidChecksums(b, info.length);
    const after = tcpOf(b, info.length);
    expect(after.options.map((o) => o.kind).filter((k) => k !== 0)).toEqual([254, 8]);
    expect(after.options[0]!.data.length).toBe(18);
    expect(toHex(after.payload)).toBe(toHex(tcpOf(orig, orig.length).payload));
  });

  it("then drops every option but timestamps, and gives up when even that does not fit", () => {
    const opts = [
      timestampsOption(5, 6),
      sackOption([
        [1, 2],
        [3, 4],
        [5, 6],
      ]),
    ];
    const orig = tcpPacket(C4, V4, { options: opts });
    const b = roomy(orig);
    info.parse(b, orig.length);
    const opt = toa(C6);
    expect(insertTcpOption(b, info, opt, 0, opt.length, prune)).toBe(
      InsertResult.insertedAfterPruning,
    );
    expect(
      tcpOf(b, info.length)
        .options.map((o) => o.kind)
        .filter((k) => k !== 0),
    ).toEqual([254, 8]);
    expectValidChecksums(b, info.length);
    const syn = tcpPacket(C4, V4, {
      flags: TcpFlag.syn,
      payload: new Uint8Array(0),
      options: [
        mssOption(1460),
        sackPermittedOption(),
        timestampsOption(1, 0),
        NOP,
        windowScaleOption(7),
      ],
    });
    const s = roomy(syn);
    info.parse(s, syn.length);
    const ttm = new Uint8Array(22).fill(7);
    ttm[0] = 254;
    ttm[1] = 22;
    // 22 + MSS 4 + SACK_PERM 2 + TS 10 + WS 3 = 41 > 40
    expect(insertTcpOption(s, info, ttm, 0, 22, prune)).toBe(InsertResult.noRoom);
    expect(toHex(s.slice(0, syn.length))).toBe(toHex(syn));
  });

  it("respects the MTU", () => {
    const payload = new Uint8Array(1500 - 20 - 32 - 4);
    const orig = tcpPacket(C4, V4, { payload });
    expect(orig.length).toBe(1496);
    const b = roomy(orig);
    info.parse(b, orig.length);
    const opt = toa(C4);
    expect(insertTcpOption(b, info, opt, 0, opt.length, prune)).toBe(InsertResult.noRoom);
    const small = tcpPacket(C4, V4, { payload: new Uint8Array(1500 - 20 - 32 - 8) });
    const s = roomy(small);
    info.parse(s, small.length);
    expect(insertTcpOption(s, info, opt, 0, opt.length, keep)).toBe(InsertResult.inserted);
    expect(info.length).toBe(1500);
    expectValidChecksums(s, info.length);
  });
});

describe("MSS and option stripping", () => {
  it("lowers the MSS, also at an odd offset", () => {
    for (const opts of [
      [mssOption(1460), sackPermittedOption()],
      [NOP, mssOption(1460), NOP, NOP, NOP],
    ]) {
      const orig = tcpPacket(R4, L4, {
        flags: TcpFlag.syn | TcpFlag.ack,
        options: opts,
        payload: new Uint8Array(0),
      });
      const b = roomy(orig);
      info.parse(b, orig.length);
      expect(lowerMss(b, info, 20)).toBe(1440);
      expectValidChecksums(b, info.length);
    }
  });

  it("NOPs out client-sent TOAs and SYN timestamps", () => {
    const opts = [NOP, { kind: 254, data: fromHex("9c40c0000201") }, timestampsOption(1, 2)];
    const orig = tcpPacket(C4, V4, { options: opts });
    const b = roomy(orig);
    info.parse(b, orig.length);
    expect(nopOutTcpOptions(b, info, [254, 253])).toBe(1);
    expect(nopOutTcpOptions(b, info, [8])).toBe(1);
    expectValidChecksums(b, info.length);
    expect(tcpOf(b, info.length).options.every((o) => o.kind === 1 || o.kind === 0)).toBe(true);
  });
});

describe("UOA", () => {
  const payload = new TextEncoder().encode("query");

  it("ipo: inserts as the first IP option and removes back to the original", () => {
    const orig = udpPacket(L4, R4, payload);
    const b = roomy(orig);
    info.parse(b, orig.length);
    expect(insertUoaIpo(b, info, C4, 0, 40000, 1500)).toBe(true);
    expect(info.ipHeaderLength).toBe(28);
    expect(toHex(b.slice(20, 28))).toBe("1f089c40c6336407");
    expectValidChecksums(b, info.length);
    const got = removeUoaIpo(b, info);
    expect(got?.port).toBe(40000);
    expect(toHex(b.slice(0, info.length))).toBe(toHex(orig));
  });

  it("ipo: refuses past the MTU and builds a probe datagram instead", () => {
    const orig = udpPacket(L4, R4, new Uint8Array(1500 - 28));
    const b = roomy(orig);
    info.parse(b, orig.length);
    expect(insertUoaIpo(b, info, C4, 0, 40000, 1500)).toBe(false);
    const probe = new Uint8Array(64);
    const probeInfo = new PacketInfo();
    const n = writeUoaIpoProbe(b, info, C4, 0, 40000, probe, probeInfo);
    expect(n).toBe(36);
    expectValidChecksums(probe, n);
    expect(toHex(probe.slice(20, 28))).toBe("1f089c40c6336407");
    expect(probeInfo.length - probeInfo.payloadOffset).toBe(0);
  });

  it("opp over IPv4: protocol 248, UDP checksum zero, removable", () => {
    const orig = udpPacket(L4, R4, payload);
    const b = roomy(orig);
    info.parse(b, orig.length);
    expect(insertUoaOpp(b, info, C4, 0, 4, 40000, 1500)).toBe(true);
    expect(b[9]).toBe(248);
    expect(toHex(b.slice(20, 32))).toBe("1011000c1f089c40c6336407");
    expectValidChecksums(b, info.length);
    const p = new PacketInfo().parse(b, info.length);
    expect(p.protocol).toBe(248);
    const got = removeUoaOpp(b, p);
    expect(got.port).toBe(40000);
    expect(p.protocol).toBe(IpProtocol.udp);
    const back = parsePacket(b, p.length);
    expect("udp" in back.l4 && toHex(back.l4.udp.payload)).toBe(toHex(payload));
  });

  it("opp over IPv6 with a v6 client keeps the UDP checksum and restores the original exactly", () => {
    const orig = udpPacket(L6, R6, payload);
    const b = roomy(orig);
    info.parse(b, orig.length);
    expect(insertUoaOpp(b, info, C6, 0, 16, 40000, 1500)).toBe(true);
    expect(b[6]).toBe(248);
    expect(toHex(b.slice(40, 44))).toBe("20110018");
    const p = new PacketInfo().parse(b, info.length);
    removeUoaOpp(b, p);
    expect(toHex(b.slice(0, p.length))).toBe(toHex(orig));
  });
});

describe("payload prefixes", () => {
  it("insert then remove restores TCP and UDP packets", () => {
    for (const orig of [tcpPacket(L4, R4), udpPacket(L6, R6, Uint8Array.of(1, 2, 3))]) {
      const b = roomy(orig);
      info.parse(b, orig.length);
      const prefix = new TextEncoder().encode("PROXY UNKNOWN\r\n");
      expect(insertPayloadPrefix(b, info, prefix, 0, prefix.length, 1500)).toBe(true);
      expectValidChecksums(b, info.length);
      removePayloadPrefix(b, info, prefix.length);
      expect(toHex(b.slice(0, info.length))).toBe(toHex(orig));
    }
  });
});

describe("NAT", () => {
  it("incremental rewrite gives the same bytes as building the packet fresh", () => {
    for (const [src, dst, nsrc, ndst] of [
      [C4, V4, L4, R4],
      [C6, V6, L6, R6],
    ] as const) {
      const orig = tcpPacket(src, dst);
      const b = roomy(orig);
      info.parse(b, orig.length);
      rewriteAddresses(b, info, nsrc, 0, 5000, ndst, 0, 8080);
      expect(toHex(b.slice(0, info.length))).toBe(
        toHex(tcpPacket(nsrc, ndst, { sport: 5000, dport: 8080 })),
      );
    }
  });

  it("keeps a zero UDP checksum zero over IPv4", () => {
    const orig = udpPacket(C4, V4, Uint8Array.of(9), { checksum: false });
    const b = roomy(orig);
    info.parse(b, orig.length);
    rewriteAddresses(b, info, L4, 0, 5000, R4, 0, 53);
    expect(b[info.l4Offset + 6]).toBe(0);
    expect(b[info.l4Offset + 7]).toBe(0);
  });

  it("translates v6 to v4 and back, equal to packets built fresh", () => {
    const orig = tcpPacket(C6, V6);
    const b = roomy(orig);
    info.parse(b, orig.length);
    translate6to4(b, info, L4, 0, R4, 0);
    expect(toHex(b.slice(0, info.length))).toBe(toHex(tcpPacket(L4, R4)));
    translate4to6(b, info, C6, 0, V6, 0);
    expect(toHex(b.slice(0, info.length))).toBe(toHex(tcpPacket(C6, V6)));
  });

  it("computes a UDP checksum when a zero-checksum v4 datagram becomes v6", () => {
    const orig = udpPacket(R4, L4, Uint8Array.of(1, 2, 3), { checksum: false });
    const b = roomy(orig);
    info.parse(b, orig.length);
    translate4to6(b, info, V6, 0, C6, 0);
    expectValidChecksums(b, info.length);
    expect(toHex(b.slice(0, info.length))).toBe(toHex(udpPacket(V6, C6, Uint8Array.of(1, 2, 3))));
  });
});
