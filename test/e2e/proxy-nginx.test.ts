import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandMissing, tierUnavailable } from "../helpers/tier.js";

// The PROXY v2 profile against a server nobody here wrote: nginx from
// Debian with `listen ... proxy_protocol` reports the client it parsed.

const BIN = join(import.meta.dirname, "../../bin/toasim.js");

function missing(): string | null {
  if (process.getuid?.() !== 0) return "not root";
  if (!existsSync("/dev/net/tun")) return "no /dev/net/tun";
  if (!existsSync(join(import.meta.dirname, "../../dist/src/runtime/worker.js")))
    return "not built (npm run build)";
  return commandMissing("nginx", ["-v"]) ?? commandMissing("curl");
}

const skip = tierUnavailable("e2e", missing());

interface Ready {
  id: string;
  clientNs: string;
  serverNs: string;
}

function startUp(args: string[]): Promise<{ proc: ChildProcess; ready: Ready }> {
  const proc = spawn(process.execPath, [BIN, "up", "--json", "--decoder", "none", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`toasim up not ready: ${err}`)), 20_000);
    proc.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
    });
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        resolve({ proc, ready: JSON.parse(out.slice(0, nl)) as Ready });
      }
    });
    proc.on("exit", (code) => reject(new Error(`toasim up exited ${code}: ${err}`)));
  });
}

function stopUp(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve();
    proc.once("exit", () => resolve());
    proc.kill("SIGTERM");
  });
}

function inNs(ns: string, cmd: string[], timeout = 10_000): string {
  return execFileSync("ip", ["netns", "exec", ns, ...cmd], { encoding: "utf8", timeout });
}

describe.skipIf(skip !== null)("PROXY v2 to nginx through the gateway", () => {
  let up: { proc: ChildProcess; ready: Ready };
  let nginx: ChildProcess;
  const dir = mkdtempSync(join(tmpdir(), "toasim-nginx-"));

  beforeAll(async () => {
    up = await startUp(["--profile", "proxy-v2"]);
    writeFileSync(
      join(dir, "nginx.conf"),
      `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events {}
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir};
  proxy_temp_path ${dir};
  fastcgi_temp_path ${dir};
  uwsgi_temp_path ${dir};
  scgi_temp_path ${dir};
  server {
    listen 0.0.0.0:8080 proxy_protocol;
    listen [::]:8080 proxy_protocol ipv6only=on;
    location / { return 200 "client=$proxy_protocol_addr port=$proxy_protocol_port peer=$remote_addr\\n"; }
  }
}
`,
    );
    nginx = spawn(
      "ip",
      ["netns", "exec", up.ready.serverNs, "nginx", "-p", dir, "-c", join(dir, "nginx.conf")],
      {
        stdio: "ignore",
      },
    );
    // Ready when it accepts connections in its namespace.
    for (let i = 0; i < 50; i++) {
      try {
        inNs(up.ready.serverNs, [
          "curl",
          "-s",
          "-m",
          "1",
          "-o",
          "/dev/null",
          "http://192.0.2.10:8080/",
        ]);
      } catch {
        // Before nginx listens curl fails to connect; a PROXY-less request is refused later.
      }
      if (existsSync(join(dir, "nginx.pid")) || readLog(join(dir, "error.log")).includes("start"))
        break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    nginx?.kill("SIGTERM");
    if (up) await stopUp(up.proc);
    if (up) execFileSync(process.execPath, [BIN, "down", "--id", up.ready.id], { stdio: "ignore" });
    const left = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
    if (up) expect(left).not.toContain(up.ready.id);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [family, url, source] of [
    ["v4", "http://203.0.113.10/", "198.51.100.7"],
    ["v6", "http://[2001:db8:f::10]/", "2001:db8:c::7"],
    ["nat64", "http://[2001:db8:f::64]/", "2001:db8:c::7"],
  ] as const) {
    it(`${family}: nginx reports the client address and port from the PROXY header`, async () => {
      let body = "";
      for (let i = 0; i < 20 && body === ""; i++) {
        try {
          body = inNs(up.ready.clientNs, [
            "curl",
            "-s",
            "-m",
            "3",
            "-w",
            " local=%{local_port}",
            url,
          ]);
        } catch {
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      const m = /client=(\S+) port=(\d+) peer=(\S+)\s+local=(\d+)/.exec(body);
      expect(m, body).not.toBeNull();
      expect(m![1]).toBe(source);
      expect(m![2]).toBe(m![4]);
      // nginx's socket peer is the gateway's LIP: only the header has the client.
      expect(m![3]).not.toBe(source);
    });
  }
});

function readLog(p: string): string {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
}
