import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { commandMissing, describeTier } from "../helpers/tier.js";
import { namespacesOf, sleep, startGateway, stopGateway } from "./helpers.js";
import { apiMissing, type LocalInstance, type NsProcess } from "./toasim-api.js";

// The PROXY v2 profile against a server nobody here wrote: nginx from
// Debian with `listen ... proxy_protocol` reports the client it parsed.
// The instance is the API's (up()), without a decoder.

function missing(): string | null {
  if (process.getuid?.() !== 0) return "not root";
  if (!existsSync("/dev/net/tun")) return "no /dev/net/tun";
  if (apiMissing !== null) return apiMissing;
  return commandMissing("nginx", ["-v"]) ?? commandMissing("curl");
}

const e2eMissing = missing();

describeTier("e2e", e2eMissing, "PROXY v2 to nginx through the gateway", () => {
  let gw: LocalInstance | undefined;
  let nginx: NsProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), "toasim-nginx-"));

  beforeAll(async () => {
    gw = await startGateway({ profile: "proxy-v2" });
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
    nginx = gw.spawn("rs", ["nginx", "-p", dir, "-c", join(dir, "nginx.conf")]);
    // Ready when it accepts connections in its namespace.
    for (let i = 0; i < 50; i++) {
      // Before nginx listens curl fails to connect; a PROXY-less request is refused later.
      await gw.exec("rs", ["curl", "-s", "-m", "1", "-o", "/dev/null", "http://192.0.2.10:8080/"], {
        timeoutMs: 10_000,
      });
      if (existsSync(join(dir, "nginx.pid")) || readLog(join(dir, "error.log")).includes("start"))
        break;
      await sleep(100);
    }
  });

  afterAll(async () => {
    await nginx?.stop();
    if (gw) {
      await stopGateway(gw);
      expect(namespacesOf(gw.id)).toEqual([]);
    }
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
        const r = await gw!.exec(
          "client",
          ["curl", "-s", "-m", "3", "-w", " local=%{local_port}", url],
          {
            timeoutMs: 10_000,
          },
        );
        if (r.code === 0) body = r.stdout;
        else await sleep(200);
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
