import { DEFAULT_TIMEOUTS } from "../fullnat-sim/config.js";
import { unsupportedFlow } from "../fullnat-sim/flow-support.js";
import { CarrierOutcome, Gateway, GatewayError } from "../fullnat-sim/gateway.js";
import type { Profile } from "../fullnat-sim/profiles.js";
import { type Endpoint, familyOf, formatIp } from "../option-codec/address.js";
import { IpProtocol } from "../option-codec/ipv4.js";
import { emitPacket, ipHeaderFor, type L4Repr } from "../option-codec/packet.js";
import { TcpFlag, type TcpRepr } from "../option-codec/tcp.js";
import {
  mssOption,
  NOP,
  sackPermittedOption,
  type TcpOption,
  timestampsOption,
  windowScaleOption,
} from "../option-codec/tcp-options.js";

/**
 * A scripted client and server that play one complete exchange through the
 * gateway (one service, one server, one LIP port), so `toasim craft` shows byte for byte what the gateway
 * would put on each side of the wire.
 */

/** The four endpoints of one FULLNAT flow. */
export interface FlowEndpoints {
  readonly client: Endpoint;
  readonly vip: Endpoint;
  /** The gateway's local address and port toward the server (LIP). */
  readonly lip: Endpoint;
  readonly rs: Endpoint;
}

export interface CraftedPacket {
  /** Which side of the gateway this packet was on. */
  readonly side: "client" | "server";
  readonly direction: "to-server" | "to-client";
  readonly bytes: Uint8Array;
  readonly timeUs: number;
  readonly note: string;
  /** Toward the server: whether the gateway put its carrier in this packet. */
  readonly carrier: CarrierOutcome;
}

export interface ExchangeOptions {
  readonly profile: Profile;
  readonly protocol: "tcp" | "udp";
  readonly endpoints: FlowEndpoints;
  readonly mtu?: number;
  /** Time of the first packet, microseconds since the epoch. */
  readonly startUs?: number;
  readonly datagrams?: number;
}

// Fixed so that two runs write the same pcap.
const CLIENT_ISN = 0x1a2b3c4d;
const SERVER_ISN = 0x5e6f7081;
const DEFAULT_START_US = Date.UTC(2026, 0, 1) * 1000;

const enc = new TextEncoder();

function synOptions(ts: number): TcpOption[] {
  return [
    mssOption(1460),
    sackPermittedOption(),
    timestampsOption(ts, 0),
    NOP,
    windowScaleOption(7),
  ];
}

export function craftExchange(o: ExchangeOptions): CraftedPacket[] {
  const { client, vip, rs, lip } = o.endpoints;
  const cf = familyOf(client.addr);
  const rf = familyOf(rs.addr);
  if (familyOf(vip.addr) !== cf) {
    throw new GatewayError("BAD_CONFIG", "the client and the VIP must be of the same family");
  }
  if (familyOf(lip.addr) !== rf) {
    throw new GatewayError("BAD_CONFIG", "the LIP and the real server must be of the same family");
  }
  const why = unsupportedFlow(o.profile, o.protocol, cf, rf);
  if (why) throw new GatewayError("BAD_CONFIG", why.message);
  // The real gateway, with one service, one server and one LIP port.
  const gw = new Gateway({
    profile: o.profile,
    services: [{ vip, proto: o.protocol, servers: [{ endpoint: rs, weight: 1 }], scheduler: "rr" }],
    lips4: rf === 4 ? [lip.addr] : [],
    lips6: rf === 6 ? [lip.addr] : [],
    portMin: lip.port,
    portMax: lip.port,
    mtu: o.mtu ?? 1500,
    maxConnections: 1,
    timeouts: DEFAULT_TIMEOUTS,
  });
  const out: CraftedPacket[] = [];
  let t = o.startUs ?? DEFAULT_START_US;
  const buf = new Uint8Array(65536 + 256);

  const send = (from: "client" | "server", l4: L4Repr, note: string) => {
    const [src, dst]: [Endpoint, Endpoint] = from === "client" ? [client, vip] : [rs, lip];
    const bytes = emitPacket({ ip: ipHeaderFor(src.addr, dst.addr, l4), l4 });
    buf.set(bytes);
    const before: CraftedPacket = {
      side: from,
      direction: from === "client" ? "to-server" : "to-client",
      bytes,
      timeUs: t,
      note,
      carrier: CarrierOutcome.none,
    };
    const n =
      from === "client"
        ? gw.fromClient(buf, bytes.length, t / 1000)
        : gw.fromServer(buf, bytes.length, t / 1000);
    if (n < 0) {
      // The gateway dropped it (too big to translate): only one side sees it.
      out.push(before);
      t += 1000;
      return;
    }
    const after: CraftedPacket = {
      ...before,
      side: from === "client" ? "server" : "client",
      bytes: buf.slice(0, n),
      timeUs: t + 50,
      carrier: from === "client" ? gw.verdict.carrier : CarrierOutcome.none,
    };
    out.push(before, after);
    t += 1000;
  };

  if (o.protocol === "udp") {
    const n = o.datagrams ?? 4;
    for (let i = 1; i <= n; i++) {
      const q = enc.encode(`query ${i} from ${client.port}\n`);
      send(
        "client",
        { protocol: IpProtocol.udp, udp: { srcPort: client.port, dstPort: vip.port, payload: q } },
        `datagram ${i}`,
      );
      const a = enc.encode(`answer ${i}\n`);
      send(
        "server",
        { protocol: IpProtocol.udp, udp: { srcPort: rs.port, dstPort: lip.port, payload: a } },
        `reply ${i}`,
      );
    }
    return out;
  }

  let cseq = CLIENT_ISN;
  let sseq = SERVER_ISN;
  let tsC = 1000;
  let tsS = 9000;
  const seg = (
    from: "client" | "server",
    flags: number,
    payload: Uint8Array,
    options: TcpOption[],
  ): L4Repr => {
    const tcp: TcpRepr = {
      srcPort: from === "client" ? client.port : rs.port,
      dstPort: from === "client" ? vip.port : lip.port,
      seq: from === "client" ? cseq : sseq,
      ack: flags & TcpFlag.ack ? (from === "client" ? sseq : cseq) : 0,
      flags,
      window: 64240,
      urgent: 0,
      options,
      payload,
    };
    return { protocol: IpProtocol.tcp, tcp };
  };
  const ts = (from: "client" | "server") => [
    NOP,
    NOP,
    from === "client" ? timestampsOption(++tsC, tsS) : timestampsOption(++tsS, tsC),
  ];
  const none = new Uint8Array(0);

  send("client", seg("client", TcpFlag.syn, none, synOptions(tsC)), "SYN");
  cseq += 1;
  send(
    "server",
    seg(
      "server",
      TcpFlag.syn | TcpFlag.ack,
      none,
      synOptions(tsS).map((x) => (x.kind === 8 ? timestampsOption(tsS, tsC) : x)),
    ),
    "SYN-ACK",
  );
  sseq += 1;
  send("client", seg("client", TcpFlag.ack, none, ts("client")), "handshake ACK");
  const req = enc.encode(
    `GET / HTTP/1.1\r\nHost: ${vipHost(vip)}\r\nUser-Agent: toasim-craft\r\n\r\n`,
  );
  send("client", seg("client", TcpFlag.psh | TcpFlag.ack, req, ts("client")), "request");
  cseq += req.length;
  const body = "hello from the real server\n";
  const resp = enc.encode(
    `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
  send("server", seg("server", TcpFlag.psh | TcpFlag.ack, resp, ts("server")), "response");
  sseq += resp.length;
  send("client", seg("client", TcpFlag.ack, none, ts("client")), "ACK of the response");
  send("client", seg("client", TcpFlag.fin | TcpFlag.ack, none, ts("client")), "FIN");
  cseq += 1;
  send("server", seg("server", TcpFlag.fin | TcpFlag.ack, none, ts("server")), "FIN");
  sseq += 1;
  send("client", seg("client", TcpFlag.ack, none, ts("client")), "last ACK");
  return out;
}

function vipHost(vip: Endpoint): string {
  return vip.addr.length === 4 ? formatIp(vip.addr) : `[${formatIp(vip.addr)}]`;
}
