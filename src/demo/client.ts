import { createSocket } from "node:dgram";
import { connect } from "node:net";
import type { Seen } from "./server.js";

/**
 * The demo's clients, run inside the client namespace: one TCP connection
 * or UDP exchange per (protocol, source address, VIP). Any address of
 * 198.51.100.0/24 and 2001:db8:c::/64 can be bound there (AnyIP routes).
 * Prints one JSON line per attempt.
 */

export interface Attempt {
  readonly proto: "tcp" | "udp";
  readonly family: "v4" | "v6" | "nat64";
  readonly source: string;
  readonly vip: string;
  readonly port: number;
}

export interface Outcome {
  readonly attempt: Attempt;
  readonly clientPort: number;
  readonly seen: Seen | null;
  readonly error?: string;
}

function tcpAttempt(a: Attempt, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const s = connect({ host: a.vip, port: a.port, localAddress: a.source });
    let data = "";
    let localPort = 0;
    const finish = (seen: Seen | null, error?: string) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ attempt: a, clientPort: localPort, seen, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish(null, "timeout"), timeoutMs);
    s.on("connect", () => {
      localPort = s.localPort ?? 0;
      s.write("hello from the toasim demo\n");
    });
    s.on("data", (d) => {
      data += d.toString();
      if (data.includes("\n")) finish(JSON.parse(data) as Seen);
    });
    s.on("error", (e) => finish(null, e.message));
  });
}

function udpAttempt(a: Attempt, timeoutMs: number, tries: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const s = createSocket(a.source.includes(":") ? "udp6" : "udp4");
    let timer: NodeJS.Timeout | undefined;
    let sent = 0;
    const finish = (seen: Seen | null, error?: string) => {
      clearTimeout(timer);
      const port = s.address().port;
      s.close();
      resolve({ attempt: a, clientPort: port, seen, ...(error ? { error } : {}) });
    };
    // A gateway may deliver the first datagrams in a form the server's
    // kernel cannot take (UOA opp without a decoder): send a few.
    const send = () => {
      if (sent++ >= tries) {
        finish(null, `no answer to ${tries} datagrams`);
        return;
      }
      s.send(`hello ${sent}\n`, a.port, a.vip);
      timer = setTimeout(send, timeoutMs);
    };
    s.on("message", (d) => finish(JSON.parse(d.toString()) as Seen));
    s.on("error", (e) => finish(null, e.message));
    s.bind(0, a.source, send);
  });
}

const attempts = JSON.parse(process.argv[2] ?? "[]") as Attempt[];
for (const a of attempts) {
  const o = a.proto === "tcp" ? await tcpAttempt(a, 3000) : await udpAttempt(a, 700, 6);
  process.stdout.write(`${JSON.stringify(o)}\n`);
}
