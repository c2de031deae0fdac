import { describe, expect, it } from "vitest";
import type { Gateway } from "../../src/fullnat-sim/gateway.js";
import { Stat } from "../../src/fullnat-sim/stats.js";
import { parseEndpoint, parseIp } from "../../src/option-codec/address.js";
import { readU16, readU32, toHex } from "../../src/option-codec/bytes.js";
import { verifyIcmpChecksum } from "../../src/option-codec/icmp.js";
import { IpProtocol } from "../../src/option-codec/ipv4.js";
import { emitPacket, ipHeaderFor, type L4Repr, PacketInfo } from "../../src/option-codec/packet.js";
import { TcpFlag } from "../../src/option-codec/tcp.js";
import { gatewayFor } from "./helpers/gateway.js";
import { C6, expectValidChecksums, tcpPacket, udpPacket, V6 } from "./helpers/packets.js";

const buf = new Uint8Array(4096);

/**
 * UDP without a carrier (max trail 0), so quotes are plain datagrams; or a
 * TCP service (IPv6, dpvs's TOA) for the errors whose MTU the TOA lowers.
 */
function gateway(family: 4 | 6 | 64, proto: "udp" | "tcp" = "udp"): Gateway {
  const vip =
    proto === "tcp"
      ? "[2001:db8:f::10]:80"
      : family === 4
        ? "203.0.113.10:53"
        : family === 6
          ? "[2001:db8:f::10]:53"
          : "[2001:db8:f::64]:53";
  const rs = family === 6 ? "[2001:db8:5::10]:5353" : "192.0.2.10:5353";
  return gatewayFor("dpvs", {
    settings: proto === "udp" ? { maxTrail: 0 } : {},
    services: [
      {
        vip: parseEndpoint(vip),
        proto,
        servers: [{ endpoint: parseEndpoint(rs), weight: 1 }],
        scheduler: "rr",
      },
    ],
    lips4: [parseIp("192.0.2.100")],
    lips6: [parseIp("2001:db8:5::100")],
    portMin: 5000,
    portMax: 5000,
    maxConnections: 4,
  });
}

const datagram = (src: string, dst: string, sport: number, dport: number): Uint8Array =>
  udpPacket(parseIp(src), parseIp(dst), Uint8Array.of(1, 2, 3, 4), { sport, dport });

/** An ICMP error from `from` to `to` quoting `quoted` (type and code given, 4 more bytes). */
function icmpError(
  from: string,
  to: string,
  type: number,
  code: number,
  rest: number[],
  quoted: Uint8Array,
): Uint8Array {
  const v6 = from.includes(":");
  const body = Uint8Array.from([type, code, 0, 0, ...rest, ...quoted]);
  const l4: L4Repr = { protocol: v6 ? IpProtocol.icmpv6 : IpProtocol.icmp, raw: body };
  const p = emitPacket({ ip: ipHeaderFor(parseIp(from), parseIp(to), l4), l4 });
  const info = new PacketInfo().parse(p, p.length);
  // Fill the ICMP checksum the way a kernel would, by the definition.
  let s = 0;
  const words: number[] = [];
  if (v6) {
    for (let i = 8; i < 40; i += 2) words.push(readU16(p, i));
    words.push(0, body.length, 0, IpProtocol.icmpv6);
  }
  for (let i = info.l4Offset; i < p.length; i += 2) words.push((p[i]! << 8) | (p[i + 1] ?? 0));
  for (const w of words) {
    s += w;
    s = (s & 0xffff) + (s >>> 16);
  }
  const c = ~s & 0xffff;
  p[info.l4Offset + 2] = c >> 8;
  p[info.l4Offset + 3] = c & 0xff;
  return p;
}

describe("ICMP errors from the server side", () => {
  it("port unreachable for a UDP flow reaches the client with the quote translated", () => {
    const gw = gateway(4);
    const d = datagram("198.51.100.7", "203.0.113.10", 40000, 53);
    buf.set(d);
    const n = gw.fromClient(buf, d.length, 0);
    const sent = buf.slice(0, n);
    const err = icmpError("192.0.2.10", "192.0.2.100", 3, 3, [0, 0, 0, 0], sent);
    buf.set(err);
    const m = gw.fromServer(buf, err.length, 1);
    expect(m).toBeGreaterThan(0);
    const info = new PacketInfo().parse(buf, m);
    expectValidChecksums(buf, m);
    expect(verifyIcmpChecksum(buf, info)).toBe(true);
    expect(Array.from(buf.slice(12, 20))).toEqual([203, 0, 113, 10, 198, 51, 100, 7]);
    const q = info.l4Offset + 8;
    expect(Array.from(buf.slice(q + 12, q + 20))).toEqual([198, 51, 100, 7, 203, 0, 113, 10]);
    expect(readU16(buf, q + 20)).toBe(40000);
    expect(readU16(buf, q + 22)).toBe(53);
    // The quoted header's checksum is valid again, and so is the quoted UDP checksum.
    expectValidChecksums(buf.slice(q), m - q);
    expect(gw.stats[Stat.icmpErrorsTranslated]).toBe(1);
  });

  it("IPv6 packet too big for a UDP flow passes its MTU on unchanged, addresses translated", () => {
    const gw = gateway(6);
    const d = datagram("2001:db8:c::7", "2001:db8:f::10", 40000, 53);
    buf.set(d);
    const n = gw.fromClient(buf, d.length, 0);
    const sent = buf.slice(0, n);
    const err = icmpError(
      "2001:db8:5::10",
      "2001:db8:5::100",
      2,
      0,
      [0, 0, 5, 0xdc],
      sent.slice(0, 48),
    );
    buf.set(err);
    const m = gw.fromServer(buf, err.length, 1);
    expect(m).toBeGreaterThan(0);
    const info = new PacketInfo().parse(buf, m);
    expect(verifyIcmpChecksum(buf, info)).toBe(true);
    expect(readU32(buf, info.l4Offset + 4)).toBe(1500);
    expect(toHex(buf.slice(24, 40))).toBe("20010db8000c00000000000000000007");
  });

  it("drops (and counts) echo replies and errors about unknown flows", () => {
    const gw = gateway(4);
    const echo = icmpError("192.0.2.10", "192.0.2.100", 0, 0, [0, 1, 0, 1], new Uint8Array(8));
    buf.set(echo);
    expect(gw.fromServer(buf, echo.length, 0)).toBe(-1);
    expect(gw.stats[Stat.dropIcmp]).toBe(1);
    const stray = icmpError(
      "192.0.2.10",
      "192.0.2.100",
      3,
      3,
      [0, 0, 0, 0],
      datagram("192.0.2.100", "192.0.2.10", 5000, 5353).slice(0, 28),
    );
    buf.set(stray);
    expect(gw.fromServer(buf, stray.length, 0)).toBe(-1);
    expect(gw.stats[Stat.dropNoConnection]).toBe(1);
  });

  it("NAT64: an ICMPv4 port unreachable becomes ICMPv6 with the quote as the client sent it", () => {
    const gw = gateway(64);
    const d = datagram("2001:db8:c::7", "2001:db8:f::64", 40000, 53);
    buf.set(d);
    const n = gw.fromClient(buf, d.length, 0);
    expect(n).toBeGreaterThan(0);
    const sent = buf.slice(0, n);
    expect(sent[0]! >> 4).toBe(4);
    // RFC 7915 §4.2: port unreachable, fragmentation needed (packet too big,
    // MTU + 20), host unreachable (no route), communication administratively
    // prohibited (code 1).
    for (const [code, type6, code6, mtu] of [
      [3, 1, 4, 0],
      [4, 2, 0, 1400 + 20],
      [1, 1, 0, 0],
      [13, 1, 1, 0],
    ] as const) {
      const err = icmpError(
        "192.0.2.10",
        "192.0.2.100",
        3,
        code,
        [0, 0, 1400 >> 8, 1400 & 0xff],
        sent,
      );
      buf.set(err);
      const m = gw.fromServer(buf, err.length, 1);
      expect(m).toBe(err.length + 40);
      const info = new PacketInfo().parse(buf, m);
      expect(info.family).toBe(6);
      expect(info.protocol).toBe(IpProtocol.icmpv6);
      expect(verifyIcmpChecksum(buf, info)).toBe(true);
      expect([buf[40], buf[41], readU32(buf, 44)]).toEqual([type6, code6, mtu]);
      expect(toHex(buf.slice(8, 24))).toBe("20010db8000f00000000000000000064");
      expect(toHex(buf.slice(24, 40))).toBe("20010db8000c00000000000000000007");
      // The quote: IPv6 client -> VIP, UDP 40000 -> 53, UDP checksum right for those.
      expect(toHex(buf.slice(56, 72))).toBe("20010db8000c00000000000000000007");
      expect(toHex(buf.slice(72, 88))).toBe("20010db8000f00000000000000000064");
      expect([readU16(buf, 88), readU16(buf, 90)]).toEqual([40000, 53]);
      const quote = buf.slice(48, m);
      quote[4] = 0;
      quote[5] = quote.length - 40;
      expectValidChecksums(quote, quote.length);
    }
    // Protocol unreachable has no ICMPv6 counterpart for a client: dropped, counted.
    const proto = icmpError("192.0.2.10", "192.0.2.100", 3, 2, [0, 0, 0, 0], sent);
    buf.set(proto);
    expect(gw.fromServer(buf, proto.length, 1)).toBe(-1);
    expect(gw.stats[Stat.dropIcmp]).toBe(1);
  });

  it("IPv6 packet too big for a TCP flow with a TOA: the MTU (32 bits at offset 4) less the TOA, the quote intact", () => {
    const gw = gateway(6, "tcp");
    const syn = tcpPacket(C6, V6, { flags: TcpFlag.syn, payload: new Uint8Array(0) });
    buf.set(syn);
    const n = gw.fromClient(buf, syn.length, 0);
    expect(n).toBeGreaterThan(0);
    const sent = buf.slice(0, n);
    const err = icmpError("2001:db8:5::10", "2001:db8:5::100", 2, 0, [0, 0, 5, 0xdc], sent);
    buf.set(err);
    const m = gw.fromServer(buf, err.length, 1);
    expect(m).toBe(err.length);
    const info = new PacketInfo().parse(buf, m);
    expect(verifyIcmpChecksum(buf, info)).toBe(true);
    // dpvs's IPv6 TOA is 20 bytes: segments toward the server grow by that much.
    expect(readU32(buf, info.l4Offset + 4)).toBe(1500 - 20);
    const q = info.l4Offset + 8;
    expect(buf[q]! >> 4).toBe(6);
    expect(toHex(buf.slice(q + 8, q + 24))).toBe("20010db8000c00000000000000000007");
    expect(toHex(buf.slice(q + 24, q + 40))).toBe("20010db8000f00000000000000000010");
    expect([readU16(buf, q + 40), readU16(buf, q + 42)]).toEqual([40000, 80]);
  });
});
