import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { ebpfUnavailable } from "../../src/decoder/availability.js";
import { describeTier } from "../helpers/tier.js";
import { CLI, e2eMissing, run, sleep, withReaderServer } from "./helpers.js";
import type { Instance, LocalInstance, UpOptions } from "./toasim-api.js";

/**
 * Fault injection in the live gateway, judged by what a real server asks
 * the eBPF decoder: a dropped handshake ACK costs a tencent-style gateway
 * (TOA on that ACK alone) the client address and costs dpvs (TOA on data
 * until acknowledged) nothing; setFaults and clearFaults switch faults on
 * a running instance; restart() forgets open connections. The instances
 * are the API's (up()); the same through the CLI (`toasim fault set|clear`,
 * `toasim restart`) is cli-instance.test.ts's, and `toasim fault set`
 * refusing a bad file is the last test here.
 */

const missing = e2eMissing([["socat", ["-V"]]]) ?? ebpfUnavailable();
const tmp = mkdtempSync(join(tmpdir(), "toasim-faults-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Report {
  peer?: { address?: string; port?: number };
  payload?: string;
}

function withServer(options: UpOptions, body: (gw: LocalInstance) => Promise<void>): Promise<void> {
  return withReaderServer({ ...options, decoder: "ebpf" }, "192.0.2.10:8080", false, body);
}

/** One connection through the VIP; the reader's report, or null when none came back. */
async function ask(gw: Instance, script = "echo hello", timeoutS = 6): Promise<Report | null> {
  const r = await gw.exec(
    "client",
    ["sh", "-c", `(${script}) | socat -T ${timeoutS} - TCP4:203.0.113.10:80`],
    { timeoutMs: (timeoutS + 10) * 1000 },
  );
  const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
  return line === undefined ? null : (JSON.parse(line) as Report);
}

describeTier("e2e (faults)", missing, "fault injection in the live gateway", () => {
  it("tencent (TOA on the handshake ACK alone): a dropped ACK shows the server the gateway", async () => {
    await withServer({ profile: "tencent" }, async (gw) => {
      expect((await ask(gw))?.peer?.address).toBe("198.51.100.7");
      expect(await gw.setFaults({ rules: ["to-server:handshake-ack:drop,count=1"] })).toEqual({
        rules: 1,
      });
      const lost = await ask(gw);
      // The data completed the handshake without a TOA: the server saw a LIP.
      expect(lost?.peer?.address).toMatch(/^192\.0\.2\.(1[0-2]\d|13[01])$/);
      expect(lost?.payload).toBe("hello\n");
      expect((await gw.stats()).faultDropped).toBe(1);
      // count=1 is spent: the next connection is whole again.
      expect((await ask(gw))?.peer?.address).toBe("198.51.100.7");
      await gw.clearFaults();
      expect((await ask(gw))?.peer?.address).toBe("198.51.100.7");
      expect((await gw.stats()).faultDropped).toBe(1);
    });
  }, 90_000);

  it("dpvs (TOA on data until acknowledged): the same lost ACK changes nothing", async () => {
    const faults = { rules: ["to-server:handshake-ack:drop"] };
    await withServer({ profile: "dpvs", faults }, async (gw) => {
      for (let i = 0; i < 2; i++) {
        const r = await ask(gw);
        expect(r?.peer?.address).toBe("198.51.100.7");
        expect(r?.payload).toBe("hello\n");
      }
      expect((await gw.stats()).faultDropped).toBe(2);
    });
  }, 90_000);

  it("a duplicated and delayed SYN-ACK and reordered data still give the server the client", async () => {
    const faults = {
      rules: [
        "to-client:syn-ack:duplicate=2",
        "to-server:syn:delay=300",
        "to-server:data:reorder,maxMs=200",
      ],
    };
    await withServer({ profile: "dpvs", faults }, async (gw) => {
      const r = await ask(gw, "printf one; sleep 0.2; printf two");
      expect(r?.peer?.address).toBe("198.51.100.7");
      const s = await gw.stats();
      expect(s.faultDuplicated).toBe(2);
      expect(s.faultDelayed).toBe(1);
      expect(s.faultReordered).toBeGreaterThanOrEqual(1);
    });
  }, 90_000);

  it("restart(): an open connection's packets belong to no connection; new ones work", async () => {
    await withServer({ profile: "dpvs" }, async (gw) => {
      // Connected, then silent for 1.5 s while the gateway restarts.
      const open = ask(gw, "sleep 1.5; echo late", 4);
      await sleep(700);
      expect((await gw.stats()).connectionsActive).toBe(1);
      await gw.restart();
      expect((await gw.stats()).connectionsActive).toBe(0);
      expect(await open).toBeNull();
      expect((await gw.stats()).dropNoConnection).toBeGreaterThan(0);
      expect((await ask(gw))?.peer?.address).toBe("198.51.100.7");
    });
  }, 90_000);

  it("a bad rule sent to a running instance is refused with its reason (setFaults, toasim fault set)", async () => {
    await withServer(
      { profile: "dpvs", faults: { rules: ["to-server:syn:delay=50"] } },
      async (gw) => {
        const rules = [{ action: "delay" }];
        await expect(gw.setFaults({ rules })).rejects.toMatchObject({
          name: "ToasimError",
          code: "BAD_OPTION",
          option: "faults.rules[0].ms",
          detail: "undefined is not an integer from 1 to 600000",
        });
        const file = join(tmp, "bad.json");
        writeFileSync(file, JSON.stringify({ rules }));
        const r = await run(
          [process.execPath, CLI, "fault", "set", "--file", file, "--id", gw.id],
          15_000,
        );
        expect(r.code).toBe(2);
        expect(r.stderr.trim()).toBe(
          "toasim fault: --file: faults.rules[0].ms: undefined is not an integer from 1 to 600000",
        );
        expect(readFileSync(file, "utf8")).toContain("delay");
        // Neither changed the rules the gateway runs: its SYNs are still delayed.
        expect((await ask(gw))?.peer?.address).toBe("198.51.100.7");
        expect((await gw.stats()).faultDelayed).toBe(1);
      },
    );
  }, 60_000);
});
