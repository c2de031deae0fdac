// The baseline of `npm run bench:scripted`: the kernel's own TCP clients,
// run inside the client namespace, doing what the scripted clients do
// (connect to the VIP, send one request, read the reader server's report,
// check its "peer" against the socket's own address) from one address.
// Prints one JSON line: {completed, matched, failed, ms}.
//
//   node build/bench/kernel-clients.js --to 203.0.113.10:80 --connections N --concurrency C

import { connect } from "node:net";

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
}

const target = arg("--to", "203.0.113.10:80");
const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(target);
if (!m) {
  process.stderr.write(`kernel-clients: bad --to ${target}\n`);
  process.exit(2);
}
const host = m[1]!;
const port = Number(m[2]);
const total = Number(arg("--connections", "1000"));
const concurrency = Number(arg("--concurrency", "256"));
let started = 0;
let completed = 0;
let matched = 0;
let failed = 0;
const t0 = performance.now();

function one(): void {
  if (started >= total) return;
  started++;
  const s = connect({ host, port });
  let text = "";
  let local = "";
  let localPort = 0;
  s.setTimeout(10_000, () => s.destroy(new Error("timeout")));
  s.on("connect", () => {
    local = s.localAddress ?? "";
    localPort = s.localPort ?? 0;
    s.write("toasim kernel client\n");
  });
  s.on("data", (d) => {
    text += d.toString();
  });
  s.on("error", () => {});
  s.on("close", (hadError) => {
    if (hadError || !text.includes("\n")) failed++;
    else {
      completed++;
      try {
        const r = JSON.parse(text.split("\n")[0]!) as {
          peer?: { address?: string; port?: number };
        };
        if (r.peer?.address === local && r.peer.port === localPort) matched++;
      } catch {
        // not a report
      }
    }
    if (completed + failed === total) {
      process.stdout.write(
        `${JSON.stringify({ completed, matched, failed, ms: performance.now() - t0 })}\n`,
      );
      process.exit(0);
    }
    one();
  });
}

for (let i = 0; i < Math.min(concurrency, total); i++) one();
