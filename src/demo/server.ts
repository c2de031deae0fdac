import { createSocket, type Socket } from "node:dgram";
import { createServer, isIPv6 } from "node:net";
import { formatIp } from "../option-codec/address.js";
import { decodeProxyV1, isProxyV1 } from "../option-codec/proxy-v1.js";
import { decodeProxyV2, isProxyV2 } from "../option-codec/proxy-v2.js";
import { SockoptError, toaCtl, uoaLookup } from "../sockopt/index.js";

/**
 * The demo's real server, run inside the server namespace: for every TCP
 * connection and UDP datagram it answers with what it saw, the way a server
 * behind such a gateway learns its client: the peer (getpeername /
 * recvfrom), the decoder's answer to the gateways' getsockopt ABIs (2049 on
 * a TCP connection, 2048 for a UDP datagram), and a PROXY header in front
 * of the data. Without a TOA/UOA decoder the peer is the gateway's local
 * address and getsockopt fails.
 */

export interface Seen {
  /** The peer as the socket API reports it. */
  readonly peer: string;
  readonly peerPort: number;
  /** The client from a PROXY header, when the data started with one. */
  readonly proxy?: { readonly addr: string; readonly port: number };
  /** The client as the decoder reported it through getsockopt. */
  readonly sockopt?: { readonly addr: string; readonly port: number; readonly optname: number };
}

const port = Number(process.argv[2] ?? "8080");
const udpPort = Number(process.argv[3] ?? "5353");
/** UDP binds the servers' own addresses: the UOA lookup is keyed on them. */
const udpAddrs = process.argv.slice(4);

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

/** A decoder's answer, or undefined when there is none (no decoder: ENOPROTOOPT). */
function decoded(fn: () => { address: string; port: number }, optname: number): Seen["sockopt"] {
  try {
    const a = fn();
    return { addr: a.address, port: a.port, optname };
  } catch (e) {
    if (e instanceof SockoptError) return undefined;
    throw e;
  }
}

const tcp = createServer((s) => {
  s.once("data", (d) => {
    const proxy = proxyFrom(d);
    const sockopt = decoded(() => {
      const c = toaCtl(s);
      if (!c.toaSet) throw new SockoptError("SYSCALL_FAILED", "no TOA on this connection");
      return c;
    }, 2049);
    const seen: Seen = {
      peer: unmap(s.remoteAddress ?? "?"),
      peerPort: s.remotePort ?? 0,
      ...(proxy ? { proxy } : {}),
      ...(sockopt ? { sockopt } : {}),
    };
    s.end(`${JSON.stringify(seen)}\n`);
  });
  s.on("error", () => {});
});
tcp.listen({ port, host: "::", ipv6Only: false });

function udpServer(addr: string): Promise<void> {
  const family = isIPv6(addr) ? 6 : 4;
  const sock: Socket = createSocket(family === 6 ? "udp6" : "udp4");
  sock.on("message", (d, rinfo) => {
    const proxy = proxyFrom(d);
    const sockopt = decoded(
      () =>
        uoaLookup(
          sock,
          {
            source: { family, address: rinfo.address, port: rinfo.port },
            dest: { family, address: addr, port: udpPort },
          },
          "noa",
        ),
      2048,
    );
    const seen: Seen = {
      peer: unmap(rinfo.address),
      peerPort: rinfo.port,
      ...(proxy ? { proxy } : {}),
      ...(sockopt ? { sockopt } : {}),
    };
    sock.send(`${JSON.stringify(seen)}\n`, rinfo.port, rinfo.address);
  });
  return new Promise((resolve) => sock.bind(udpPort, addr, resolve));
}

await Promise.all(
  (udpAddrs.length > 0 ? udpAddrs : ["192.0.2.10", "2001:db8:5::10"]).map(udpServer),
);
process.stdout.write("ready\n");
for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => process.exit(0));
