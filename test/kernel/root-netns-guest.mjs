// Runs inside a toasim vm guest (test/kernel/check.test.ts): an instance
// with its servers in the guest's root namespace carries a connection, a
// second one is refused while it runs, and what it added to the root
// namespace goes away on stop() and, after a SIGKILL, on down(). Prints one
// JSON object.
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";

const api = new URL("../../dist/index.js", import.meta.url).href;
const { down, up } = await import(api);

const lo = () =>
  execFileSync("ip", ["-o", "addr", "show", "dev", "lo"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => /192\.0\.2\.|2001:db8:5:/.test(l))
    .map((l) => l.split(/\s+/)[3]);
const routes = () =>
  execFileSync("ip", ["route", "show"], { encoding: "utf8" }).includes("dev tun-r");

const out = {};
const gw = await up({ rsNetns: "root", decoder: "none" });
out.serverNamespace = gw.serverNamespace;
out.loDuring = lo();
out.routeDuring = routes();
const server = gw.spawn("rs", [
  "socat",
  "TCP-LISTEN:8080,bind=192.0.2.10,fork,reuseaddr",
  "SYSTEM:echo hello from the root namespace",
]);
await new Promise((r) => setTimeout(r, 1000));
const reply = await gw.exec("client", ["socat", "-T", "5", "-", "TCP:203.0.113.10:80"], {
  input: "hi\n",
  timeoutMs: 20_000,
});
out.reply = reply.stdout.trim();
await server.stop();
try {
  const second = await up({ rsNetns: "root", decoder: "none" });
  out.second = "started";
  await second.stop();
} catch (e) {
  out.second = `${e.code}: ${e.message}`;
}
await gw.stop();
out.loAfterStop = lo();
out.routeAfterStop = routes();

const child = spawn(
  process.execPath,
  [
    "--input-type=module",
    "-e",
    `const t = await import(${JSON.stringify(api)}); await t.up({ rsNetns: "root", decoder: "none" }); console.log("up"); setInterval(() => {}, 1000);`,
  ],
  { stdio: ["ignore", "pipe", "inherit"] },
);
await once(child.stdout, "data");
out.loBeforeKill = lo();
child.kill("SIGKILL");
await once(child, "exit");
out.loAfterKill = lo();
await down();
out.loAfterDown = lo();
console.log(JSON.stringify(out));
