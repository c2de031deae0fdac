import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { ebpfUnavailable } from "../../src/decoder/availability.js";
import { describeTier } from "../helpers/tier.js";
import {
  Background,
  CLI,
  type CliInstance,
  cliStats,
  e2eMissing,
  namespacesOf,
  ROOT,
  type RunResult,
  run,
  STATE_DIR,
  sleep,
  startCliCapture,
  startCliInstance,
  stopCliInstance,
  tshark,
} from "./helpers.js";

/**
 * The CLI over a live instance, end to end, as a user or a CI step runs it:
 * `toasim up --json`, `toasim exec` on both sides (with --as), `toasim
 * stats --json`, `toasim capture` of both sides, `toasim fault set|clear`,
 * `toasim restart` and `toasim down`, each a separate process reaching the
 * instance through its control socket. The CLI is a thin layer over the
 * API, which the other e2e tests drive (api.test.ts: the API itself); this
 * file keeps the layer covered: its flags, its output, its exit codes.
 */

const missing =
  e2eMissing([
    ["socat", ["-V"]],
    ["tshark", ["-v"]],
  ]) ?? ebpfUnavailable();
const tmp = mkdtempSync(join(tmpdir(), "toasim-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Report {
  peer?: { address?: string; port?: number };
  payload?: string;
}

/** `toasim ARGS --id ID`: its output, after checking it succeeded quietly. */
async function cli(inst: CliInstance, ...args: string[]): Promise<string> {
  const r = await run([process.execPath, CLI, ...args, "--id", inst.id], 15_000);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout;
}

/** `toasim exec SIDE --id ID [FLAGS] -- CMD...`. */
function exec(
  inst: CliInstance,
  side: "client" | "rs",
  flags: readonly string[],
  cmd: readonly string[],
  timeoutMs = 15_000,
): Promise<RunResult> {
  return run(
    [process.execPath, CLI, "exec", side, "--id", inst.id, ...flags, "--", ...cmd],
    timeoutMs,
  );
}

/** One connection through the VIP (`toasim exec client`); the reader's report, or null. */
async function ask(
  inst: CliInstance,
  script = "echo hello",
  timeoutS = 6,
  flags: readonly string[] = [],
): Promise<Report | null> {
  const r = await exec(
    inst,
    "client",
    flags,
    ["sh", "-c", `(${script}) | socat -T ${timeoutS} - TCP4:203.0.113.10:80`],
    (timeoutS + 10) * 1000,
  );
  const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
  return line === undefined ? null : (JSON.parse(line) as Report);
}

/**
 * `toasim up --json ARGS`, with the Node reader server on 192.0.2.10:8080
 * run by `toasim exec rs` (so in the decoder's cgroup), for `body`; then
 * SIGTERM to both and `toasim down --id`, which must succeed and leave
 * none of the instance's namespaces.
 */
async function withCliReaderServer(
  args: readonly string[],
  body: (inst: CliInstance) => Promise<void>,
): Promise<void> {
  const inst = await startCliInstance(args);
  const ready = join(STATE_DIR, `${inst.id}.e2e-ready`);
  const server = new Background(
    [
      process.execPath,
      CLI,
      "exec",
      "rs",
      "--id",
      inst.id,
      "--",
      process.execPath,
      join(ROOT, "examples/node/reader-server.mjs"),
      "--tcp",
      "192.0.2.10:8080",
      "--ready",
      ready,
    ],
    "toasim exec rs -- reader-server",
  );
  let down: RunResult | null = null;
  try {
    // Polled: the server prints nothing until a client comes.
    for (let i = 0; i < 200 && !existsSync(ready) && !server.exited; i++) await sleep(100);
    if (!existsSync(ready)) throw new Error(`the reader server did not start: ${server.err}`);
    await body(inst);
  } finally {
    await server.stop();
    rmSync(ready, { force: true });
    down = await stopCliInstance(inst);
  }
  expect(down.code, `toasim down: ${down.stderr}`).toBe(0);
  expect(down.stdout).toMatch(/^toasim down: /);
  expect(namespacesOf(inst.id)).toEqual([]);
}

/** The client address in a TOA of kind 200 (tencent: kind, length 8, port, IPv4). */
function toaClient(option: string): string {
  const m = /^c808[0-9a-f]{4}([0-9a-f]{8})$/.exec(option);
  return m ? [0, 2, 4, 6].map((i) => Number.parseInt(m[1]!.slice(i, i + 2), 16)).join(".") : "";
}

describeTier("e2e (CLI)", missing, "the CLI over a live instance (eBPF decoder)", () => {
  it("toasim up, exec, stats, capture, fault set|clear, down: a dropped handshake ACK shows a tencent server the gateway", async () => {
    await withCliReaderServer(["--profile", "tencent", "--decoder", "ebpf"], async (inst) => {
      const ready = JSON.parse(inst.up.lines()[0]!) as Record<string, unknown>;
      expect(ready).toMatchObject({ profile: "tencent", decoder: "ebpf" });
      expect(ready["rsCgroup"]).toMatch(new RegExp(`toasim-${inst.id}-rs$`));

      // exec: each side in its namespace, the program's exit code and output.
      const where = await exec(inst, "rs", [], ["ip", "netns", "identify"]);
      expect(where).toMatchObject({ code: 0, stdout: `${inst.serverNs}\n` });
      const failing = await exec(inst, "client", [], ["sh", "-c", "echo out; exit 3"]);
      expect(failing).toMatchObject({ code: 3, stdout: "out\n" });

      const spcap = join(tmp, "tencent-server.pcap");
      const cpcap = join(tmp, "tencent-client.pcap");
      const scap = await startCliCapture(inst, "server", spcap);
      const ccap = await startCliCapture(inst, "client", cpcap);
      let serverPackets: number;
      let clientPackets: number;
      try {
        expect((await ask(inst))?.peer?.address).toBe("198.51.100.7");
        const as = await ask(inst, "echo hello", 6, ["--as", "198.51.100.23"]);
        expect(as?.peer?.address).toBe("198.51.100.23");
        expect(
          await cli(inst, "fault", "set", "--fault", "to-server:handshake-ack:drop,count=1"),
        ).toMatch(/1 fault rule\(s\) on/);
        const lost = await ask(inst);
        // The data completed the handshake without a TOA: the server saw a LIP.
        expect(lost?.peer?.address).toMatch(/^192\.0\.2\.(1[0-2]\d|13[01])$/);
        expect(lost?.payload).toBe("hello\n");
        const s = JSON.parse(await cli(inst, "stats", "--json")) as Record<string, unknown>;
        expect(s).toMatchObject({ id: inst.id, faultDropped: 1, connectionsCreated: 3 });
        // count=1 is spent: the next connection is whole again.
        expect((await ask(inst))?.peer?.address).toBe("198.51.100.7");
        expect(await cli(inst, "fault", "clear")).toMatch(/faults off/);
        expect(await cli(inst, "stats")).toMatch(/faults +dropped 1,/);
      } finally {
        await sleep(300); // the last ACKs of the close
        serverPackets = await scap.stop();
        clientPackets = await ccap.stop();
      }
      const fields = ["frame.number", "tcp.flags.syn", "tcp.flags.ack", "tcp.option_kind"];
      const server = tshark(spcap, [...fields, "tcp.options.unknown"]);
      const client = tshark(cpcap, fields);
      expect(server.length).toBe(serverPackets);
      expect(client.length).toBe(clientPackets);
      // Four connections; the TOA (kind 200) on the three handshake ACKs that
      // reached the server, with the address each came from; none client-side.
      const on = (v: string | undefined) => v === "1" || v === "True";
      const isSyn = (r: Record<string, string>) =>
        on(r["tcp.flags.syn"]) && !on(r["tcp.flags.ack"]);
      expect(client.filter(isSyn).length).toBeGreaterThanOrEqual(4);
      const withToa = server.filter((r) => (r["tcp.option_kind"] ?? "").split("|").includes("200"));
      expect(withToa.map((r) => toaClient(r["tcp.options.unknown"] ?? "")).sort()).toEqual([
        "198.51.100.23",
        "198.51.100.7",
        "198.51.100.7",
      ]);
      expect(client.filter((r) => (r["tcp.option_kind"] ?? "").split("|").includes("200"))).toEqual(
        [],
      );
    });
  }, 90_000);

  it("toasim restart: an open connection's packets belong to no connection; new ones work", async () => {
    await withCliReaderServer(["--profile", "dpvs", "--decoder", "ebpf"], async (inst) => {
      // Connected, then silent for 1.5 s while the gateway restarts.
      const open = ask(inst, "sleep 1.5; echo late", 4);
      await sleep(700);
      expect((await cliStats(inst))["connectionsActive"]).toBe(1);
      expect(await cli(inst, "restart")).toMatch(/gateway restarted/);
      expect((await cliStats(inst))["connectionsActive"]).toBe(0);
      expect(await open).toBeNull();
      expect((await cliStats(inst))["dropNoConnection"]).toBeGreaterThan(0);
      expect((await ask(inst))?.peer?.address).toBe("198.51.100.7");
    });
  }, 90_000);
});
