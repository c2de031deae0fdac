import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { ebpfUnavailable } from "../../src/cli/decoder-flags.js";
import { describeTier } from "../helpers/tier.js";
import { CLI, e2eMissing, type Instance, run, sleep, stats, withReaderServer } from "./helpers.js";

/**
 * Fault injection in the live gateway, judged by what a real server asks
 * the eBPF decoder: a dropped handshake ACK costs a tencent-style gateway
 * (TOA on that ACK alone) the client address and costs dpvs (TOA on data
 * until acknowledged) nothing; `toasim fault set|clear` switch faults on a
 * running instance; `toasim restart` forgets open connections.
 */

const missing = e2eMissing([["socat", ["-V"]]]) ?? ebpfUnavailable();
const tmp = mkdtempSync(join(tmpdir(), "toasim-faults-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Report {
  peer?: { address?: string; port?: number };
  payload?: string;
}

function withServer(
  profile: string,
  extra: readonly string[],
  body: (inst: Instance) => Promise<void>,
): Promise<void> {
  return withReaderServer(
    ["--profile", profile, "--decoder", "ebpf", ...extra],
    "192.0.2.10:8080",
    false,
    body,
  );
}

/** One connection through the VIP; the reader's report, or null when none came back. */
async function ask(inst: Instance, script = "echo hello", timeoutS = 6): Promise<Report | null> {
  const r = await run(
    [
      process.execPath,
      CLI,
      "exec",
      "client",
      "--id",
      inst.id,
      "--",
      "sh",
      "-c",
      `(${script}) | socat -T ${timeoutS} - TCP4:203.0.113.10:80`,
    ],
    (timeoutS + 10) * 1000,
  );
  const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
  return line === undefined ? null : (JSON.parse(line) as Report);
}

async function faultCli(inst: Instance, ...args: string[]): Promise<string> {
  const r = await run([process.execPath, CLI, ...args, "--id", inst.id], 15_000);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout;
}

describeTier("e2e (faults)", missing, "fault injection in the live gateway", () => {
  it("tencent (TOA on the handshake ACK alone): a dropped ACK shows the server the gateway", async () => {
    await withServer("tencent", [], async (inst) => {
      expect((await ask(inst))?.peer?.address).toBe("198.51.100.7");
      expect(
        await faultCli(inst, "fault", "set", "--fault", "to-server:handshake-ack:drop,count=1"),
      ).toMatch(/1 fault rule\(s\) on/);
      const lost = await ask(inst);
      // The data completed the handshake without a TOA: the server saw a LIP.
      expect(lost?.peer?.address).toMatch(/^192\.0\.2\.(1[0-2]\d|13[01])$/);
      expect(lost?.payload).toBe("hello\n");
      expect((await stats(inst))["faultDropped"]).toBe(1);
      // count=1 is spent: the next connection is whole again.
      expect((await ask(inst))?.peer?.address).toBe("198.51.100.7");
      expect(await faultCli(inst, "fault", "clear")).toMatch(/faults off/);
    });
  }, 90_000);

  it("dpvs (TOA on data until acknowledged): the same lost ACK changes nothing", async () => {
    await withServer("dpvs", ["--fault", "to-server:handshake-ack:drop"], async (inst) => {
      for (let i = 0; i < 2; i++) {
        const r = await ask(inst);
        expect(r?.peer?.address).toBe("198.51.100.7");
        expect(r?.payload).toBe("hello\n");
      }
      expect((await stats(inst))["faultDropped"]).toBe(2);
    });
  }, 90_000);

  it("a duplicated and delayed SYN-ACK and reordered data still give the server the client", async () => {
    const faults = [
      "--fault",
      "to-client:syn-ack:duplicate=2",
      "--fault",
      "to-server:syn:delay=300",
      "--fault",
      "to-server:data:reorder,maxMs=200",
    ];
    await withServer("dpvs", faults, async (inst) => {
      const r = await ask(inst, "printf one; sleep 0.2; printf two");
      expect(r?.peer?.address).toBe("198.51.100.7");
      const s = await stats(inst);
      expect(s["faultDuplicated"]).toBe(2);
      expect(s["faultDelayed"]).toBe(1);
      expect(s["faultReordered"]).toBeGreaterThanOrEqual(1);
    });
  }, 90_000);

  it("toasim restart: an open connection's packets belong to no connection; new ones work", async () => {
    await withServer("dpvs", [], async (inst) => {
      // Connected, then silent for 1.5 s while the gateway restarts.
      const open = ask(inst, "sleep 1.5; echo late", 4);
      await sleep(700);
      expect((await stats(inst))["connectionsActive"]).toBe(1);
      expect(await faultCli(inst, "restart")).toMatch(/gateway restarted/);
      expect((await stats(inst))["connectionsActive"]).toBe(0);
      expect(await open).toBeNull();
      expect((await stats(inst))["dropNoConnection"]).toBeGreaterThan(0);
      expect((await ask(inst))?.peer?.address).toBe("198.51.100.7");
    });
  }, 90_000);

  it("a bad rule sent to a running instance is refused with its reason", async () => {
    await withServer("dpvs", [], async (inst) => {
      const file = join(tmp, "bad.json");
      writeFileSync(file, JSON.stringify({ rules: [{ action: "delay" }] }));
      const r = await run(
        [process.execPath, CLI, "fault", "set", "--file", file, "--id", inst.id],
        15_000,
      );
      expect(r.code).toBe(2);
      expect(r.stderr.trim()).toBe(
        "toasim fault: --file: faults.rules[0].ms: undefined is not an integer from 1 to 600000",
      );
      expect(readFileSync(file, "utf8")).toContain("delay");
    });
  }, 60_000);
});
