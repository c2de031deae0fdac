import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ebpfUnavailable } from "../../src/decoder/availability.js";
import { describeTier, itTier } from "../helpers/tier.js";
import {
  Background,
  CLI,
  e2eMissing,
  namespacesOf,
  netnsList,
  run,
  running,
  STATE_DIR,
  sleep,
  tshark,
  tunFdsOpen,
  within,
} from "./helpers.js";
import {
  type ExecResult,
  type Instance,
  type LocalInstance,
  type NsProcess,
  toasim,
  type UpOptions,
} from "./toasim-api.js";

/**
 * The programmatic API itself, end to end, as a test suite uses it: up()
 * in this process (its packet worker is a thread of this vitest worker),
 * `await using` clean-up, exec and spawn in the two namespaces, stats,
 * captures read by tshark, faults, restart, the errors it promises, and
 * attach() to an instance another process runs (`toasim up`). Real
 * programs only (curl, socat, python3's http.server); documentation
 * addresses only: clients 198.51.100.0/24, VIPs 203.0.113.10:80 (TCP) and
 * :53 (UDP), servers 192.0.2.10:8080 and :5353.
 */

const missing = e2eMissing([
  ["curl", ["--version"]],
  ["socat", ["-V"]],
  ["python3", ["--version"]],
  ["tshark", ["-v"]],
  ["nft", ["--version"]],
]);
/** What the tests of a decoder's view need besides (they check what the server sees). */
const noEbpf = missing === null ? ebpfUnavailable() : null;

const tmp = mkdtempSync(join(tmpdir(), "toasim-api-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A folder for http.server to serve: hello.txt says `text`. */
function site(name: string, text: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "hello.txt"), `${text}\n`);
  return dir;
}

/** python3's http.server on 192.0.2.10:8080 in the server namespace, serving `dir`. */
async function httpServer(gw: Instance, dir = site("site", "hello")): Promise<NsProcess> {
  const http = gw.spawn(
    "rs",
    ["python3", "-u", "-m", "http.server", "8080", "--bind", "192.0.2.10"],
    { cwd: dir },
  );
  await http.waitForOutput("Serving HTTP", { timeoutMs: 10_000 });
  return http;
}

/** curl of hello.txt through the VIP; `tag` names the request in the server's log. */
function get(gw: Instance, tag: string, opts: { as?: string } = {}): Promise<ExecResult> {
  return gw.exec(
    "client",
    ["curl", "-sS", "-m", "5", "-w", "%{http_code}", `http://203.0.113.10/hello.txt?${tag}`],
    { timeoutMs: 15_000, ...opts },
  );
}

/** The client address http.server logged for the request `tag` (its log is on stderr). */
async function seenBy(http: NsProcess, tag: string): Promise<string> {
  const line = await http.waitForOutput(`"GET /hello.txt?${tag} `, { stream: "stderr" });
  return line.split(" ")[0]!;
}

const LIP = /^192\.0\.2\.(1[0-2]\d|13[01])$/;

/** The error a promise rejected with (it must reject). */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
}

describeTier("e2e (API)", missing, "the toasim API (up, attach) end to end", () => {
  it("await using stops the instance and removes everything, even when the body throws", async () => {
    let id = "";
    let namespaces: string[] = [];
    let sleeper = -1;
    const body = async () => {
      await using gw = await toasim.up({ decoder: "none" });
      id = gw.id;
      namespaces = [gw.clientNamespace, gw.serverNamespace ?? "root"];
      expect(namespaces).toEqual([`toasim-${id}-c`, `toasim-${id}-r`]);
      expect(netnsList()).toEqual(expect.arrayContaining(namespaces));
      expect(toasim.instances().map((i) => i.id)).toContain(id);
      sleeper = gw.spawn("rs", ["sleep", "600"]).pid;
      expect(running(sleeper)).toBe(true);
      throw new Error("the test body failed");
    };
    await expect(body()).rejects.toThrow("the test body failed");
    expect(id).not.toBe("");
    expect(netnsList().filter((n) => namespaces.includes(n))).toEqual([]);
    expect(namespacesOf(id)).toEqual([]);
    expect(readdirSync(STATE_DIR).filter((f) => f.startsWith(`${id}.`))).toEqual([]);
    expect(running(sleeper)).toBe(false);
    expect(toasim.instances().map((i) => i.id)).not.toContain(id);
  });

  it("bad options are a ToasimError BAD_OPTION naming the option; nothing is created", async () => {
    const cases: [UpOptions, string][] = [
      [{ services: ["tcp:198.18.0.1:80=192.0.2.10:8080"] }, "services[0]"],
      [
        {
          services: [
            "tcp:203.0.113.10:80=192.0.2.10:8080",
            { proto: "udp", vip: "203.0.113.10:53", servers: [] },
          ],
        },
        "services[1].servers",
      ],
      [{ settings: { toaKind: 1 } }, "settings.toaKind"],
      [
        {
          faults: {
            rules: [{ direction: "to-server", class: "handshake-ack", action: "explode" }],
          },
        },
        "faults.rules[0].action",
      ],
      [
        { faults: { rules: ["to-server:syn:delay=50", "to-server:syn:explode"] } },
        "faults.rules[1].action",
      ],
      [{ decoder: { mode: "sometimes" } } as unknown as UpOptions, "decoder.mode"],
      [{ profile: "dpvs", mtus: 1400 } as unknown as UpOptions, "mtus"],
    ];
    const namespacesBefore = netnsList();
    const fdsBefore = tunFdsOpen();
    for (const [options, option] of cases) {
      const e = await rejection(
        toasim.up(options).then(async (gw) => {
          await gw.stop();
          return gw;
        }),
      );
      expect(e, JSON.stringify(options)).toBeInstanceOf(toasim.ToasimError);
      expect(e, JSON.stringify(options)).toMatchObject({ code: "BAD_OPTION", option });
      expect((e as Error).message).toMatch(new RegExp(`^${option.replace(/[[\].]/g, "\\$&")}: `));
    }
    expect(netnsList().filter((n) => !namespacesBefore.includes(n))).toEqual([]);
    expect(tunFdsOpen()).toBe(fdsBefore);
  });

  describe("one instance (dpvs, decoder auto)", () => {
    let gw: LocalInstance | undefined;
    beforeAll(async () => {
      gw = await toasim.up(
        { profile: "dpvs" },
        { onNote: (line) => console.warn(`toasim up: ${line}`) },
      );
    });
    afterAll(async () => {
      if (!gw) return;
      await gw.stop();
      expect(namespacesOf(gw.id)).toEqual([]);
    });

    it("exec runs a program to its end on either side: exit code, output, input, env, cwd, time limit", async () => {
      const sides = [
        ["client", gw!.clientNamespace],
        ["rs", gw!.serverNamespace],
      ] as const;
      for (const [side, ns] of sides) {
        expect(await gw!.exec(side, ["ip", "netns", "identify"])).toEqual({
          code: 0,
          signal: null,
          stdout: `${ns}\n`,
          stderr: "",
          timedOut: false,
        });
        expect(await gw!.exec(side, ["sh", "-c", "echo out; echo err >&2; exit 3"])).toEqual({
          code: 3,
          signal: null,
          stdout: "out\n",
          stderr: "err\n",
          timedOut: false,
        });
        const upper = await gw!.exec(side, ["tr", "a-z", "A-Z"], { input: "hello\nworld\n" });
        expect(upper).toMatchObject({ code: 0, stdout: "HELLO\nWORLD\n" });
      }
      const lo = (side: "client" | "rs") =>
        gw!.exec(side, ["ip", "-br", "addr", "show", "dev", "lo"]).then((r) => r.stdout);
      expect(await lo("client")).toContain("198.51.100.7/32");
      expect(await lo("rs")).toContain("192.0.2.10/32");
      const env = await gw!.exec("client", ["sh", "-c", 'echo "$TOASIM_E2E"; pwd -P'], {
        env: { ...process.env, TOASIM_E2E: "set here" },
        cwd: tmp,
      });
      expect(env.stdout).toBe(`set here\n${tmp}\n`);
      const t0 = Date.now();
      const slow = await gw!.exec("client", ["sleep", "30"], { timeoutMs: 300 });
      expect(slow).toMatchObject({ code: null, signal: "SIGKILL", timedOut: true });
      expect(Date.now() - t0).toBeLessThan(10_000);
    });

    // iproute2's `ip netns exec` exits 1 (6.1) or 255 after its `exec of
    // "CMD" failed` line: the API goes by the line.
    it("exec of a program that does not exist is a ToasimError SPAWN_FAILED, on either side", async () => {
      for (const side of ["client", "rs"] as const) {
        const e = await rejection(gw!.exec(side, ["toasim-no-such-program", "--flag"]));
        expect(e, side).toBeInstanceOf(toasim.ToasimError);
        expect(e, side).toMatchObject({ code: "SPAWN_FAILED" });
        expect((e as Error).message).toContain("toasim-no-such-program");
        // spawn returns at once; the process says why it never ran.
        const p = gw!.spawn(side, ["toasim-no-such-program"]);
        await p.exited;
        expect(p.startFailure(), side).toMatch(/toasim-no-such-program/);
      }
    });

    it("spawn: waitForOutput finds a server's line, the server answers through the VIP, stop() ends it", async () => {
      const http = await httpServer(gw!, site("spawn", "hello from spawn"));
      expect(http.pid).toBeGreaterThan(0);
      expect(running(http.pid)).toBe(true);
      expect(http.command).toEqual([
        "python3",
        "-u",
        "-m",
        "http.server",
        "8080",
        "--bind",
        "192.0.2.10",
      ]);
      expect(await http.waitForOutput(/^Serving HTTP on 192\.0\.2\.10 port 8080/)).toMatch(
        /^Serving HTTP/,
      );
      expect(http.exitStatus).toBeNull();
      expect(await get(gw!, "spawn1")).toMatchObject({ code: 0, stdout: "hello from spawn\n200" });
      expect(await http.waitForOutput('"GET /hello.txt?spawn1 ', { stream: "stderr" })).toMatch(
        /" 200 /,
      );
      const status = await http.stop();
      expect(status).toEqual({ code: null, signal: "SIGTERM" });
      expect(await http.exited).toEqual(status);
      expect(http.exitStatus).toEqual(status);
      expect(running(http.pid)).toBe(false);
      // Nobody listens now: the server namespace's kernel refuses the connection.
      const refused = await get(gw!, "spawn2");
      expect(refused.code).toBe(7);
      expect(refused.stderr).toMatch(/Failed to connect|Connection refused/);
    });

    it("waitForOutput: a ToasimError TIMEOUT when the line does not come, EXITED when the program ends first", async () => {
      await using quiet = gw!.spawn("client", ["sleep", "30"]);
      const t0 = Date.now();
      const timeout = await rejection(quiet.waitForOutput("never", { timeoutMs: 300 }));
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      expect(timeout).toBeInstanceOf(toasim.ToasimError);
      expect(timeout).toMatchObject({ code: "TIMEOUT" });
      expect((timeout as Error).message).toMatch(/sleep 30 printed no never within 300 ms/);
      expect(quiet.exitStatus).toBeNull();

      const brief = gw!.spawn("rs", ["sh", "-c", "echo partial; echo why >&2; exit 4"]);
      const exited = await rejection(brief.waitForOutput("never", { timeoutMs: 10_000 }));
      expect(exited).toBeInstanceOf(toasim.ToasimError);
      expect(exited).toMatchObject({ code: "EXITED" });
      expect((exited as Error).message).toMatch(/exited \(exit code 4\) before printing never/);
      expect((exited as Error).message).toMatch(/stderr: why$/);
      // What it wrote before it ended is still found.
      expect(await brief.waitForOutput("partial")).toBe("partial");
      expect(brief.exitStatus).toEqual({ code: 4, signal: null });
      expect(brief.stdout).toBe("partial\n");
      expect(brief.stderr).toBe("why\n");

      // since: "now" waits for the next such line, not one already written.
      const ticker = gw!.spawn("rs", [
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
      ]);
      const first = await ticker.waitForOutput(/^tick \d+$/);
      await new Promise((r) => setTimeout(r, 700));
      const next = await ticker.waitForOutput(/^tick \d+$/, { since: "now" });
      expect(first).toBe("tick 1");
      expect(Number(next.split(" ")[1])).toBeGreaterThanOrEqual(4);
      await ticker.stop();
    });

    it("stats count the connections; capture writes pcaps of both sides that tshark reads", async () => {
      await using http = await httpServer(gw!);
      const s0 = await gw!.stats();
      const d0 = await gw!.decoderStats();
      const cpath = join(tmp, "client.pcap");
      const spath = join(tmp, "server.pcap");
      const cc = await gw!.capture({ side: "client", path: cpath });
      const sc = await gw!.capture({ side: "server", path: spath });
      expect([cc.side, cc.path, sc.side, sc.path]).toEqual(["client", cpath, "server", spath]);
      for (let i = 0; i < 3; i++)
        expect(await get(gw!, `stats${i}`)).toMatchObject({ code: 0, stdout: "hello\n200" });
      await sleep(300); // the last ACKs of the closes
      const clientPackets = await cc.stop();
      const serverPackets = await sc.stop();
      expect(await cc.done).toBe(clientPackets);
      const s1 = await gw!.stats();
      const delta = (k: keyof typeof s1) => s1[k] - s0[k];
      expect(delta("connectionsCreated")).toBe(3);
      expect(delta("carriersInserted")).toBeGreaterThanOrEqual(3);
      expect(delta("dropMalformed") + delta("dropNoService") + delta("dropNoConnection")).toBe(0);

      const fields = ["ip.src", "ip.dst", "tcp.flags.syn", "tcp.flags.ack", "tcp.option_kind"];
      const client = tshark(cpath, fields);
      const server = tshark(spath, fields);
      expect(client.length).toBe(clientPackets);
      expect(server.length).toBe(serverPackets);
      // Every packet the gateway counted crossing a side is in that side's pcap.
      const count = (rows: typeof client, k: string, v: string) =>
        rows.filter((r) => r[k] === v).length;
      expect(count(client, "ip.dst", "203.0.113.10")).toBe(delta("packetsFromClient"));
      expect(count(client, "ip.src", "203.0.113.10")).toBe(delta("packetsToClient"));
      expect(count(server, "ip.dst", "192.0.2.10")).toBe(delta("packetsToServer"));
      expect(count(server, "ip.src", "192.0.2.10")).toBe(delta("packetsFromServer"));
      const on = (v: string | undefined) => v === "1" || v === "True";
      const syns = client.filter((r) => on(r["tcp.flags.syn"]) && !on(r["tcp.flags.ack"]));
      expect(syns.map((r) => r["ip.src"])).toEqual(Array(3).fill("198.51.100.7"));
      // DPVS's TOA (kind 254) on the server side only.
      const toa = (r: (typeof client)[number]) =>
        (r["tcp.option_kind"] ?? "").split("|").includes("254");
      expect(server.filter(toa).length).toBeGreaterThanOrEqual(3);
      expect(client.filter(toa)).toEqual([]);

      const d1 = await gw!.decoderStats();
      if (gw!.decoder === "ebpf") {
        const got = (d: typeof d1) => d?.counters["syn_recv_sock_toa"] ?? 0;
        expect(got(d1) - got(d0)).toBe(3);
      } else {
        expect(d1).toBeNull();
      }

      // A capture with a packet count closes the file by itself, with exactly
      // that many packets (the handshake alone has more).
      const fpath = join(tmp, "first.pcap");
      await using first = await gw!.capture({ path: fpath, count: 2 });
      expect(first.side).toBe("server");
      expect(await get(gw!, "count")).toMatchObject({ code: 0 });
      const n = await within(first.done, 5000, "the counted capture");
      expect(n).toBe(2);
      expect(tshark(fpath, ["frame.number"]).length).toBe(2);
      expect(http.exitStatus).toBeNull();
    });

    itTier(
      "e2e (eBPF decoder)",
      noEbpf,
      "as: the server sees the source address the client program was given",
      async () => {
        expect(gw!.decoder).toBe("ebpf");
        await using http = await httpServer(gw!);
        expect(await get(gw!, "as1", { as: "198.51.100.23" })).toMatchObject({ code: 0 });
        expect(await seenBy(http, "as1")).toBe("198.51.100.23");
        expect(await get(gw!, "as2")).toMatchObject({ code: 0 });
        expect(await seenBy(http, "as2")).toBe("198.51.100.7");
        for (const [side, as] of [
          ["rs", "198.51.100.23"],
          ["client", "192.0.2.1"],
        ] as const) {
          const e = await rejection(gw!.exec(side, ["true"], { as }));
          expect(e, `${side} as ${as}`).toBeInstanceOf(toasim.ToasimError);
          expect(e, `${side} as ${as}`).toMatchObject({ code: "BAD_OPTION", option: "as" });
        }
      },
    );
  });

  itTier(
    "e2e (eBPF decoder)",
    noEbpf,
    "setFaults with a string rule and an object rule: lost handshake ACKs show a tencent server the gateway; clearFaults restores it",
    async () => {
      await using gw = await toasim.up({ profile: "tencent", decoder: "ebpf" });
      await using http = await httpServer(gw);
      const seen = async (tag: string): Promise<string> => {
        expect(await get(gw, tag)).toMatchObject({ code: 0, stdout: "hello\n200" });
        return seenBy(http, tag);
      };
      expect(await seen("f0")).toBe("198.51.100.7");

      expect(await gw.setFaults({ rules: ["to-server:handshake-ack:drop,count=1"] })).toEqual({
        rules: 1,
      });
      // The request completed the handshake without the TOA (tencent puts it on that ACK alone).
      expect(await seen("f1")).toMatch(LIP);
      expect((await gw.stats()).faultDropped).toBe(1);
      expect(await seen("f2")).toBe("198.51.100.7");

      const rule = { direction: "to-server", class: "handshake-ack", action: "drop" };
      expect(await gw.setFaults({ rules: [rule] })).toEqual({ rules: 1 });
      expect(await seen("f3")).toMatch(LIP);
      expect(await seen("f4")).toMatch(LIP);
      expect((await gw.stats()).faultDropped).toBe(3);

      // A bad rule is refused and changes nothing.
      const bad = await rejection(gw.setFaults({ rules: [{ ...rule, action: "explode" }] }));
      expect(bad).toBeInstanceOf(toasim.ToasimError);
      expect(bad).toMatchObject({ code: "BAD_OPTION", option: "faults.rules[0].action" });
      expect(await seen("f5")).toMatch(LIP);

      await gw.clearFaults();
      expect(await seen("f6")).toBe("198.51.100.7");
      expect((await gw.stats()).faultDropped).toBe(4);
    },
  );

  it("restart(): connections are forgotten, connectionsActive goes back to 0, new connections work", async () => {
    await using gw = await toasim.up({ decoder: "none" });
    await using http = await httpServer(gw);
    // Connected, then silent for 1.5 s while the gateway restarts.
    const open = gw.exec(
      "client",
      [
        "sh",
        "-c",
        "(sleep 1.5; printf 'GET /hello.txt HTTP/1.0\\r\\n\\r\\n') | socat -T 4 - TCP4:203.0.113.10:80",
      ],
      { timeoutMs: 15_000 },
    );
    await sleep(700);
    const s0 = await gw.stats();
    expect(s0).toMatchObject({ connectionsActive: 1, connectionsCreated: 1, dropNoConnection: 0 });
    await gw.restart();
    expect((await gw.stats()).connectionsActive).toBe(0);
    // Its request belonged to no connection: no answer.
    expect((await open).stdout).toBe("");
    expect((await gw.stats()).dropNoConnection).toBeGreaterThan(0);
    expect(await get(gw, "after-restart")).toMatchObject({ code: 0, stdout: "hello\n200" });
    // Counters carry on across the restart; the table starts empty. (The
    // restarted gateway hands out the forgotten connection's LIP and port
    // again; the server, which still has that connection open, answers the
    // new SYN with a challenge ACK, the client resets, and its next SYN gets
    // another port: one or two connections for the request.)
    const s1 = await gw.stats();
    expect(s1.connectionsActive).toBe(1);
    expect(s1.connectionsCreated).toBeGreaterThanOrEqual(2);
    expect(http.exitStatus).toBeNull();
  });

  it("attach() drives an instance `toasim up` runs in another process; stop() ends that process and removes it", async () => {
    const owner = new Background(
      [process.execPath, CLI, "up", "--json", "--decoder", "none"],
      "toasim up --json --decoder none",
    );
    let id = "";
    try {
      await owner.waitFor(() => owner.lines().length > 0, 20_000, "ready line");
      const ready = JSON.parse(owner.lines()[0]!) as {
        id: string;
        clientNs: string;
        serverNs: string;
      };
      id = ready.id;
      const other = toasim.attach({ id });
      expect(other).toMatchObject({
        id,
        clientNamespace: ready.clientNs,
        serverNamespace: ready.serverNs,
        owned: false,
        profile: "dpvs",
        decoder: "none",
        rsCgroup: null,
        socket: join(STATE_DIR, `${id}.sock`),
      });
      expect(other.services[0]).toEqual({
        proto: "tcp",
        vip: "203.0.113.10:80",
        servers: ["192.0.2.10:8080"],
      });
      expect(toasim.instances().map((i) => i.id)).toContain(id);
      const e = await rejection(Promise.resolve().then(() => toasim.attach({ id: "000000" })));
      expect(e).toBeInstanceOf(toasim.ToasimError);
      expect(e).toMatchObject({ code: "NO_INSTANCE" });
      expect((e as Error).message).toContain("no running instance 000000");

      expect((await other.exec("client", ["ip", "netns", "identify"])).stdout).toBe(
        `${ready.clientNs}\n`,
      );
      expect((await other.exec("rs", ["ip", "netns", "identify"])).stdout).toBe(
        `${ready.serverNs}\n`,
      );
      // `await using` on an attached handle stops what it spawned, not the instance.
      let server = -1;
      {
        await using scoped = toasim.attach({ id });
        const http = await httpServer(scoped);
        server = http.pid;
        expect(await get(scoped, "attached")).toMatchObject({ code: 0, stdout: "hello\n200" });
        expect(await other.stats()).toMatchObject({ connectionsCreated: 1 });
      }
      expect(running(server)).toBe(false);
      expect(owner.exited).toBe(false);
      expect(namespacesOf(id).sort()).toEqual([ready.clientNs, ready.serverNs].sort());

      await other.stop();
      expect(await owner.waitExit(10_000)).toBe(true);
      expect(owner.exitCode).toBe(0);
      expect(namespacesOf(id)).toEqual([]);
      expect(readdirSync(STATE_DIR).filter((f) => f.startsWith(`${id}.`))).toEqual([]);
      expect(toasim.instances().map((i) => i.id)).not.toContain(id);
      const stopped = await rejection(other.exec("client", ["true"]));
      expect(stopped).toMatchObject({ code: "STOPPED" });
    } finally {
      await owner.stop("SIGTERM", 8000);
      if (id !== "") await run([process.execPath, CLI, "down", "--id", id], 20_000);
    }
  });

  it("a second up() in the same process runs on its own", async () => {
    await using a = await toasim.up({
      decoder: "none",
      settings: { uoa: "ipo" },
      services: [
        "tcp:203.0.113.10:80=192.0.2.10:8080",
        { proto: "udp", vip: "203.0.113.10:53", servers: ["192.0.2.10:5353"] },
      ],
    });
    await using b = await toasim.up({ profile: "tencent", decoder: "none" });
    expect(a.id).not.toBe(b.id);
    expect(a.services).toEqual([
      { proto: "tcp", vip: "203.0.113.10:80", servers: ["192.0.2.10:8080"] },
      { proto: "udp", vip: "203.0.113.10:53", servers: ["192.0.2.10:5353"] },
    ]);
    expect([a.profile, b.profile]).toEqual(["dpvs", "tencent"]);
    expect(toasim.instances().map((i) => i.id)).toEqual(expect.arrayContaining([a.id, b.id]));

    // The same addresses in both, each its own server.
    const httpA = await httpServer(a, site("a", "from a"));
    await using httpB = await httpServer(b, site("b", "from b"));
    expect(await get(a, "a1")).toMatchObject({ code: 0, stdout: "from a\n200" });
    expect(await get(b, "b1")).toMatchObject({ code: 0, stdout: "from b\n200" });
    expect(await get(a, "a2")).toMatchObject({ code: 0, stdout: "from a\n200" });
    expect((await a.stats()).connectionsCreated).toBe(2);
    expect((await b.stats()).connectionsCreated).toBe(1);

    // UDP through a's second service (UOA in IP options, which needs no decoder).
    await using udp = a.spawn("rs", [
      "socat",
      "-d",
      "-d",
      "-u",
      "UDP4-RECV:5353,bind=192.0.2.10",
      "STDOUT",
    ]);
    await udp.waitForOutput("starting data transfer loop", { stream: "stderr" });
    const sent = await a.exec("client", ["socat", "-u", "STDIN", "UDP4-SENDTO:203.0.113.10:53"], {
      input: "ping over udp\n",
      timeoutMs: 10_000,
    });
    expect(sent.code).toBe(0);
    expect(await udp.waitForOutput("ping over udp", { stream: "stdout" })).toBe("ping over udp");
    // Without a decoder the server's socket sees the gateway's LIP.
    const from = /from AF=2 ([\d.]+):\d+/.exec(await udp.waitForOutput("received packet"));
    expect(from?.[1]).toMatch(LIP);
    expect((await a.stats()).connectionsCreated).toBe(3);
    expect((await b.stats()).connectionsCreated).toBe(1);

    // Stopping one leaves the other serving.
    await a.stop();
    await a.stopped;
    expect(a.failure()).toBeNull();
    expect(namespacesOf(a.id)).toEqual([]);
    expect(httpA.exitStatus).not.toBeNull();
    const late = await rejection(a.exec("client", ["true"]));
    expect(late).toBeInstanceOf(toasim.ToasimError);
    expect(late).toMatchObject({ code: "STOPPED" });
    expect(() => a.spawn("client", ["true"])).toThrow(/has stopped/);
    // Counters too: read them before stop(), whoever runs the instance.
    expect(await rejection(a.stats())).toMatchObject({ code: "STOPPED" });
    expect(await get(b, "b2")).toMatchObject({ code: 0, stdout: "from b\n200" });
    expect(namespacesOf(b.id).length).toBe(2);
    expect(httpB.exitStatus).toBeNull();
    expect(b.failure()).toBeNull();
  });
});
