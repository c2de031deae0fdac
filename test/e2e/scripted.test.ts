import { expect, it } from "vitest";
import { ebpfUnavailable } from "../../src/decoder/availability.js";
import { describeTier } from "../helpers/tier.js";
import { CLI, e2eMissing, run, withReaderServer } from "./helpers.js";
import type { Instance, LocalInstance } from "./toasim-api.js";

/**
 * Scripted clients (`toasim client run`, and runClients() of the API)
 * against a real server behind the live gateway and the eBPF decoder: the
 * server's own getpeername answer, sent back in its report, must be each
 * connection's address and port. The instances are the API's (up()); the
 * CLI's flags, JSON and exit code are checked where they are the subject.
 * The 100,000-connection run is `npm run bench:scripted`, which reports
 * the rate; here: enough connections and addresses to show every path.
 */

const missing = e2eMissing([]) ?? ebpfUnavailable();

interface Results {
  ok: boolean;
  connections: number;
  opened: number;
  completed: number;
  matched: number;
  mismatched: number;
  failed: Record<string, number>;
  mismatches: { client: string; port: number; seen: string }[];
  rate: number;
}

function withServer(
  profile: "dpvs" | "tencent",
  body: (gw: LocalInstance) => Promise<void>,
): Promise<void> {
  return withReaderServer({ profile, decoder: "ebpf" }, "[::]:8080", true, body);
}

/** `toasim client run --id ID --json ARGS` against the instance. */
async function clients(
  gw: Instance,
  ...args: string[]
): Promise<{ code: number | null; r: Results; err: string }> {
  const p = await run(
    [process.execPath, CLI, "client", "run", "--id", gw.id, "--json", ...args],
    300_000,
  );
  const line = p.stdout.trim().split("\n").pop() ?? "";
  if (!line.startsWith("{")) throw new Error(`toasim client run: exit ${p.code}: ${p.stderr}`);
  return { code: p.code, r: JSON.parse(line) as Results, err: p.stderr };
}

describeTier("e2e (scripted clients)", missing, "scripted clients through the live gateway", () => {
  it("5,000 connections from 100 IPv4 addresses and 5,000 from 1,000 IPv6 ones: every server view is the client's", async () => {
    await withServer("dpvs", async (gw) => {
      const v4 = await clients(gw, "--connections", "5000", "--sources", "100");
      expect(v4.r.mismatches).toEqual([]);
      expect(v4.r).toMatchObject({ ok: true, opened: 5000, completed: 5000, matched: 5000 });
      expect(v4.code).toBe(0);
      const v6 = await clients(
        gw,
        "--to",
        "[2001:db8:f::10]:80",
        "--sources",
        "1000",
        "--connections",
        "5000",
        "--linux",
      );
      expect(v6.r.mismatches).toEqual([]);
      expect(v6.r).toMatchObject({ ok: true, completed: 5000, matched: 5000 });
      const s = await gw.stats();
      expect(s.connectionsCreated).toBe(10_000);
      expect(s.carriersInserted).toBeGreaterThanOrEqual(10_000);
    });
  }, 400_000);

  it("a forged client TOA is stripped; the server sees the real client (runClients)", async () => {
    await withServer("dpvs", async (gw) => {
      const done = await gw.runClients({
        target: "203.0.113.10:80",
        connections: 50,
        sources: 10,
        dataOnAck: true,
        ack: ["nop", "nop", "toa:254:198.51.100.99:1234"],
      });
      const r = done.results;
      expect(r.mismatches).toEqual([]);
      // ok, as `toasim client run` counts it: every connection completed and matched.
      expect(r).toMatchObject({ opened: 50, completed: 50, matched: 50, mismatched: 0 });
      expect(done.active).toBe(0);
      expect((await gw.stats()).clientToaStripped).toBe(50);
    });
  }, 120_000);

  it("reports the connections whose server saw the gateway, and exits 1", async () => {
    await withServer("tencent", async (gw) => {
      expect(await gw.setFaults({ rules: ["to-server:handshake-ack:drop"] })).toEqual({ rules: 1 });
      const { code, r } = await clients(gw, "--connections", "20", "--sources", "20");
      expect(code).toBe(1);
      expect(r).toMatchObject({ ok: false, completed: 20, matched: 0, mismatched: 20 });
      expect(r.mismatches[0]?.seen).toMatch(/^192\.0\.2\.1\d\d port \d+$/);
    });
  }, 120_000);

  it("refuses bad runs before it starts, naming the flag", async () => {
    const cases: [string[], RegExp][] = [
      [["--from", "192.0.2.50"], /--from: 1 sources from 192.0.2.50 leave 198.51.100.0\/24/],
      [
        ["--to", "[2001:db8:f::10]:80", "--from", "198.51.100.9"],
        /--from: 198.51.100.9 is not of the target's family/,
      ],
      [
        ["--sources", "2", "--connections", "200000"],
        /--connections: 200000 connections from 2 sources need 100000 ports/,
      ],
      [["--ack", "mss:99999"], /--ack: \[0\]: "mss:99999": wants an integer/],
      [["--concurrency", "0"], /--concurrency: 0 is outside 1..65536/],
    ];
    for (const [args, why] of cases) {
      const p = await run([process.execPath, CLI, "client", "run", ...args], 15_000);
      expect(p.code, args.join(" ")).toBe(2);
      expect(p.stderr).toMatch(why);
    }
  }, 60_000);
});
