import { createSocket } from "node:dgram";
import { connect } from "node:net";
import type { Expect } from "./cases.js";

/**
 * The clients of `toasim check`, run inside the client namespace (node
 * client.js JSON): TCP connections that send one request and read the
 * reader server's report, or UDP datagrams on one flow with the report of
 * each. One JSON line per connection or datagram on stdout.
 */

export interface ClientJob {
  readonly proto: "tcp" | "udp";
  readonly source: string;
  readonly vip: string;
  readonly port: number;
  /** What each connection or datagram sends (the report quotes it back). */
  readonly payload: string;
  /** TCP: send the request with FIN, in one segment (end(data)). */
  readonly finWithData?: boolean;
  /** TCP: connections opened at once. */
  readonly connections?: number;
  /** UDP: datagrams sent on each flow. */
  readonly datagrams?: number;
  /** UDP: flows, each from a port of its own, one after another (default 1). */
  readonly flows?: number;
  /** UDP: after this many datagrams, stay quiet for idleMs before sending the rest. */
  readonly idleAfter?: number;
  readonly idleMs?: number;
  readonly timeoutMs: number;
}

export interface ClientLine {
  readonly clientPort: number;
  /** Which connection or datagram (0-based). */
  readonly index: number;
  readonly report: Record<string, unknown> | null;
  readonly error?: string;
  /** This connection's client address, when it is not the case's (a storm's many). */
  readonly client?: string;
  /** What a correct decoder answers for this connection, when not the case's. */
  readonly expect?: Expect;
  /** What was special about it (a storm's break), for the diagnosis. */
  readonly label?: string;
}

function tcp(job: ClientJob, index: number): Promise<ClientLine> {
  return new Promise((resolve) => {
    const s = connect({ host: job.vip, port: job.port, localAddress: job.source });
    let data = "";
    let port = 0;
    const done = (report: Record<string, unknown> | null, error?: string) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ clientPort: port, index, report, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => done(null, "no report within the time limit"), job.timeoutMs);
    s.on("connect", () => {
      port = s.localPort ?? 0;
      const body = `${job.payload}#${index}\n`;
      if (job.finWithData) s.end(body);
      else s.write(body);
    });
    s.on("data", (d) => {
      data += d.toString();
      const nl = data.indexOf("\n");
      if (nl >= 0) done(JSON.parse(data.slice(0, nl)) as Record<string, unknown>);
    });
    s.on("error", (e) => done(null, e.message));
  });
}

/**
 * The datagrams of every flow, in order (flow after flow), each flow from a
 * socket of its own, then one wait for the answers still missing.
 */
async function udp(job: ClientJob): Promise<ClientLine[]> {
  const count = job.datagrams ?? 1;
  const flows = job.flows ?? 1;
  const lines: ClientLine[] = [];
  let done = () => {};
  const allIn = new Promise<void>((resolve) => {
    done = resolve;
  });
  const sockets = await Promise.all(
    Array.from({ length: flows }, (_, f) => {
      const s = createSocket(job.source.includes(":") ? "udp6" : "udp4");
      s.on("message", (d) => {
        const report = JSON.parse(d.toString()) as Record<string, unknown>;
        const m = /#(\d+)$/.exec(String(report["payload"] ?? "").trim());
        lines.push({ clientPort: s.address().port, index: m ? Number(m[1]) : -1, report });
        if (lines.length >= count * flows) done();
      });
      s.on("error", () => done());
      return new Promise<{ s: typeof s; flow: number }>((resolve) =>
        s.bind(0, job.source, () => resolve({ s, flow: f })),
      );
    }),
  );
  // One at a time, a little apart: the gateway's first-N rule and the fault
  // stage's skip and count see them in order.
  let i = 0;
  for (const { s } of sockets) {
    for (let k = 0; k < count; k++, i++) {
      s.send(`${job.payload}#${i}`, job.port, job.vip);
      await sleep(i + 1 === job.idleAfter ? (job.idleMs ?? 0) : 50);
    }
  }
  await Promise.race([allIn, sleep(job.timeoutMs)]);
  for (const { s, flow } of sockets) {
    const port = s.address().port;
    s.close();
    // Datagrams without an answer (lost, or refused by a kernel without a decoder).
    for (let k = 0; k < count; k++) {
      const index = flow * count + k;
      if (!lines.some((l) => l.index === index))
        lines.push({ clientPort: port, index, report: null, error: "no answer" });
    }
  }
  return lines.sort((a, b) => a.index - b.index);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const job = JSON.parse(process.argv[2] ?? "{}") as ClientJob;
if (job.proto === "udp") {
  for (const l of await udp(job)) process.stdout.write(`${JSON.stringify(l)}\n`);
} else {
  const n = job.connections ?? 1;
  const lines = await Promise.all(Array.from({ length: n }, (_, i) => tcp(job, i)));
  for (const l of lines) process.stdout.write(`${JSON.stringify(l)}\n`);
}
