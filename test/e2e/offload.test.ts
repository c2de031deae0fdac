import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { describeTier } from "../helpers/tier.js";
import {
  Background,
  cliStats,
  e2eMissing,
  nsExec,
  run,
  startCliInstance,
  startGateway,
  stopCliInstance,
  stopGateway,
  tshark,
} from "./helpers.js";
import type { LocalInstance } from "./toasim-api.js";

/**
 * TUN offloads in the live gateway: TCP crosses as super-packets (the
 * kernel hands the gateway up to 64 KB at once and cuts what it writes
 * back), byte for byte, both ways, v4 and v6; a capture sees wire segments
 * that tshark finds whole; `--offload off` moves one packet at a time.
 */

const missing = e2eMissing([
  ["socat", ["-V"]],
  ["sha256sum", ["--version"]],
]);
const tmp = mkdtempSync(join(tmpdir(), "toasim-offload-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const MB = 1024 * 1024;
const BLOB = join(tmp, "blob");
const blob = Buffer.alloc(16 * MB);
for (let i = 0; i < blob.length; i += 4) blob.writeUInt32LE((i * 2654435761) >>> 0, i);
writeFileSync(BLOB, blob);
const BLOB_SHA = createHash("sha256").update(blob).digest("hex");

const SERVICES = [
  "tcp:203.0.113.10:80=192.0.2.10:8080",
  "tcp:[2001:db8:f::10]:80=[2001:db8:5::10]:8080",
  "tcp:203.0.113.10:81=192.0.2.10:8081",
  "tcp:[2001:db8:f::10]:81=[2001:db8:5::10]:8081",
  "tcp:[2001:db8:f::64]:80=192.0.2.10:8080",
  "tcp:[2001:db8:f::64]:81=192.0.2.10:8081",
];

/** On 8080 the server answers the sha256 of what it received; on 8081 it sends the blob. */
function servers(serverNs: string): Background[] {
  return [
    new Background(
      nsExec(serverNs, ["socat", "TCP6-LISTEN:8080,ipv6only=0,reuseaddr,fork", "SYSTEM:sha256sum"]),
      "upload server",
    ),
    new Background(
      nsExec(serverNs, ["socat", "TCP6-LISTEN:8081,ipv6only=0,reuseaddr,fork", `OPEN:${BLOB}`]),
      "download server",
    ),
  ];
}

/** The blob up to port 80 (the server's sha256 back) and down from port 81 (its sha256 here). */
async function transfer(clientNs: string, vip: string): Promise<{ up: string; down: string }> {
  const v = vip.includes(":") ? `TCP6:[${vip}]` : `TCP4:${vip}`;
  const upSha = await run(
    nsExec(clientNs, ["sh", "-c", `socat -T 20 - ${v}:80 < ${BLOB} | cut -d' ' -f1`]),
    40_000,
  );
  const down = await run(
    nsExec(clientNs, ["sh", "-c", `socat -T 20 -u ${v}:81 - | sha256sum | cut -d' ' -f1`]),
    40_000,
  );
  return { up: upSha.stdout.trim(), down: down.stdout.trim() };
}

async function withServers<T>(serverNs: string, body: () => Promise<T>): Promise<T> {
  const s = servers(serverNs);
  try {
    // Listening before the first client.
    for (const port of ["8080", "8081"]) {
      for (let i = 0; i < 50; i++) {
        const ss = await run(nsExec(serverNs, ["ss", "-Htln", `sport = :${port}`]));
        if (ss.stdout.includes(port)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return await body();
  } finally {
    for (const b of s) await b.stop();
  }
}

describeTier("e2e (offloads)", missing, "TCP super-packets through the live gateway", () => {
  it("with offloads (the default) 16 MB go up and down byte for byte, v4, v6 and NAT64, as super-packets", async () => {
    const gw: LocalInstance = await startGateway({
      profile: "dpvs",
      services: SERVICES,
      offload: "on",
    });
    try {
      await withServers(gw.serverNamespace!, async () => {
        for (const vip of ["203.0.113.10", "2001:db8:f::10", "2001:db8:f::64"]) {
          expect(await transfer(gw.clientNamespace, vip), vip).toEqual({
            up: BLOB_SHA,
            down: BLOB_SHA,
          });
        }
      });
      const s = await gw.stats();
      // 6 x 16 MB in super-packets of up to 64 KB, not in ~70,000 wire segments.
      expect(s.superPackets).toBeGreaterThan(200);
      expect(s.packetsFromClient + s.packetsFromServer).toBeLessThan(40_000);
      expect(s.dropMalformed).toBe(0);
      expect(s.carriersFailed).toBe(0);
    } finally {
      await stopGateway(gw);
    }
  }, 120_000);

  it("a capture meanwhile holds wire segments: none over the MTU, every checksum right for tshark, the TOA on each upload segment", async () => {
    const gw: LocalInstance = await startGateway({
      profile: "dpvs",
      services: SERVICES,
      offload: "on",
    });
    const pcap = join(tmp, "server.pcap");
    try {
      await withServers(gw.serverNamespace!, async () => {
        const cap = await gw.capture({ side: "server", path: pcap });
        try {
          const r = await run(
            nsExec(gw.clientNamespace, [
              "sh",
              "-c",
              `head -c ${2 * MB} ${BLOB} | socat -T 20 - TCP4:203.0.113.10:80 | cut -d' ' -f1`,
            ]),
            40_000,
          );
          expect(r.stdout.trim()).toBe(
            createHash("sha256")
              .update(blob.subarray(0, 2 * MB))
              .digest("hex"),
          );
        } finally {
          await cap.stop();
        }
      });
      expect((await gw.stats()).superPacketsSegmented).toBeGreaterThan(0);
    } finally {
      await stopGateway(gw);
    }
    const rows = tshark(
      pcap,
      ["ip.len", "tcp.len", "tcp.checksum.status", "ip.checksum.status", "tcp.option_kind"],
      "tcp.dstport == 8080 && tcp.len > 0",
    );
    expect(rows.length).toBeGreaterThan((2 * MB) / 1500);
    for (const row of rows) {
      expect(Number(row["ip.len"])).toBeLessThanOrEqual(1500);
      expect(row["tcp.checksum.status"]).toBe("1");
      expect(row["ip.checksum.status"]).toBe("1");
      expect((row["tcp.option_kind"] ?? "").split("|")).toContain("254");
    }
  }, 120_000);

  it("--offload off: the same bytes, one packet at a time", async () => {
    const inst = await startCliInstance([
      "--profile",
      "dpvs",
      "--offload",
      "off",
      ...SERVICES.flatMap((s) => ["--service", s]),
    ]);
    try {
      await withServers(inst.serverNs, async () => {
        expect(await transfer(inst.clientNs, "203.0.113.10")).toEqual({
          up: BLOB_SHA,
          down: BLOB_SHA,
        });
      });
      const s = await cliStats(inst);
      expect(s["superPackets"]).toBe(0);
      // 32 MB in wire segments of at most 1448 bytes, each way's ACKs aside.
      expect(s["packetsFromClient"]! + s["packetsFromServer"]!).toBeGreaterThan(22_000);
    } finally {
      expect((await stopCliInstance(inst)).code).toBe(0);
    }
  }, 120_000);
});
