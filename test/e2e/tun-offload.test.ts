import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parseIp } from "../../src/option-codec/address.js";
import { readU16 } from "../../src/option-codec/bytes.js";
import { finish, sumBytes } from "../../src/option-codec/checksum.js";
import { IpProtocol } from "../../src/option-codec/ipv4.js";
import {
  emitPacket,
  ipHeaderFor,
  type L4Repr,
  PacketInfo,
  verifyL4Checksum,
} from "../../src/option-codec/packet.js";
import { TcpFlag } from "../../src/option-codec/tcp.js";
import { mssOption } from "../../src/option-codec/tcp-options.js";
import {
  emitVnetHdr,
  fillPartialChecksum,
  GsoType,
  VNET_HDR_LEN,
  VnetFlag,
  VnetHdr,
} from "../../src/option-codec/vnet-hdr.js";
import { KernelTun, MAX_PACKET, TunOffload } from "../../src/tun/device.js";
import { nsExecArgs, runIp } from "../../src/tun/topology.js";
import { pythonFixture } from "../helpers/fixtures.js";
import { commandMissing, describeTier } from "../helpers/tier.js";
import { sleep } from "./helpers.js";

// The TUN device with IFF_VNET_HDR and offloads, against the real kernel:
// what it hands over (partial checksums, TCP super-packets) and what it takes.
// One namespace, one TUN; the far side is played by the test.

function missing(): string | null {
  if (process.platform !== "linux") return "not Linux";
  if (process.geteuid?.() !== 0) return "not root (network namespaces and TUN need root)";
  if (!existsSync("/dev/net/tun")) return "/dev/net/tun missing (modprobe tun)";
  return commandMissing("ip", ["-V"]) ?? commandMissing("python3");
}

const NS = `toasim-vx${process.pid}`;
const ME = "192.0.2.1";
const PEER = "192.0.2.50";
let tun: KernelTun | null = null;
let offloads = 0;
const buf = new Uint8Array(VNET_HDR_LEN + MAX_PACKET);

describeTier("e2e", missing(), "a TUN with virtio_net_hdr and offloads", () => {
  beforeAll(() => {
    runIp(["netns", "add", NS]);
    tun = KernelTun.open("tun-x", { netns: NS, vnetHdr: true });
    offloads = tun.setOffload(TunOffload.csum | TunOffload.tso4 | TunOffload.tso6);
    runIp(["-n", NS, "link", "set", "lo", "up"]);
    runIp(["-n", NS, "addr", "add", `${ME}/24`, "dev", "tun-x"]);
    runIp(["-n", NS, "link", "set", "tun-x", "up"]);
  });
  afterAll(() => {
    tun?.close();
    runIp(["netns", "del", NS]);
  });

  const vnet = new VnetHdr();
  const info = new PacketInfo();

  /** The next packet of `protocol` the namespace sends into the TUN, within `ms`. */
  async function next(protocol: number, ms = 5000): Promise<number> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const n = tun!.read(buf);
      if (n === 0) {
        await sleep(5);
        continue;
      }
      const p = buf.subarray(VNET_HDR_LEN, n);
      if (p[0]! >> 4 === 4 && p[9] === protocol) return n;
    }
    throw new Error(`no packet of protocol ${protocol} from the namespace within ${ms} ms`);
  }

  function run(cmd: string[]): ReturnType<typeof spawn> {
    const argv = nsExecArgs(NS, cmd);
    return spawn(argv[0]!, argv.slice(1), { stdio: "ignore" });
  }

  it("the kernel takes checksum offload and TSO for v4 and v6", () => {
    expect(offloads).toBe(TunOffload.csum | TunOffload.tso4 | TunOffload.tso6);
  });

  it("an offload the kernel does not know is refused with EINVAL and what to do; optional ones are dropped", () => {
    const unknown = 0x1000;
    expect(() => tun!.setOffload(TunOffload.csum | unknown)).toThrow(
      /TUNSETOFFLOAD 0x1001 on tun-x: EINVAL.*--offload off/,
    );
    expect(tun!.setOffload(TunOffload.csum | TunOffload.tso4 | TunOffload.tso6, [unknown])).toBe(
      offloads,
    );
  });

  it("a datagram from a socket arrives with a partial checksum that completes right", async () => {
    run(["python3", pythonFixture("udp_send.py"), PEER, "9", ""]);
    const n = await next(IpProtocol.udp);
    const p = buf.subarray(VNET_HDR_LEN, n);
    info.parse(p, p.length);
    vnet.wrap(buf, 0, n).check(info);
    expect(vnet.needsCsum).toBe(true);
    expect([vnet.gsoType, vnet.csumStart, vnet.csumOffset]).toEqual([GsoType.none, 20, 6]);
    // As skb_checksum_help would: sum from csum_start, the partial field included.
    const c = finish(sumBytes(p, info.l4Offset, info.l4Length));
    p[info.l4Offset + 6] = c >> 8;
    p[info.l4Offset + 7] = c & 0xff;
    expect(verifyL4Checksum(p, info)).toBe(true);
  });

  it("takes a datagram with a partial checksum, and drops one whose full checksum is wrong", async () => {
    for (const partial of [true, false]) {
      const argv = nsExecArgs(NS, ["python3", pythonFixture("udp_listen.py"), ME, "7000"]);
      const l = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "ignore"] });
      let out = "";
      l.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
      });
      while (!out.includes("ready")) await sleep(20);
      const l4: L4Repr = {
        protocol: IpProtocol.udp,
        udp: { srcPort: 5555, dstPort: 7000, payload: new TextEncoder().encode("offload") },
      };
      const pkt = emitPacket({ ip: ipHeaderFor(parseIp(PEER), parseIp(ME), l4), l4 });
      const pi = new PacketInfo().parse(pkt, pkt.length);
      if (partial) fillPartialChecksum(pkt, pi);
      else pkt[pi.l4Offset + 7]! ^= 0x55;
      emitVnetHdr(
        {
          flags: partial ? VnetFlag.needsCsum : 0,
          gsoType: GsoType.none,
          hdrLen: 0,
          gsoSize: 0,
          csumStart: partial ? pi.l4Offset : 0,
          csumOffset: partial ? 6 : 0,
        },
        buf,
        0,
      );
      buf.set(pkt, VNET_HDR_LEN);
      expect(tun!.write(buf, VNET_HDR_LEN + pkt.length)).toBe(true);
      await sleep(500);
      expect(out.includes('"data": "offload"'), partial ? "partial" : "broken").toBe(partial);
      l.kill();
    }
  });

  it("a bulk TCP send comes out as super-packets of MSS-sized segments (TSO)", async () => {
    const sender = run(["python3", pythonFixture("tcp_bulk_send.py"), PEER, "80", "40000"]);
    try {
      const syn = await next(IpProtocol.tcp);
      const p = buf.slice(VNET_HDR_LEN, syn);
      const si = new PacketInfo().parse(p, p.length);
      const sport = readU16(p, si.l4Offset);
      const isn = (readU16(p, si.l4Offset + 4) << 16) | readU16(p, si.l4Offset + 6);
      const reply = (
        flags: number,
        ack: number,
        seq: number,
        opts = [] as ReturnType<typeof mssOption>[],
      ) => {
        const l4: L4Repr = {
          protocol: IpProtocol.tcp,
          tcp: {
            srcPort: 80,
            dstPort: sport,
            seq,
            ack: ack >>> 0,
            flags,
            window: 65535,
            urgent: 0,
            options: opts,
            payload: new Uint8Array(0),
          },
        };
        const r = emitPacket({ ip: ipHeaderFor(parseIp(PEER), parseIp(ME), l4), l4 });
        emitVnetHdr(
          { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 },
          buf,
          0,
        );
        buf.set(r, VNET_HDR_LEN);
        tun!.write(buf, VNET_HDR_LEN + r.length);
      };
      reply(TcpFlag.syn | TcpFlag.ack, isn + 1, 1000, [mssOption(1400)]);
      let biggest = 0;
      let gsoSize = 0;
      let bytes = 0;
      while (bytes < 40000) {
        const n = await next(IpProtocol.tcp);
        const q = buf.subarray(VNET_HDR_LEN, n);
        const qi = info.parse(q, q.length);
        vnet.wrap(buf, 0, n).check(qi);
        const data = qi.length - qi.payloadOffset;
        if (data === 0) continue;
        bytes += data;
        if (vnet.isGso && data > biggest) {
          biggest = data;
          gsoSize = vnet.gsoSize;
          expect(vnet.gsoType & ~GsoType.ecn).toBe(GsoType.tcpv4);
          expect(vnet.hdrLen).toBeLessThanOrEqual(qi.payloadOffset);
        }
        const seq = (readU16(q, qi.l4Offset + 4) << 16) | readU16(q, qi.l4Offset + 6);
        reply(TcpFlag.ack, seq + data, 1001);
      }
      // With the MSS we sent, less the timestamp option the kernel adds.
      expect(biggest).toBeGreaterThan(1400);
      expect(gsoSize).toBeGreaterThan(1300);
      expect(gsoSize).toBeLessThanOrEqual(1400);
      reply(TcpFlag.rst | TcpFlag.ack, isn + 1 + bytes, 1001);
    } finally {
      sender.kill();
    }
  });
});
