import { describe, expect, it } from "vitest";
import {
  formatIp,
  inPrefix,
  parseEndpoint,
  parseIp,
  parsePrefix,
} from "../../src/option-codec/address.js";
import { fromHex, toHex } from "../../src/option-codec/bytes.js";
import {
  encodeIpOptions,
  type IpOption,
  ipOptionsLength,
  parseIpOptions,
} from "../../src/option-codec/ip-options.js";
import {
  emitIpv4Header,
  type Ipv4Repr,
  ipv4Defaults,
  ipv4HeaderLength,
  parseIpv4Header,
} from "../../src/option-codec/ipv4.js";
import {
  emitIpv6Header,
  type Ipv6Repr,
  ipv6Defaults,
  ipv6HeaderLength,
  parseIpv6Header,
} from "../../src/option-codec/ipv6.js";
import { emitPacket, type PacketRepr, parsePacket } from "../../src/option-codec/packet.js";
import { emitTcp, parseTcp, type TcpRepr, tcpLength } from "../../src/option-codec/tcp.js";
import {
  encodeTcpOptions,
  mssOption,
  NOP,
  parseTcpOptions,
  sackOption,
  sackPermittedOption,
  type TcpOption,
  tcpOptionsLength,
  timestampsOption,
  windowScaleOption,
} from "../../src/option-codec/tcp-options.js";
import { emitUdp, parseUdp, type UdpRepr, udpLength } from "../../src/option-codec/udp.js";
import {
  decodeOpp,
  decodeUoaOption,
  encodeOpp,
  encodeUoaOption,
  type OppRepr,
  oppLength,
  type UoaRepr,
  uoaOptionLength,
} from "../../src/option-codec/uoa.js";
import { roundTrip } from "./helpers/round-trip.js";

const c4 = parseIp("198.51.100.7");
const c6 = parseIp("2001:db8:c::7");
const r4 = parseIp("192.0.2.10");
const r6 = parseIp("2001:db8:5::10");

const tcpRepr: TcpRepr = {
  srcPort: 40000,
  dstPort: 80,
  seq: 0xfffffff0,
  ack: 7,
  flags: 0x18,
  window: 65535,
  urgent: 0,
  options: [
    mssOption(1460),
    NOP,
    windowScaleOption(7),
    sackPermittedOption(),
    NOP,
    NOP,
    timestampsOption(1, 2),
    sackOption([[5, 9]]),
  ],
  payload: Uint8Array.of(1, 2, 3, 4, 5),
};

describe("round trips (encode length, decode∘encode, encode at an offset)", () => {
  it("IPv4 header with options", () => {
    const repr: Ipv4Repr = {
      ...ipv4Defaults(c4, r4, 17, 100),
      id: 0x1234,
      ttl: 3,
      tos: 0xb8,
      options: [
        { type: 0x1f, data: fromHex("9c40c6336407") },
        { type: 1, data: new Uint8Array(0) },
      ],
    };
    // The option list round-trips up to EOL padding, which decode drops.
    const codec = {
      length: ipv4HeaderLength,
      encode: (r: Ipv4Repr, b: Uint8Array, o: number) => emitIpv4Header(r, b, o),
      decode: (b: Uint8Array, o: number, e: number) => {
        // The header says total = header + 100 bytes; give the decoder room for them.
        const big = new Uint8Array(e - o + 100);
        big.set(b.subarray(o, e));
        const r = parseIpv4Header(big, 0, big.length);
        return { ...r, options: r.options.filter((x) => x.type !== 0) };
      },
    };
    roundTrip(codec, repr);
  });

  it("IPv6 header with extension headers", () => {
    const repr: Ipv6Repr = {
      ...ipv6Defaults(c6, r6, 6, 0),
      trafficClass: 0x2e,
      flowLabel: 0xabcde,
      extensionHeaders: [
        { type: 0, data: fromHex("00010400000000") },
        { type: 60, data: fromHex("01010c000000000000000000000000") },
      ],
    };
    roundTrip(
      {
        length: ipv6HeaderLength,
        encode: (r: Ipv6Repr, b: Uint8Array, o: number) => emitIpv6Header(r, b, o),
        decode: (b: Uint8Array, o: number, e: number) => {
          const { headerLength: _, ...r } = parseIpv6Header(b, o, e);
          return r;
        },
      },
      repr,
    );
  });

  it("TCP segment with every common option", () => {
    roundTrip({ length: tcpLength, encode: emitTcp, decode: parseTcp }, tcpRepr);
  });

  it("UDP datagram", () => {
    const r: UdpRepr = { srcPort: 1, dstPort: 65535, payload: new Uint8Array(33).fill(0x42) };
    roundTrip({ length: udpLength, encode: emitUdp, decode: parseUdp }, r);
  });

  it("TCP option lists", () => {
    const opts: TcpOption[] = [
      NOP,
      mssOption(536),
      { kind: 254, data: fromHex("9c40c6336407") },
      { kind: 99, data: new Uint8Array(0) },
    ];
    roundTrip(
      {
        length: (o: TcpOption[]) => (tcpOptionsLength(o) + 3) & ~3,
        encode: (o: TcpOption[], b: Uint8Array, at: number) => encodeTcpOptions(o, b, at),
        decode: (b: Uint8Array, at: number, e: number) => parseTcpOptions(b, at, e),
      },
      opts,
    );
  });

  it("IPv4 option lists", () => {
    const opts: IpOption[] = [
      { type: 0x94, data: fromHex("0000") },
      { type: 0x1f, data: fromHex("9c40c6336407") },
    ];
    roundTrip(
      {
        length: ipOptionsLength,
        encode: (o: IpOption[], b: Uint8Array, at: number) => encodeIpOptions(o, b, at),
        decode: (b: Uint8Array, at: number, e: number) => parseIpOptions(b, at, e),
      },
      opts,
    );
  });

  it("UOA option and opp header, v4 and v6", () => {
    for (const addr of [c4, c6]) {
      const u: UoaRepr = { addr, port: 40000 };
      roundTrip(
        {
          length: (x: UoaRepr) => uoaOptionLength(x.addr.length === 4 ? 4 : 6),
          encode: encodeUoaOption,
          decode: decodeUoaOption,
        },
        u,
      );
      const opp: OppRepr = { protocol: 17, uoa: u };
      roundTrip(
        {
          length: oppLength,
          encode: encodeOpp,
          decode: (b: Uint8Array, o: number, e: number) => {
            const { length: _, ...r } = decodeOpp(b, o, e);
            return r;
          },
        },
        opp,
      );
    }
  });

  it("whole packets", () => {
    const reprs: PacketRepr[] = [
      {
        ip: { family: 4, v4: ipv4Defaults(c4, r4, 6, tcpLength(tcpRepr)) },
        l4: { protocol: 6, tcp: tcpRepr },
      },
      {
        ip: { family: 6, v6: ipv6Defaults(c6, r6, 6, tcpLength(tcpRepr)) },
        l4: { protocol: 6, tcp: tcpRepr },
      },
      {
        ip: { family: 4, v4: ipv4Defaults(c4, r4, 17, 11) },
        l4: {
          protocol: 17,
          udp: { srcPort: 5, dstPort: 6, payload: Uint8Array.of(1, 2, 3) },
          udpChecksum: false,
        },
      },
      {
        ip: { family: 4, v4: ipv4Defaults(c4, r4, 47, 4) },
        l4: { protocol: 47, raw: Uint8Array.of(1, 2, 3, 4) },
      },
    ];
    for (const r of reprs) {
      const bytes = emitPacket(r);
      const back = parsePacket(bytes);
      expect(toHex(emitPacket(back))).toBe(toHex(bytes));
    }
  });
});

describe("addresses", () => {
  it.each([
    ["2001:db8::1", "2001:db8::1"],
    ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["::", "::"],
    ["::1", "::1"],
    ["::ffff:192.0.2.1", "::ffff:c000:201"],
    ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
    ["198.51.100.7", "198.51.100.7"],
  ])("%s formats as %s", (text, want) => {
    expect(formatIp(parseIp(text))).toBe(want);
  });

  it.each([
    "1.2.3",
    "1.2.3.256",
    "01.2.3.4",
    "1::2::3",
    "12345::",
    "2001:db8::g",
    "1.2.3.4:99999",
    "",
    "[::1]",
  ])("rejects %s", (text) => {
    expect(() =>
      text.includes(":") && !text.startsWith("[") && text.includes(".")
        ? parseEndpoint(text)
        : parseIp(text),
    ).toThrow(expect.objectContaining({ code: "BAD_ADDRESS" }));
  });

  it("parses endpoints", () => {
    expect(parseEndpoint("[2001:db8:c::7]:40000").port).toBe(40000);
    expect(() => parseEndpoint("198.51.100.7:0")).toThrow();
    expect(() => parseEndpoint("2001:db8::1:80")).toThrow();
  });

  it.each([
    ["198.51.100.0/24", "198.51.100.255", true],
    ["198.51.100.0/24", "198.51.101.0", false],
    ["192.0.2.96/27", "192.0.2.127", true],
    ["192.0.2.96/27", "192.0.2.128", false],
    ["2001:db8:c::/64", "2001:db8:c::7", true],
    ["2001:db8:c::/64", "2001:db8:c:1::7", false],
    ["2001:db8:c::/48", "2001:db8:c:5c::1", true],
    ["2001:db8::/29", "2001:dbf::1", true],
    ["2001:db8::/29", "2001:dc0::1", false],
    ["0.0.0.0/0", "203.0.113.10", true],
    ["0.0.0.0/0", "2001:db8::1", false],
    ["192.0.2.10", "192.0.2.10", true],
    ["192.0.2.10", "192.0.2.11", false],
  ])("%s holds %s: %s", (range, addr, want) => {
    expect(inPrefix(parseIp(addr), parsePrefix(range))).toBe(want);
  });

  it.each(["192.0.2.0/33", "2001:db8::/129", "192.0.2.0/", "192.0.2.0/-1", "192.0.2.0/2x", "x/8"])(
    "refuses the range %s",
    (text) => {
      expect(() => parsePrefix(text)).toThrow(expect.objectContaining({ code: "BAD_ADDRESS" }));
    },
  );
});
