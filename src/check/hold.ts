import { connect, createServer, type Socket } from "node:net";

/**
 * Connections kept open and busy while `toasim check` unloads the module
 * (node hold.js server ADDR PORT | node hold.js client VIP PORT N): the
 * server echoes; the client sends a line on each connection every 200 ms
 * and prints, every 500 ms, one JSON line: the bytes echoed back on each.
 */

const [mode, host, portText, countText] = process.argv.slice(2);
const port = Number(portText);

if (mode === "server") {
  createServer((s) => {
    s.on("error", () => s.destroy());
    s.pipe(s);
  }).listen(port, host);
} else {
  const echoed: number[] = [];
  const sockets: Socket[] = [];
  for (let i = 0; i < Number(countText ?? 10); i++) {
    echoed.push(0);
    const s = connect({ host: host ?? "", port });
    s.on("data", (d) => {
      echoed[i] = echoed[i]! + d.length;
    });
    // A connection that fails stops counting: the report shows it.
    s.on("error", () => s.destroy());
    sockets.push(s);
  }
  setInterval(() => {
    for (const s of sockets) if (!s.destroyed) s.write("ping\n");
  }, 200);
  setInterval(() => process.stdout.write(`${JSON.stringify(echoed)}\n`), 500);
}
