import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { IpAddress } from "../../src/option-codec/address.js";
import { bytesEqual, fromHex, toHex } from "../../src/option-codec/bytes.js";
import { finish, sumBytes } from "../../src/option-codec/checksum.js";
import { CodecError, CodecErrorCode } from "../../src/option-codec/errors.js";
import {
  encodeIpOptions,
  type IpOption,
  IpOptionCursor,
  ipOptionsLength,
  parseIpOptions,
} from "../../src/option-codec/ip-options.js";
import { IpProtocol, type Ipv4Repr, parseIpv4Header } from "../../src/option-codec/ipv4.js";
import {
  Ipv6Chain,
  type Ipv6ExtensionHeader,
  type Ipv6Repr,
  parseIpv6Header,
} from "../../src/option-codec/ipv6.js";
import { rewriteAddresses, translate4to6, translate6to4 } from "../../src/option-codec/nat.js";
import {
  computeL4Checksum,
  emitPacket,
  fillIpv4Checksum,
  fillL4Checksum,
  ipHeaderFor,
  type L4Repr,
  PacketInfo,
  type PacketRepr,
  parsePacket,
  verifyL4Checksum,
} from "../../src/option-codec/packet.js";
import { insertPayloadPrefix } from "../../src/option-codec/payload-surgery.js";
import {
  decodeProxyV1,
  encodeProxyV1,
  type ProxyV1Repr,
  proxyV1Length,
} from "../../src/option-codec/proxy-v1.js";
import {
  decodeProxyV2,
  encodeProxyV2,
  type ProxyV2Repr,
  proxyV2Length,
} from "../../src/option-codec/proxy-v2.js";
import { decodeSpp, encodeSpp, SPP_LENGTH, type SppRepr } from "../../src/option-codec/spp.js";
import { emitTcp, parseTcp, type TcpRepr, tcpLength } from "../../src/option-codec/tcp.js";
import {
  encodeTcpOptions,
  mssOption,
  NOP,
  parseTcpOptions,
  sackOption,
  sackPermittedOption,
  type TcpOption,
  TcpOptionCursor,
  tcpOptionLength,
  timestampsOption,
  windowScaleOption,
} from "../../src/option-codec/tcp-options.js";
import {
  InsertResult,
  insertTcpOption,
  lowerMss,
  nopOutTcpOptions,
} from "../../src/option-codec/tcp-surgery.js";
import {
  decodeToa,
  encodeToa,
  type ToaFormat,
  type ToaLayout,
  toaLength,
} from "../../src/option-codec/toa.js";
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
import {
  insertUoaIpo,
  insertUoaOpp,
  removeUoaIpo,
  removeUoaOpp,
} from "../../src/option-codec/uoa-surgery.js";

// The contract for untrusted bytes: every decoder returns, or throws a
// CodecError with a known code and an offset inside the input. Inputs are half
// random bytes (which mostly die at the first check) and half valid encodings
// from the codecs' own encoders with a few mutations (which reach the deep
// checks). The checks are plain code, not expect(): they run 100,000 times.

const DECODER_RUNS = 100_000;
const SURGERY_RUNS = 100_000;
// The valid encodings that mutations start from are sampled with a fixed seed,
// so they are the same on every run; the properties draw fresh inputs each run.
// On failure fast-check prints the seed and path: FUZZ_SEED=<seed> replays it.
const POOL_SEED = 0x70a51;
const FUZZ_SEED = process.env["FUZZ_SEED"];
const REPLAY = FUZZ_SEED === undefined ? {} : { seed: Number(FUZZ_SEED) };

const CODES: ReadonlySet<string> = new Set(Object.values(CodecErrorCode));

function fail(why: string, input: Uint8Array): never {
  throw new Error(`${why}\n  input: ${toHex(input)}`);
}

/** Runs `f`; whatever it throws must be a CodecError with a known code and an offset in [lo, hi]. */
function onlyCodecErrors(f: () => unknown, lo: number, hi: number, input: Uint8Array): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof CodecError)) fail(`threw ${String(e)}`, input);
    if (!CODES.has(e.code)) fail(`unknown code ${e.code}`, input);
    if (!Number.isInteger(e.offset) || e.offset < lo || e.offset > hi) {
      fail(`${e.message}: offset outside [${lo}, ${hi}]`, input);
    }
  }
}

// --- arbitraries for valid values -----------------------------------------

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const bytes = (minLength: number, maxLength: number) => fc.uint8Array({ minLength, maxLength });
const addr4 = bytes(4, 4);
const addr6 = bytes(16, 16);
const anyAddr = fc.oneof(addr4, addr6);

/** Keeps options while they fit in `room` bytes. */
function takeWhileFits<T>(items: readonly T[], length: (x: T) => number, room: number): T[] {
  const out: T[] = [];
  let n = 0;
  for (const x of items) {
    if (n + length(x) > room) break;
    out.push(x);
    n += length(x);
  }
  return out;
}

const tcpOptionArb: fc.Arbitrary<TcpOption> = fc.oneof(
  fc.constant(NOP),
  u16.map(mssOption),
  fc.integer({ min: 0, max: 14 }).map(windowScaleOption),
  fc.constant(sackPermittedOption()),
  fc.tuple(u32, u32).map(([a, b]) => timestampsOption(a, b)),
  fc.array(fc.tuple(u32, u32), { minLength: 1, maxLength: 3 }).map(sackOption),
  // A client-sent TOA lookalike, which the gateway's pruning removes.
  fc.record({ kind: fc.constantFrom(253, 254), data: fc.oneof(bytes(6, 6), bytes(18, 18)) }),
  fc.record({ kind: fc.integer({ min: 2, max: 255 }), data: bytes(0, 10) }),
);
const tcpOptionsArb = fc
  .array(tcpOptionArb, { maxLength: 8 })
  .map((os) => takeWhileFits(os, tcpOptionLength, 40));

const ipOptionLength = (o: IpOption) => (o.type === 1 ? 1 : 2 + o.data.length);
const ipOptionArb: fc.Arbitrary<IpOption> = fc.oneof(
  fc.constant({ type: 1, data: new Uint8Array(0) }),
  // UOA (type 31) as DPVS's ipo mode puts it, so removeUoaIpo has work.
  fc.record({ type: fc.constant(0x1f), data: fc.oneof(bytes(6, 6), bytes(18, 18)) }),
  fc.record({ type: fc.integer({ min: 2, max: 255 }), data: bytes(0, 8) }),
);
const ipOptionsArb = fc
  .array(ipOptionArb, { maxLength: 5 })
  .map((os) => takeWhileFits(os, ipOptionLength, 40))
  .filter((os) => ipOptionsLength(os) <= 40);

const tcpReprArb: fc.Arbitrary<TcpRepr> = fc.record({
  srcPort: u16,
  dstPort: u16,
  seq: u32,
  ack: u32,
  flags: u8,
  window: u16,
  urgent: u16,
  options: tcpOptionsArb,
  payload: bytes(0, 40),
});
const udpReprArb: fc.Arbitrary<UdpRepr> = fc.record({
  srcPort: u16,
  dstPort: u16,
  payload: bytes(0, 40),
});

const l4Arb: fc.Arbitrary<L4Repr> = fc.oneof(
  { weight: 3, arbitrary: tcpReprArb.map((tcp) => ({ protocol: IpProtocol.tcp, tcp })) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(udpReprArb, fc.boolean())
      .map(([udp, udpChecksum]) => ({ protocol: IpProtocol.udp, udp, udpChecksum })),
  },
  {
    weight: 1,
    // ICMP, GRE, ICMPv6, no-next, SCTP, opp (248) with whatever follows.
    arbitrary: fc.record({ protocol: fc.constantFrom(1, 47, 58, 59, 132, 248), raw: bytes(0, 40) }),
  },
);

const ipv4Arb: fc.Arbitrary<Ipv4Repr> = fc.record({
  src: addr4,
  dst: addr4,
  protocol: fc.constant(0),
  ttl: u8,
  tos: u8,
  id: u16,
  dontFragment: fc.boolean(),
  // Mostly whole packets; now and then a fragment, which skips the L4 checks.
  moreFragments: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, fc.constant(true)),
  fragmentOffset: fc.oneof(
    { weight: 9, arbitrary: fc.constant(0) },
    fc.integer({ min: 1, max: 0x1fff }),
  ),
  options: fc.oneof(fc.constant([]), ipOptionsArb),
  payloadLength: fc.constant(0),
});

/** An extension header with a consistent length byte (data = bytes after next-header). */
const extArb: fc.Arbitrary<Ipv6ExtensionHeader> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ type: fc.constantFrom(0, 60, 43, 135), n: fc.nat(2), fill: u8 }),
  }.arbitrary.map(({ type, n, fill }) => {
    const data = new Uint8Array((n + 1) * 8 - 1).fill(fill);
    data[0] = n;
    return { type, data };
  }),
  {
    weight: 1,
    arbitrary: fc
      .record({ offset: fc.integer({ min: 0, max: 0x1fff }), more: fc.boolean(), id: u32 })
      .map(({ offset, more, id }) => {
        const data = new Uint8Array(7);
        const fo = (offset << 3) | (more ? 1 : 0);
        data[1] = fo >> 8;
        data[2] = fo & 0xff;
        data.set([id >>> 24, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff], 3);
        return { type: IpProtocol.ipv6Fragment, data };
      }),
  },
  {
    weight: 1,
    // AH counts 4-byte words minus 2: n = 1 is 12 bytes, n = 4 is 24.
    arbitrary: fc.record({ n: fc.constantFrom(1, 2, 4), fill: u8 }).map(({ n, fill }) => {
      const data = new Uint8Array((n + 2) * 4 - 1).fill(fill);
      data[0] = n;
      return { type: IpProtocol.ah, data };
    }),
  },
);

const ipv6Arb: fc.Arbitrary<Ipv6Repr> = fc.record({
  src: addr6,
  dst: addr6,
  protocol: fc.constant(0),
  hopLimit: u8,
  trafficClass: u8,
  flowLabel: fc.integer({ min: 0, max: 0xfffff }),
  extensionHeaders: fc.oneof(
    { weight: 3, arbitrary: fc.constant([]) },
    fc.array(extArb, { minLength: 1, maxLength: 3 }),
  ),
  payloadLength: fc.constant(0),
});

const packetReprArb = (family: 4 | 6 | "any"): fc.Arbitrary<PacketRepr> => {
  const ip4 = ipv4Arb.map((v4) => ({ family: 4 as const, v4 }));
  const ip6 = ipv6Arb.map((v6) => ({ family: 6 as const, v6 }));
  const ip = family === 4 ? ip4 : family === 6 ? ip6 : fc.oneof(ip4, ip6);
  return fc.record({ ip, l4: l4Arb });
};

const toaFormats: Record<ToaLayout, readonly ToaFormat[]> = {
  "port-addr": [
    { kind: 254, layout: "port-addr" },
    { kind: 253, layout: "port-addr" },
    { kind: 200, layout: "port-addr" },
  ],
  "port-addr-vaddr": [{ kind: 254, layout: "port-addr-vaddr" }],
  ttm: [
    { kind: 254, layout: "ttm", afOrder: "host" },
    { kind: 254, layout: "ttm", afOrder: "network" },
  ],
  "version-addr": [{ kind: 28, layout: "version-addr" }],
};

function toaBytes(format: ToaFormat, addr: IpAddress, port: number, vaddr: IpAddress): Uint8Array {
  const v4only = format.layout === "port-addr-vaddr";
  const a = v4only && addr.length !== 4 ? addr.subarray(0, 4) : addr;
  const b = new Uint8Array(toaLength(format, a.length === 4 ? 4 : 6));
  const repr = v4only ? { addr: a, port, vaddr, vport: port ^ 0x5a5a } : { addr: a, port };
  encodeToa(format, repr, b, 0);
  return b;
}

const proxyV1Arb: fc.Arbitrary<ProxyV1Repr> = fc.oneof(
  fc.record({
    protocol: fc.constant("TCP4" as const),
    source: fc.record({ addr: addr4, port: u16 }),
    destination: fc.record({ addr: addr4, port: u16 }),
  }),
  fc.record({
    protocol: fc.constant("TCP6" as const),
    source: fc.record({ addr: addr6, port: u16 }),
    destination: fc.record({ addr: addr6, port: u16 }),
  }),
  fc.constant({ protocol: "UNKNOWN" as const }),
);

const tlvsArb = fc.array(fc.record({ type: u8, value: bytes(0, 8) }), { maxLength: 3 });
const proxyV2Arb: fc.Arbitrary<ProxyV2Repr> = fc.oneof(
  fc.record({
    command: fc.constantFrom("local" as const, "proxy" as const),
    transport: fc.constant("unspec" as const),
    tlvs: tlvsArb,
  }),
  fc.integer({ min: 0, max: 1 }).chain((v6) => {
    const addr = v6 ? addr6 : addr4;
    return fc.record({
      command: fc.constantFrom("local" as const, "proxy" as const),
      transport: fc.constantFrom("stream" as const, "dgram" as const),
      source: fc.record({ addr, port: u16 }),
      destination: fc.record({ addr, port: u16 }),
      tlvs: tlvsArb,
    });
  }),
);

const sppArb: fc.Arbitrary<SppRepr> = fc.record({
  client: fc.record({ addr: anyAddr, port: u16 }),
  proxy: fc.record({ addr: anyAddr, port: u16 }),
});

// --- seeds: valid encodings and where their length fields are ------------

/** A valid encoding, and the offsets of its length-like bytes, for targeted mutations. */
interface Seed {
  readonly bytes: Uint8Array;
  readonly fields: readonly number[];
}

function sample<T>(arb: fc.Arbitrary<T>, n: number): T[] {
  return fc.sample(arb, { numRuns: n, seed: POOL_SEED });
}

const tcpCursor = new TcpOptionCursor();
const ipCursor = new IpOptionCursor();

function tcpOptionFields(b: Uint8Array, start: number, end: number, out: number[]): void {
  tcpCursor.reset(b, start, end);
  while (tcpCursor.next()) out.push(tcpCursor.at, tcpCursor.at + 1);
}

function ipOptionFields(b: Uint8Array, start: number, end: number, out: number[]): void {
  ipCursor.reset(b, start, end);
  while (ipCursor.next()) out.push(ipCursor.at, ipCursor.at + 1);
}

/** Version/IHL, lengths, next-header bytes, option lengths, TCP data offset, UDP length. */
function packetSeed(b: Uint8Array): Seed {
  const f: number[] = [];
  const info = new PacketInfo().parse(b, b.length);
  if (info.family === 4) {
    f.push(0, 2, 3, 9);
    ipOptionFields(b, 20, info.ipHeaderLength, f);
  } else {
    f.push(0, 4, 5, 6);
    let p = 40;
    for (const e of parseIpv6Header(b).extensionHeaders) {
      f.push(p, p + 1);
      p += 1 + e.data.length;
    }
  }
  const t = info.l4Offset;
  if (!info.isFragment && info.protocol === IpProtocol.tcp) {
    f.push(t + 12);
    tcpOptionFields(b, t + 20, t + info.tcpHeaderLength, f);
  } else if (!info.isFragment && info.protocol === IpProtocol.udp) {
    f.push(t + 4, t + 5);
  } else if (info.protocol === IpProtocol.uoaOpp) {
    f.push(t, t + 2, t + 3, t + 5);
  }
  return { bytes: b, fields: f };
}

const packetSeeds = (family: 4 | 6 | "any", n: number) =>
  sample(packetReprArb(family), n).map((p) => packetSeed(emitPacket(p)));

// --- mutations ------------------------------------------------------------

interface Mutation {
  readonly op: number;
  readonly at: number;
  readonly v: number;
}

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  op: fc.nat(4),
  at: fc.nat(),
  v: fc.nat(),
});

// Boundary values for lengths, IHL/data-offset nibbles and version nibbles.
const SPECIAL = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x0f, 0x10, 0x13, 0x14, 0x15, 0x27, 0x28, 0x3f, 0x40, 0x44, 0x45,
  0x46, 0x4f, 0x50, 0x5f, 0x60, 0x7f, 0x80, 0xf0, 0xfe, 0xff,
];

function fieldAt(b: Uint8Array, seed: Seed, at: number): number {
  return seed.fields.length > 0 ? seed.fields[at % seed.fields.length]! : at % b.length;
}

/** Truncate, flip a byte, overwrite a length field (8 or 16 bits), or append garbage. */
function mutate(b: Uint8Array, seed: Seed, m: Mutation): Uint8Array {
  if (m.op === 0) return b.subarray(0, m.at % (b.length + 1));
  if (m.op === 4) {
    const n = (m.at % 24) + 1;
    const out = new Uint8Array(b.length + n);
    out.set(b);
    for (let i = 0; i < n; i++) out[b.length + i] = (Math.imul(m.v + i, 0x9e3779b1) >>> 24) & 0xff;
    return out;
  }
  if (b.length === 0) return b;
  const out = b.slice();
  if (m.op === 1) {
    const at = m.at % b.length;
    out[at] = out[at]! ^ ((m.v % 255) + 1);
    return out;
  }
  const at = fieldAt(b, seed, m.at);
  if (at >= b.length) return b;
  if (m.op === 2) {
    out[at] = m.v % 2 === 0 ? SPECIAL[(m.v >>> 1) % SPECIAL.length]! : (m.v >>> 1) & 0xff;
  } else {
    out[at] = (m.v >>> 8) & 0xff;
    if (at + 1 < b.length) out[at + 1] = m.v & 0xff;
  }
  return out;
}

/** Half random bytes, half mutated seeds. */
function inputArb(seeds: readonly Seed[], maxRandom: number): fc.Arbitrary<Uint8Array> {
  const mutated = fc
    .tuple(fc.nat(seeds.length - 1), fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
    .map(([i, ms]) => {
      const seed = seeds[i]!;
      return ms.reduce((b, m) => mutate(b, seed, m), seed.bytes);
    });
  return fc.oneof(fc.uint8Array({ maxLength: maxRandom }), mutated);
}

interface Framed {
  readonly buf: Uint8Array;
  readonly off: number;
  readonly end: number;
}

/**
 * The input at a random offset inside a bigger buffer, so offsets must be
 * absolute and `end` must be honoured: the bytes after it are garbage a
 * decoder that read on would see.
 */
function framed(input: fc.Arbitrary<Uint8Array>, atZero = false): fc.Arbitrary<Framed> {
  return fc
    .tuple(input, atZero ? fc.constant(0) : fc.nat(5), fc.nat(6), u8)
    .map(([b, pre, post, fill]) => {
      const buf = new Uint8Array(pre + b.length + post).fill(fill);
      buf.set(b, pre);
      return { buf, off: pre, end: pre + b.length };
    });
}

function decoderProperty(
  arb: fc.Arbitrary<Framed>,
  decode: (buf: Uint8Array, off: number, end: number) => unknown,
): void {
  fc.assert(
    fc.property(arb, ({ buf, off, end }) => {
      onlyCodecErrors(() => decode(buf, off, end), off, end, buf.subarray(off, end));
    }),
    { numRuns: DECODER_RUNS, ...REPLAY },
  );
}

// --- the decoders -----------------------------------------------------------

describe("decoders take untrusted bytes: only CodecErrors, offsets inside the input", () => {
  const anyPackets = packetSeeds("any", 600);
  const v4Packets = packetSeeds(4, 400);
  const v6Packets = packetSeeds(6, 400);
  const packets = framed(inputArb(anyPackets, 120), true);

  it("new PacketInfo().parse(buf, len)", () => {
    const info = new PacketInfo();
    decoderProperty(packets, (buf, _off, end) => info.parse(buf, end));
  });

  it("parsePacket(buf, len)", () => {
    decoderProperty(packets, (buf, _off, end) => parsePacket(buf, end));
  });

  it("parseIpv4Header", () => {
    decoderProperty(framed(inputArb(v4Packets, 80)), parseIpv4Header);
  });

  it("parseIpv6Header", () => {
    decoderProperty(framed(inputArb(v6Packets, 120)), parseIpv6Header);
  });

  it("new Ipv6Chain().walk", () => {
    const chain = new Ipv6Chain();
    decoderProperty(framed(inputArb(v6Packets, 120)), (buf, off, end) => chain.walk(buf, off, end));
  });

  it("parseTcp", () => {
    const seeds = sample(tcpReprArb, 400).map((r) => {
      const b = new Uint8Array(tcpLength(r));
      emitTcp(r, b, 0);
      const f = [12];
      tcpOptionFields(b, 20, (b[12]! >> 4) * 4, f);
      return { bytes: b, fields: f };
    });
    decoderProperty(framed(inputArb(seeds, 80)), parseTcp);
  });

  it("parseUdp", () => {
    const seeds = sample(udpReprArb, 200).map((r) => {
      const b = new Uint8Array(udpLength(r));
      emitUdp(r, b, 0);
      return { bytes: b, fields: [4, 5] };
    });
    decoderProperty(framed(inputArb(seeds, 60)), parseUdp);
  });

  it("parseTcpOptions", () => {
    const seeds = sample(tcpOptionsArb, 400).map((os) => {
      const b = new Uint8Array(40);
      const n = encodeTcpOptions(os, b, 0);
      const f: number[] = [];
      tcpOptionFields(b, 0, n, f);
      return { bytes: b.slice(0, n), fields: f };
    });
    decoderProperty(framed(inputArb(seeds, 44)), parseTcpOptions);
  });

  it("parseIpOptions", () => {
    const seeds = sample(ipOptionsArb, 400).map((os) => {
      const b = new Uint8Array(40);
      const n = encodeIpOptions(os, b, 0);
      const f: number[] = [];
      ipOptionFields(b, 0, n, f);
      return { bytes: b.slice(0, n), fields: f };
    });
    decoderProperty(framed(inputArb(seeds, 44)), parseIpOptions);
  });

  for (const [layout, formats] of Object.entries(toaFormats)) {
    it(`decodeToa, layout ${layout}`, () => {
      const seedArb = fc.tuple(fc.constantFrom(...formats), anyAddr, u16, addr4);
      const seeds = sample(seedArb, 200).map(([format, addr, port, vaddr]) => ({
        bytes: toaBytes(format, addr, port, vaddr),
        fields: [0, 1, 2, 3],
      }));
      const arb = fc.tuple(framed(inputArb(seeds, 30)), fc.constantFrom(...formats));
      fc.assert(
        fc.property(arb, ([{ buf, off, end }, format]) => {
          const input = buf.subarray(off, end);
          onlyCodecErrors(() => decodeToa(format, buf, off, end), off, end, input);
        }),
        { numRuns: DECODER_RUNS, ...REPLAY },
      );
    });
  }

  it("decodeUoaOption", () => {
    const seeds = sample(fc.record({ addr: anyAddr, port: u16 }), 200).map((r: UoaRepr) => {
      const b = new Uint8Array(uoaOptionLength(r.addr.length === 4 ? 4 : 6));
      encodeUoaOption(r, b, 0);
      return { bytes: b, fields: [0, 1] };
    });
    decoderProperty(framed(inputArb(seeds, 30)), decodeUoaOption);
  });

  it("decodeOpp", () => {
    const oppArb = fc.record({ protocol: u8, uoa: fc.record({ addr: anyAddr, port: u16 }) });
    const seeds = sample(oppArb, 200).map((r: OppRepr) => {
      const b = new Uint8Array(oppLength(r));
      encodeOpp(r, b, 0);
      return { bytes: b, fields: [0, 1, 2, 3, 4, 5] };
    });
    decoderProperty(framed(inputArb(seeds, 30)), decodeOpp);
  });

  it("decodeProxyV1", () => {
    const seeds = sample(proxyV1Arb, 300).map((r) => {
      const b = new Uint8Array(proxyV1Length(r));
      encodeProxyV1(r, b, 0);
      // Separators and line end: where a mutation changes the grammar.
      const f: number[] = [];
      b.forEach((x, i) => {
        if (x === 0x20 || x === 0x0d || x === 0x0a) f.push(i);
      });
      return { bytes: b, fields: f };
    });
    decoderProperty(framed(inputArb(seeds, 120)), decodeProxyV1);
  });

  it("decodeProxyV2", () => {
    const seeds = sample(proxyV2Arb, 300).map((r) => {
      const b = new Uint8Array(proxyV2Length(r));
      encodeProxyV2(r, b, 0);
      const f = [12, 13, 14, 15];
      let p = 16 + (r.source ? 2 * r.source.addr.length + 4 : 0);
      for (const t of r.tlvs) {
        f.push(p + 1, p + 2);
        p += 3 + t.value.length;
      }
      return { bytes: b, fields: f };
    });
    decoderProperty(framed(inputArb(seeds, 80)), decodeProxyV2);
  });

  it("decodeSpp", () => {
    const seeds = sample(sppArb, 200).map((r) => {
      const b = new Uint8Array(SPP_LENGTH);
      encodeSpp(r, b, 0);
      return { bytes: b, fields: [0, 1] };
    });
    decoderProperty(framed(inputArb(seeds, 48)), decodeSpp);
  });
});

// --- the surgery functions ------------------------------------------------

// Surgery runs on packets PacketInfo.parse accepted: valid ones from emitPacket,
// and some whose TCP or IPv4 options were then garbled (PacketInfo does not
// read options) with checksums refilled, so only the options are wrong.

interface Prepared {
  readonly buf: Uint8Array;
  readonly info: PacketInfo;
  /** The packet before the edit. */
  readonly orig: Uint8Array;
  /** TCP/UDP whose checksum verified before the edit: it must verify after. */
  readonly l4Ok: boolean;
  /** A UDP checksum that was not zero: it must not become zero ("none") either. */
  readonly udpSummed: boolean;
}

const surgeryPool = sample(packetReprArb("any"), 1500).map((p) => emitPacket(p));

const caseArb = fc.record({
  i: fc.nat(surgeryPool.length - 1),
  garble: fc.option(fc.record({ tcp: fc.boolean(), at: fc.nat(), v: u8 }), { freq: 3 }),
  room: fc.oneof(fc.nat(64), fc.constant(2048)),
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

function isL4(info: PacketInfo): boolean {
  return !info.isFragment && (info.protocol === IpProtocol.tcp || info.protocol === IpProtocol.udp);
}

function udpChecksumField(buf: Uint8Array, info: PacketInfo): number {
  return (buf[info.l4Offset + 6]! << 8) | buf[info.l4Offset + 7]!;
}

function prepare(c: Case): Prepared {
  const pkt = surgeryPool[c.i]!;
  const buf = new Uint8Array(pkt.length + c.room);
  buf.set(pkt);
  const info = new PacketInfo().parse(buf, pkt.length);
  const g = c.garble;
  if (g) {
    const t = info.l4Offset;
    const tcpOpts = info.tcpHeaderLength - 20;
    if (g.tcp && tcpOpts > 0) {
      buf[t + 20 + (g.at % tcpOpts)] = g.v;
      fillL4Checksum(buf, info);
    } else if (info.family === 4 && info.ipHeaderLength > 20) {
      buf[20 + (g.at % (info.ipHeaderLength - 20))] = g.v;
      fillIpv4Checksum(buf, info);
    }
  }
  const l4Ok = isL4(info) && verifyL4Checksum(buf, info);
  const udpSummed = info.protocol === IpProtocol.udp && l4Ok && udpChecksumField(buf, info) !== 0;
  return { buf, info, orig: buf.slice(0, info.length), l4Ok, udpSummed };
}

/** Runs the edit; a CodecError means "refused" (undefined), anything else fails the property. */
function attempt<T>(p: Prepared, edit: () => T): T | undefined {
  try {
    return edit();
  } catch (e) {
    if (e instanceof CodecError && CODES.has(e.code)) return undefined;
    return fail(`threw ${String(e)}`, p.orig);
  }
}

function check(cond: boolean, why: string, p: Prepared): void {
  if (!cond) fail(why, p.orig);
}

function ipv4HeaderVerifies(buf: Uint8Array, info: PacketInfo): boolean {
  return finish(sumBytes(buf, 0, info.ipHeaderLength)) === 0;
}

/**
 * After a successful edit: the packet parses at the length the edit says it
 * has, `info` agrees with a fresh parse, and the checksums that held before
 * hold now.
 */
function checkEdited(p: Prepared, what: string, syncInfo = true): PacketInfo {
  const { buf, info } = p;
  let fresh: PacketInfo;
  try {
    fresh = new PacketInfo().parse(buf, info.length);
  } catch (e) {
    return fail(
      `${what}: the result does not parse: ${String(e)}\n  after: ${toHex(buf.subarray(0, info.length))}`,
      p.orig,
    );
  }
  check(fresh.length === info.length, `${what}: IP length ${fresh.length} != ${info.length}`, p);
  if (syncInfo) {
    const keys = [
      "family",
      "ipHeaderLength",
      "protocol",
      "protocolFieldOffset",
      "srcOffset",
      "dstOffset",
      "l4Offset",
      "payloadOffset",
    ] as const;
    for (const k of keys) {
      check(
        fresh[k] === info[k],
        `${what}: info.${k} ${info[k]}, a fresh parse says ${fresh[k]}`,
        p,
      );
    }
  }
  if (fresh.family === 4) check(ipv4HeaderVerifies(buf, fresh), `${what}: IPv4 header checksum`, p);
  if (p.l4Ok && isL4(fresh)) {
    check(verifyL4Checksum(buf, fresh), `${what}: L4 checksum`, p);
    if (p.udpSummed && fresh.protocol === IpProtocol.udp) {
      check(udpChecksumField(buf, fresh) !== 0, `${what}: UDP checksum became 0 ("none")`, p);
    }
  }
  return fresh;
}

function surgeryProperty<T>(arb: fc.Arbitrary<T>, body: (p: Prepared, params: T) => void): void {
  fc.assert(
    fc.property(caseArb, arb, (c, params) => body(prepare(c), params)),
    { numRuns: SURGERY_RUNS, ...REPLAY },
  );
}

const mtuArb = fc.oneof(fc.constant(1500), fc.integer({ min: 40, max: 300 }));

/** Option bytes to insert: a TOA of some dialect, or any well-formed option up to 40 bytes. */
const insertOptionArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc
    .tuple(fc.constantFrom(...Object.values(toaFormats).flat()), anyAddr, u16, addr4)
    .map(([format, addr, port, vaddr]) => toaBytes(format, addr, port, vaddr)),
  fc
    .record({
      kind: fc.integer({ min: 2, max: 255 }),
      len: fc.integer({ min: 2, max: 40 }),
      fill: u8,
    })
    .map(({ kind, len, fill }) => {
      const b = new Uint8Array(len).fill(fill);
      b[0] = kind;
      b[1] = len;
      return b;
    }),
);

const isTcp = (info: PacketInfo) => !info.isFragment && info.protocol === IpProtocol.tcp;

function tcpPayloadKept(p: Prepared, before: PacketInfo, what: string): void {
  const { buf, info } = p;
  const n = info.length - info.payloadOffset;
  check(n === p.orig.length - before.payloadOffset, `${what}: payload length changed`, p);
  check(
    bytesEqual(buf, info.payloadOffset, p.orig, before.payloadOffset, n),
    `${what}: payload changed`,
    p,
  );
}

function snapshot(info: PacketInfo): PacketInfo {
  return Object.assign(new PacketInfo(), info);
}

describe("surgery on parsed packets: only CodecErrors, and the result parses and checksums", () => {
  it("insertTcpOption", () => {
    const params = fc.record({
      opt: insertOptionArb,
      mtu: mtuArb,
      prune: fc.boolean(),
      stale: fc.subarray([253, 254, 8, 2]),
    });
    surgeryProperty(params, (p, { opt, mtu, prune, stale }) => {
      if (!isTcp(p.info)) return;
      const before = snapshot(p.info);
      const policy = { mtu, prune, staleKinds: stale };
      const r = attempt(p, () => insertTcpOption(p.buf, p.info, opt, 0, opt.length, policy));
      if (r === undefined) return;
      if (r === InsertResult.noRoom) {
        check(bytesEqual(p.buf, 0, p.orig, 0, p.orig.length), "noRoom changed the packet", p);
        return;
      }
      checkEdited(p, "insertTcpOption");
      check(p.info.length <= Math.min(mtu, p.buf.length), "grew past the MTU", p);
      const at = p.info.l4Offset + 20;
      check(bytesEqual(p.buf, at, opt, 0, opt.length), "the option is not first", p);
      tcpPayloadKept(p, before, "insertTcpOption");
    });
  });

  it("nopOutTcpOptions", () => {
    const kinds = fc.tuple(fc.subarray([2, 3, 4, 5, 8, 28, 34, 253, 254]), u8);
    surgeryProperty(kinds, (p, [list, extra]) => {
      if (!isTcp(p.info)) return;
      const ks = [...list, extra];
      const n = attempt(p, () => nopOutTcpOptions(p.buf, p.info, ks));
      if (n === undefined) return;
      checkEdited(p, "nopOutTcpOptions");
      check(p.info.length === p.orig.length, "length changed", p);
      const t = p.info.l4Offset;
      const left = parseTcpOptions(p.buf, t + 20, t + p.info.tcpHeaderLength);
      check(!left.some((o) => o.data.length > 0 && ks.includes(o.kind)), "an option survived", p);
    });
  });

  it("lowerMss", () => {
    const params = fc.tuple(fc.nat(200), fc.oneof(fc.constant(536), fc.nat(1500)));
    surgeryProperty(params, (p, [delta, floor]) => {
      if (!isTcp(p.info)) return;
      const mss = attempt(p, () => lowerMss(p.buf, p.info, delta, floor));
      if (mss === undefined) return;
      checkEdited(p, "lowerMss");
      check(mss >= -1 && mss <= 0xffff, `MSS ${mss}`, p);
    });
  });

  it("insertUoaIpo, then removeUoaIpo restores the packet", () => {
    surgeryProperty(fc.tuple(addr4, u16, mtuArb), (p, [addr, port, mtu]) => {
      const ok = attempt(p, () => insertUoaIpo(p.buf, p.info, addr, 0, port, mtu));
      if (ok === undefined) return;
      if (!ok) {
        check(bytesEqual(p.buf, 0, p.orig, 0, p.orig.length), "false changed the packet", p);
        return;
      }
      checkEdited(p, "insertUoaIpo");
      check(p.info.length <= mtu, "grew past the MTU", p);
      const uoa = attempt(p, () => removeUoaIpo(p.buf, p.info));
      check(uoa?.port === port && bytesEqual(uoa.addr, 0, addr, 0, 4), "UOA read back", p);
      check(p.info.length === p.orig.length, "length not restored", p);
      check(bytesEqual(p.buf, 0, p.orig, 0, p.orig.length), "bytes not restored", p);
    });
  });

  it("removeUoaIpo", () => {
    surgeryProperty(fc.constant(0), (p) => {
      const uoa = attempt(p, () => removeUoaIpo(p.buf, p.info));
      if (uoa === undefined || uoa === null) return;
      checkEdited(p, "removeUoaIpo");
      check(p.info.length < p.orig.length, "nothing removed", p);
    });
  });

  it("insertUoaOpp, then removeUoaOpp restores the datagram", () => {
    surgeryProperty(fc.tuple(anyAddr, u16, mtuArb), (p, [addr, port, mtu]) => {
      // insertUoaOpp does not refuse fragments, but only a first fragment has the
      // UDP header the opp header must precede: the gateway does not ask for it.
      if (p.info.isFragment) return;
      const family = p.info.family;
      const udpAt = p.info.l4Offset;
      const len = addr.length === 4 ? 4 : 16;
      const ok = attempt(p, () => insertUoaOpp(p.buf, p.info, addr, 0, len, port, mtu));
      if (ok === undefined) return;
      if (!ok) {
        check(bytesEqual(p.buf, 0, p.orig, 0, p.orig.length), "false changed the packet", p);
        return;
      }
      check(p.info.length <= mtu, "grew past the MTU", p);
      // insertUoaOpp leaves info.l4Offset at the UDP header; a parse puts it at opp.
      const fresh = checkEdited(p, "insertUoaOpp", false);
      check(fresh.protocol === IpProtocol.uoaOpp, "protocol is not 248", p);
      const uoa = attempt(p, () => removeUoaOpp(p.buf, fresh));
      check(uoa?.port === port && bytesEqual(uoa.addr, 0, addr, 0, len), "UOA read back", p);
      check(fresh.length === p.orig.length, "length not restored", p);
      const want = p.orig.slice();
      // Over IPv4 the UDP checksum goes out as zero, as DPVS sends it.
      if (family === 4) want.fill(0, udpAt + 6, udpAt + 8);
      check(bytesEqual(p.buf, 0, want, 0, want.length), "bytes not restored", p);
      if (p.l4Ok) check(verifyL4Checksum(p.buf, fresh), "UDP checksum after removal", p);
    });
  });

  it("removeUoaOpp, on opp packets and garbled ones", () => {
    const params = fc.tuple(anyAddr, u16, fc.option(fc.tuple(fc.nat(), u8), { freq: 2 }));
    surgeryProperty(params, (p, [addr, port, garble]) => {
      let { info } = p;
      let clean = true;
      if (isL4(info) && info.protocol === IpProtocol.udp) {
        const len = addr.length === 4 ? 4 : 16;
        if (!insertUoaOpp(p.buf, info, addr, 0, len, port, 0xffff)) return;
        info = new PacketInfo().parse(p.buf, info.length);
        if (garble) {
          const [at, v] = garble;
          p.buf[info.l4Offset + (at % (4 + len + 4))] = v;
          clean = false;
        }
      } else if (info.protocol !== IpProtocol.uoaOpp) {
        clean = false;
      }
      const q: Prepared = { ...p, info, l4Ok: p.l4Ok && clean, udpSummed: false };
      const uoa = attempt(q, () => removeUoaOpp(p.buf, info));
      if (uoa === undefined) return;
      checkEdited(q, "removeUoaOpp");
    });
  });

  it("rewriteAddresses", () => {
    const params = fc.tuple(addr6, addr6, u16, u16);
    surgeryProperty(params, (p, [src, dst, sport, dport]) => {
      const { info } = p;
      const r = attempt(p, () => {
        rewriteAddresses(p.buf, info, src, 0, sport, dst, 0, dport);
        return true;
      });
      if (r === undefined) return;
      checkEdited(p, "rewriteAddresses");
      const n = info.addrLength;
      check(bytesEqual(p.buf, info.srcOffset, src, 0, n), "source address", p);
      check(bytesEqual(p.buf, info.dstOffset, dst, 0, n), "destination address", p);
      if (isL4(info)) {
        const ports = (p.buf[info.l4Offset]! << 8) | p.buf[info.l4Offset + 1]!;
        check(ports === sport, "source port", p);
      }
    });
  });

  it("translate6to4", () => {
    surgeryProperty(fc.tuple(addr4, addr4), (p, [src, dst]) => {
      const r = attempt(p, () => {
        translate6to4(p.buf, p.info, src, 0, dst, 0);
        return true;
      });
      if (r === undefined) return;
      const fresh = checkEdited(p, "translate6to4");
      check(fresh.family === 4 && fresh.ipHeaderLength === 20, "not a plain IPv4 header", p);
    });
  });

  it("translate4to6", () => {
    surgeryProperty(fc.tuple(addr6, addr6), (p, [src, dst]) => {
      const ok = attempt(p, () => translate4to6(p.buf, p.info, src, 0, dst, 0));
      if (ok === undefined) return;
      if (!ok) {
        check(bytesEqual(p.buf, 0, p.orig, 0, p.orig.length), "false changed the packet", p);
        return;
      }
      const fresh = checkEdited(p, "translate4to6");
      check(fresh.family === 6 && fresh.ipHeaderLength === 40, "not a plain IPv6 header", p);
    });
  });
});

// --- edges the random packets are too small or too rare to reach -----------

describe("surgery at the limits of the length fields", () => {
  const s4 = Uint8Array.of(192, 0, 2, 100);
  const d4 = Uint8Array.of(192, 0, 2, 10);
  const s6 = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7);
  const d6 = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10);

  function udp(src: IpAddress, dst: IpAddress, payload: number): Uint8Array {
    const l4: L4Repr = {
      protocol: IpProtocol.udp,
      udp: { srcPort: 40000, dstPort: 53, payload: new Uint8Array(payload) },
    };
    return emitPacket({ ip: ipHeaderFor(src, dst, l4), l4 });
  }

  /** The edit refused (false / noRoom / CodecError), or left a packet that parses at its length. */
  function refusedOrParses(buf: Uint8Array, info: PacketInfo, edit: () => unknown): void {
    let r: unknown;
    try {
      r = edit();
    } catch (e) {
      if (e instanceof CodecError) return;
      throw e;
    }
    if (r === false || r === InsertResult.noRoom) return;
    const fresh = new PacketInfo().parse(buf, info.length);
    expect(fresh.length).toBe(info.length);
  }

  // Linux's loopback MTU is 65536: one byte more than an IPv4 total length holds.
  const LO_MTU = 65536;

  it("insertUoaIpo does not grow an IPv4 packet past 65535 bytes", () => {
    const pkt = udp(s4, d4, 65536 - 28 - 8);
    const buf = new Uint8Array(70000);
    buf.set(pkt);
    const info = new PacketInfo().parse(buf, pkt.length);
    refusedOrParses(buf, info, () => insertUoaIpo(buf, info, s4, 0, 1, LO_MTU));
  });

  it("insertUoaOpp does not grow an IPv4 packet past 65535 bytes", () => {
    const pkt = udp(s4, d4, 65536 - 28 - 12);
    const buf = new Uint8Array(70000);
    buf.set(pkt);
    const info = new PacketInfo().parse(buf, pkt.length);
    refusedOrParses(buf, info, () => insertUoaOpp(buf, info, s4, 0, 4, 1, LO_MTU));
  });

  it("insertTcpOption does not grow an IPv4 packet past 65535 bytes", () => {
    const l4: L4Repr = {
      protocol: IpProtocol.tcp,
      tcp: {
        srcPort: 40000,
        dstPort: 80,
        seq: 1,
        ack: 1,
        flags: 0x10,
        window: 1000,
        urgent: 0,
        options: [],
        payload: new Uint8Array(65536 - 40 - 8),
      },
    };
    const pkt = emitPacket({ ip: ipHeaderFor(s4, d4, l4), l4 });
    const buf = new Uint8Array(70000);
    buf.set(pkt);
    const info = new PacketInfo().parse(buf, pkt.length);
    const toa = toaBytes({ kind: 254, layout: "port-addr" }, s4, 1, s4);
    const policy = { mtu: LO_MTU, prune: true, staleKinds: [254] };
    refusedOrParses(buf, info, () => insertTcpOption(buf, info, toa, 0, toa.length, policy));
  });

  it("insertPayloadPrefix does not grow an IPv4 packet past 65535 bytes", () => {
    const pkt = udp(s4, d4, 65536 - 28 - 16);
    const buf = new Uint8Array(70000);
    buf.set(pkt);
    const info = new PacketInfo().parse(buf, pkt.length);
    const prefix = new Uint8Array(16);
    refusedOrParses(buf, info, () => insertPayloadPrefix(buf, info, prefix, 0, 16, LO_MTU));
  });

  it("translate6to4 does not make an IPv4 packet its total length cannot describe", () => {
    // 65,528 bytes of UDP fit an IPv6 payload but not an IPv4 packet (65,515 max).
    const pkt = udp(s6, d6, 65520);
    const info = new PacketInfo().parse(pkt, pkt.length);
    refusedOrParses(pkt, info, () => translate6to4(pkt, info, s4, 0, d4, 0));
  });

  it("translate6to4 sends a UDP checksum that sums to zero as 0xffff, not 0 (none)", () => {
    // [2001:db8:c::7]:30508 -> [2001:db8:5::10]:53, payload 01020304. Translated to
    // 192.0.2.100 -> 192.0.2.10 its UDP checksum sums to zero, which RFC 768 sends
    // as 0xffff: a 0 tells the receiver there is no checksum at all.
    const pkt = fromHex(
      `60000000 000c 11 40 20010db8000c00000000000000000007 20010db8000500000000000000000010
       772c 0035 000c 28d5 01020304`,
    );
    const info = new PacketInfo().parse(pkt, pkt.length);
    expect(verifyL4Checksum(pkt, info)).toBe(true);
    translate6to4(pkt, info, s4, 0, d4, 0);
    const out = new PacketInfo().parse(pkt, info.length);
    expect(computeL4Checksum(pkt, out)).toBe(0xffff);
    expect(toHex(pkt.subarray(26, 28))).toBe("ffff");
  });
});
