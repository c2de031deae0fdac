import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { formatIp } from "../option-codec/address.js";
import { decodeProxyV1, isProxyV1 } from "../option-codec/proxy-v1.js";
import { decodeProxyV2, isProxyV2 } from "../option-codec/proxy-v2.js";

/**
 * The demo's real server, run inside the server namespace: for every TCP
 * connection and UDP datagram it answers with what it saw as the peer.
 * That is getpeername()/recvfrom() — with a TOA/UOA decoder in the kernel,
 * the client; without one, the gateway's local address. A PROXY header in
 * front of the data is parsed too (that dialect needs no decoder).
 */

export interface Seen {
  /** The peer as the socket API reports it. */
  readonly peer: string;
  readonly peerPort: number;
  /** The client from a PROXY header, when the data started with one. */
  readonly proxy?: { readonly addr: string; readonly port: number };
}

const port = Number(process.argv[2] ?? "8080");
const udpPort = Number(process.argv[3] ?? "5353");

function proxyFrom(b: Uint8Array): Seen["proxy"] {
  try {
    if (isProxyV2(b, 0, b.length)) {
      const { repr } = decodeProxyV2(b, 0, b.length);
      if (repr.source) return { addr: formatIp(repr.source.addr), port: repr.source.port };
    } else if (isProxyV1(b, 0, b.length)) {
      const { repr } = decodeProxyV1(b, 0, b.length);
      if (repr.protocol !== "UNKNOWN")
        return { addr: formatIp(repr.source.addr), port: repr.source.port };
    }
  } catch {
    // Not a valid header: report what the socket says only.
  }
  return undefined;
}

function unmap(a: string): string {
  return a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}

const tcp = createServer((s) => {
  s.once("data", (d) => {
    const proxy = proxyFrom(d);
    const seen: Seen = {
      peer: unmap(s.remoteAddress ?? "?"),
      peerPort: s.remotePort ?? 0,
      ...(proxy ? { proxy } : {}),
    };
    s.end(`${JSON.stringify(seen)}\n`);
  });
  s.on("error", () => {});
});
tcp.listen({ port, host: "::", ipv6Only: false });

const udp = createSocket({ type: "udp6", ipv6Only: false });
udp.on("message", (d, rinfo) => {
  const proxy = proxyFrom(d);
  const seen: Seen = {
    peer: unmap(rinfo.address),
    peerPort: rinfo.port,
    ...(proxy ? { proxy } : {}),
  };
  udp.send(`${JSON.stringify(seen)}\n`, rinfo.port, rinfo.address);
});
udp.bind(udpPort, "::", () => {
  process.stdout.write("ready\n");
});
for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => process.exit(0));
