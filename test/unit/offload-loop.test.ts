import { describe, expect, it } from "vitest";
import { FaultStage } from "../../src/fullnat-sim/fault-stage.js";
import { parseFaultConfig } from "../../src/fullnat-sim/faults.js";
import type { Gateway } from "../../src/fullnat-sim/gateway.js";
import type { ProfileName } from "../../src/fullnat-sim/profiles.js";
import { Stat } from "../../src/fullnat-sim/stats.js";
import { readU32 } from "../../src/option-codec/bytes.js";
import { IpProtocol } from "../../src/option-codec/ipv4.js";
import { PacketInfo, parsePacket } from "../../src/option-codec/packet.js";
import { TcpFlag, type TcpRepr } from "../../src/option-codec/tcp.js";
import { mssOption, NOP, timestampsOption } from "../../src/option-codec/tcp-options.js";
import { TcpSegmenter } from "../../src/option-codec/tcp-segment.js";
import {
  completePartialChecksum,
  emitVnetHdr,
  fillPartialChecksum,
  GsoType,
  parseVnetHdr,
  VNET_HDR_LEN,
  VnetFlag,
  type VnetHdrRepr,
} from "../../src/option-codec/vnet-hdr.js";
import { CopyLoop, PacketLoop } from "../../src/runtime/packet-loop.js";
import { MemoryTun } from "../../src/tun/memory-device.js";
import { gatewayFor } from "./helpers/gateway.js";
import {
  C4,
  C6,
  expectValidChecksums,
  R4,
  tcpPacket,
  udpPacket,
  V4,
  V6,
} from "./helpers/packets.js";

// PacketLoop with offloads, over MemoryTuns whose frames carry a
// virtio_net_hdr as a TUN opened with IFF_VNET_HDR does. What leaves is
// judged as the kernel would make it: the partial checksum completed the
// way the kernel completes it (a sum from csum_start) and checked by the
// naive checksum of the helpers; super-packets cut into segments.

const MTU = 1500;
const CISN = 1000;
const SISN = 9000;
const PLAIN: VnetHdrRepr = {
  flags: 0,
  gsoType: 0,
  hdrLen: 0,
  gsoSize: 0,
  csumStart: 0,
  csumOffset: 0,
};

function framed(pkt: Uint8Array, h: VnetHdrRepr = PLAIN): Uint8Array {
  const f = new Uint8Array(VNET_HDR_LEN + pkt.length);
  emitVnetHdr(h, f, 0);
  f.set(pkt, VNET_HDR_LEN);
  return f;
}

/** The packet with its transport checksum made partial, framed with NEEDS_CSUM (and GSO when gsoSize > 0). */
function partial(pkt: Uint8Array, gsoSize = 0): Uint8Array {
  const p = pkt.slice();
  const info = new PacketInfo().parse(p, p.length);
  fillPartialChecksum(p, info);
  const tcp = info.protocol === IpProtocol.tcp;
  return framed(p, {
    flags: VnetFlag.needsCsum,
    gsoType: gsoSize === 0 ? GsoType.none : info.family === 4 ? GsoType.tcpv4 : GsoType.tcpv6,
    hdrLen: gsoSize === 0 ? 0 : info.payloadOffset,
    gsoSize,
    csumStart: info.l4Offset,
    csumOffset: tcp ? 16 : 6,
  });
}

interface Left {
  hdr: VnetHdrRepr;
  /** The packet, its checksum completed as the kernel would. */
  pkt: Uint8Array;
  /** What goes on the wire: the segments of a super-packet, or the packet. */
  wire: Uint8Array[];
}

/** A frame the loop wrote, as the kernel takes it. */
function left(frame: Uint8Array): Left {
  const hdr = parseVnetHdr(frame, 0, frame.length);
  const pkt = frame.slice(VNET_HDR_LEN);
  if (hdr.flags & VnetFlag.needsCsum)
    completePartialChecksum(pkt, pkt.length, hdr.csumStart, hdr.csumOffset);
  expectValidChecksums(pkt, pkt.length);
  const info = new PacketInfo().parse(pkt, pkt.length);
  if (hdr.flags & VnetFlag.needsCsum) expect(hdr.csumStart).toBe(info.l4Offset);
  if (hdr.gsoType === GsoType.none) return { hdr, pkt, wire: [pkt] };
  expect(hdr.gsoType).toBe(info.family === 4 ? GsoType.tcpv4 : GsoType.tcpv6);
  expect(hdr.hdrLen).toBe(info.payloadOffset);
  const wire: Uint8Array[] = [];
  new TcpSegmenter().segment(pkt, info, hdr.gsoSize, (s, n) => wire.push(s.slice(0, n)));
  return { hdr, pkt, wire };
}

const tcpOf = (p: Uint8Array): TcpRepr => {
  const l4 = parsePacket(p).l4;
  if (!("tcp" in l4)) throw new Error("not TCP");
  return l4.tcp;
};
const toaOf = (p: Uint8Array) => tcpOf(p).options.find((o) => o.kind === 254);
const payload = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff);

/** Two MemoryTuns with frames, the loop with offloads, and a handshake helper. */
class Rig {
  readonly client = new MemoryTun("mem-c");
  readonly server = new MemoryTun("mem-s");
  readonly loop: PacketLoop;
  now = 1_000_000;

  constructor(readonly gw: Gateway) {
    this.loop = new PacketLoop(gw, this.client, this.server, () => this.now, {
      offload: { mtu: MTU },
    });
  }

  toServer(frame: Uint8Array): Left[] {
    this.client.inject(frame);
    this.loop.pump();
    return this.server.drain().map(left);
  }

  toClient(frame: Uint8Array): Left[] {
    this.server.inject(frame);
    this.loop.pump();
    return this.client.drain().map(left);
  }

  /** SYN, SYN-ACK, handshake ACK in plain frames; the server side's addresses and ports. */
  open(
    client: Uint8Array,
    vip: Uint8Array,
    sport = 40000,
  ): { lip: Uint8Array; lport: number; rs: Uint8Array } {
    const ts = [NOP, NOP, timestampsOption(7, 9)];
    const syn = this.toServer(
      framed(
        tcpPacket(client, vip, {
          sport,
          dport: 80,
          seq: CISN,
          ack: 0,
          flags: TcpFlag.syn,
          options: [mssOption(1460)],
          payload: new Uint8Array(0),
        }),
      ),
    )[0]!.pkt;
    const p = parsePacket(syn);
    const lip = p.ip.family === 4 ? p.ip.v4.src : p.ip.v6.src;
    const rs = p.ip.family === 4 ? p.ip.v4.dst : p.ip.v6.dst;
    const lport = tcpOf(syn).srcPort;
    this.toClient(
      framed(
        tcpPacket(rs, lip, {
          sport: 8080,
          dport: lport,
          seq: SISN,
          ack: CISN + 1,
          flags: TcpFlag.syn | TcpFlag.ack,
          options: [mssOption(1460)],
          payload: new Uint8Array(0),
        }),
      ),
    );
    this.toServer(
      framed(
        tcpPacket(client, vip, {
          sport,
          dport: 80,
          seq: CISN + 1,
          ack: SISN + 1,
          flags: TcpFlag.ack,
          options: ts,
          payload: new Uint8Array(0),
        }),
      ),
    );
    return { lip, lport, rs };
  }
}

const rig = (profile: ProfileName = "dpvs") => new Rig(gatewayFor(profile, { mtu: MTU }));

/** A client super-packet of `n` bytes in `gso`-byte segments, acking the server's SYN (dpvs: TOA on each). */
function clientSuper(
  client: Uint8Array,
  vip: Uint8Array,
  n: number,
  gso: number,
  flags: number = TcpFlag.ack | TcpFlag.psh,
): Uint8Array {
  return partial(
    tcpPacket(client, vip, {
      sport: 40000,
      dport: 80,
      seq: CISN + 1,
      ack: SISN + 1,
      flags,
      options: [NOP, NOP, timestampsOption(7, 9)],
      payload: payload(n),
    }),
    gso,
  );
}

/** The wire segments' payloads joined, and checks every segment against the MTU and the sequence. */
function stream(l: Left[], firstSeq: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let seq = firstSeq;
  for (const x of l) {
    for (const s of x.wire) {
      expect(s.length).toBeLessThanOrEqual(MTU);
      expectValidChecksums(s, s.length);
      const t = tcpOf(s);
      expect(t.seq >>> 0).toBe(seq >>> 0);
      seq += t.payload.length;
      parts.push(t.payload);
    }
  }
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe("PacketLoop with offloads: TCP super-packets cross the gateway whole", () => {
  it("dpvs IPv4: a 60 KB super-packet gets one TOA, smaller segments so that each fits the MTU with it, and a right checksum", () => {
    const r = rig();
    r.open(C4, V4);
    const data = 60_000;
    const out = r.toServer(clientSuper(C4, V4, data, 1448));
    expect(out).toHaveLength(1);
    const o = out[0]!;
    expect(o.hdr.flags).toBe(VnetFlag.needsCsum);
    // 20 IP + 20 TCP + 12 timestamps + 8 TOA = 60 bytes of headers.
    expect(o.hdr.gsoSize).toBe(MTU - 60);
    expect(toaOf(o.pkt)?.data).toEqual(Uint8Array.from([0x9c, 0x40, ...C4]));
    for (const s of o.wire) expect(toaOf(s)?.data).toEqual(Uint8Array.from([0x9c, 0x40, ...C4]));
    expect(o.wire).toHaveLength(Math.ceil(data / (MTU - 60)));
    expect(stream(out, CISN + 1)).toEqual(payload(data));
    expect(r.gw.stats[Stat.superPackets]).toBe(1);
    expect(r.gw.stats[Stat.carriersInserted]).toBe(2);
  });

  it("dpvs IPv6: the TOA's 20 bytes come off the segment size", () => {
    const r = rig();
    r.open(C6, V6);
    const out = r.toServer(clientSuper(C6, V6, 30_000, 1428));
    const o = out[0]!;
    expect(new PacketInfo().parse(o.pkt, o.pkt.length).family).toBe(6);
    // 40 IPv6 + 20 TCP + 12 timestamps + 20 TOA.
    expect(o.hdr.gsoSize).toBe(MTU - 92);
    expect(o.hdr.gsoType).toBe(GsoType.tcpv6);
    for (const s of o.wire) expect(toaOf(s)?.data.length).toBe(18);
    expect(stream(out, CISN + 1)).toEqual(payload(30_000));
  });

  it("NAT64: an IPv6 client's super-packet leaves as IPv4 TSO, its checksum over the new pseudo-header", () => {
    const r = rig();
    const V64 = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0xf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64]);
    r.open(C6, V64);
    const out = r.toServer(clientSuper(C6, V64, 20_000, 1428));
    const o = out[0]!;
    expect(o.hdr.gsoType).toBe(GsoType.tcpv4);
    expect(Array.from(o.pkt.subarray(16, 20))).toEqual(Array.from(R4));
    expect(stream(out, CISN + 1)).toEqual(payload(20_000));
  });

  it("a server super-packet toward an IPv6 client over NAT64 grows 20 bytes of header: its segments shrink to fit", () => {
    const r = rig();
    const V64 = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0xf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64]);
    const { lip, lport, rs } = r.open(C6, V64);
    const reply = tcpPacket(rs, lip, {
      sport: 8080,
      dport: lport,
      seq: SISN + 1,
      ack: CISN + 1,
      flags: TcpFlag.ack,
      options: [NOP, NOP, timestampsOption(9, 7)],
      payload: payload(40_000),
    });
    const out = r.toClient(partial(reply, 1448));
    const o = out[0]!;
    expect(o.hdr.gsoType).toBe(GsoType.tcpv6);
    // 40 IPv6 + 20 TCP + 12 timestamps.
    expect(o.hdr.gsoSize).toBe(MTU - 72);
    expect(stream(out, SISN + 1)).toEqual(payload(40_000));
  });

  it("a partial checksum on a single segment stays partial and is right after NAT", () => {
    const r = rig();
    r.open(C4, V4);
    const out = r.toServer(clientSuper(C4, V4, 500, 0));
    expect(out[0]!.hdr.flags).toBe(VnetFlag.needsCsum);
    expect(out[0]!.hdr.gsoType).toBe(GsoType.none);
    expect(stream(out, CISN + 1)).toEqual(payload(500));
  });

  it("a UDP datagram's partial checksum is completed before the gateway: it leaves plain, with its UOA", () => {
    const r = rig();
    const out = r.toServer(partial(udpPacket(C4, V4, payload(100), { sport: 5555, dport: 53 })));
    expect(out).toHaveLength(1);
    expect(out[0]!.hdr).toEqual(PLAIN);
    expect(r.gw.stats[Stat.carriersInserted]).toBe(1);
  });
});

describe("PacketLoop with offloads: wire segments where they matter", () => {
  it("a super-packet that ends with a FIN is cut first: FIN on the last segment only, each segment as without offloads", () => {
    const r = rig();
    r.open(C4, V4);
    const out = r.toServer(clientSuper(C4, V4, 5000, 1448, TcpFlag.ack | TcpFlag.fin));
    // Without offloads 1448-byte segments have no room for the TOA (timestamps fill the MTU): dpvs prunes.
    expect(out.length).toBe(Math.ceil(5000 / 1448));
    for (const o of out) expect(o.hdr).toEqual(PLAIN);
    const flags = out.map((o) => tcpOf(o.pkt).flags & TcpFlag.fin);
    expect(flags).toEqual([0, 0, 0, TcpFlag.fin]);
    expect(stream(out, CISN + 1)).toEqual(payload(5000));
    expect(r.gw.stats[Stat.superPacketsSegmented]).toBe(1);
  });

  it("with faults on, super-packets are cut before the gateway, so the faults act per wire segment", () => {
    const r = rig();
    r.open(C4, V4);
    const drop2nd = parseFaultConfig({ rules: ["to-server:data:drop,skip=1,count=1"] });
    r.loop.faults = new FaultStage(drop2nd, r.gw.stats);
    const out = r.toServer(clientSuper(C4, V4, 4000, 1000));
    expect(out).toHaveLength(3);
    expect(out.map((o) => readU32(o.pkt, 24) - (CISN + 1))).toEqual([0, 2000, 3000]);
  });

  it("frames the kernel never writes are dropped and counted: unknown GSO type, GSO without NEEDS_CSUM, a checksum outside the packet", () => {
    const r = rig();
    r.open(C4, V4);
    const good = clientSuper(C4, V4, 3000, 1448);
    const ufo = good.slice();
    ufo[1] = GsoType.udp;
    const noCsum = good.slice();
    noCsum[0] = 0;
    const outside = partial(udpPacket(C4, V4, payload(10)));
    outside[6] = 0xff;
    for (const f of [ufo, noCsum, outside]) expect(r.toServer(f)).toEqual([]);
    expect(r.gw.stats[Stat.dropMalformed]).toBe(3);
    expect(r.toServer(good)).toHaveLength(1);
  });

  it("the null forwarder passes frames, header and all, unchanged", () => {
    const client = new MemoryTun("mem-c");
    const server = new MemoryTun("mem-s");
    const loop = new CopyLoop(client, server, () => 0, { offload: { mtu: MTU } });
    const f = clientSuper(C4, V4, 3000, 1448);
    client.inject(f);
    loop.fromClient();
    expect(server.drain()).toEqual([f]);
  });
});
