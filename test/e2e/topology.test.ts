import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, afterEach, expect, it } from "vitest";
import { parseIp } from "../../src/option-codec/address.js";
import { IpProtocol } from "../../src/option-codec/ipv4.js";
import { emitPacket, ipHeaderFor, type L4Repr } from "../../src/option-codec/packet.js";
import { ADDRESS_PLAN } from "../../src/runtime/defaults.js";
import { RuntimeError } from "../../src/runtime/errors.js";
import {
  claimInstance,
  cleanupStale,
  listStates,
  removeState,
  STATE_DIR,
} from "../../src/runtime/registry.js";
import { type KernelTun, MAX_PACKET, Poller } from "../../src/tun/device.js";
import { TunError } from "../../src/tun/errors.js";
import {
  clientNsName,
  createTopology,
  deleteNamespace,
  newInstanceId,
  nsExecArgs,
  serverNsName,
  type Topology,
} from "../../src/tun/topology.js";
import { pythonFixture } from "../helpers/fixtures.js";
import { commandMissing, describeTier } from "../helpers/tier.js";
import { tunFdsOpen } from "./helpers.js";

// Tier 3 (privileged): real namespaces, real TUN devices, real sockets. The
// checks read the kernel's view with `ip` and move real datagrams through
// the TUN fds; nothing is checked only against toasim's own idea of it.

function missing(): string | null {
  if (process.platform !== "linux") return "not Linux";
  if (process.geteuid?.() !== 0) return "not root (network namespaces and TUN need root)";
  if (!existsSync("/dev/net/tun")) return "/dev/net/tun missing (modprobe tun)";
  return commandMissing("ip", ["-V"]) ?? commandMissing("python3");
}

const MISSING = missing();
const ROOT = resolve(import.meta.dirname, "../..");
const work = mkdtempSync(join(tmpdir(), "toasim-e2e-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const live: Topology[] = [];
afterEach(() => {
  for (const t of live.splice(0)) t.destroy();
});

function topology(extra: { extraRsAddresses?: readonly string[] } = {}): Topology {
  const t = createTopology({ id: newInstanceId(), plan: ADDRESS_PLAN, ...extra });
  live.push(t);
  return t;
}

function sh(argv: readonly string[]): string {
  return execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 10_000 });
}

function ip(...args: string[]): string {
  return sh(["ip", ...args]);
}

function inNs(ns: string | null, cmd: string[]): string {
  return sh(nsExecArgs(ns, cmd));
}

function netnsList(): string[] {
  return ip("netns", "list")
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n !== "");
}

/** Not gone and not a zombie (whoever reaps orphans here may take its time). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

const buf = new Uint8Array(MAX_PACKET);

/** The next packet from `tun` that `match` accepts (others are skipped), or throws after `ms`. */
function readPacket(tun: KernelTun, match: (p: Uint8Array) => boolean, ms = 3000): Uint8Array {
  const poller = new Poller([tun.fd]);
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (poller.wait(100) === 0) continue;
    for (let n = tun.read(buf); n > 0; n = tun.read(buf)) {
      const p = buf.slice(0, n);
      if (match(p)) return p;
    }
  }
  throw new Error(`no matching packet on ${tun.name} within ${ms} ms`);
}

const u16 = (p: Uint8Array, o: number): number => (p[o]! << 8) | p[o + 1]!;
const bytes = (p: Uint8Array, from: number, to: number): number[] => [...p.subarray(from, to)];
const isUdp4 = (p: Uint8Array): boolean => p[0]! >> 4 === 4 && p[9] === 17;
const isUdp6 = (p: Uint8Array): boolean => p[0]! >> 4 === 6 && p[6] === 17;

function send(ns: string | null, dst: string, port: number, src = ""): void {
  inNs(ns, ["python3", pythonFixture("udp_send.py"), dst, String(port), src]);
}

interface Listener {
  ready: Promise<void>;
  received: Promise<{ data: string; peer: string; port: number }>;
  proc: ChildProcess;
}

function listen(ns: string | null, addr: string, port: number): Listener {
  const argv = nsExecArgs(ns, ["python3", pythonFixture("udp_listen.py"), addr, String(port)]);
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const lines = new Promise<string[]>((res, rej) => {
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const l = out.split("\n").filter((x) => x !== "");
      if (l.length >= 2 || (l.length === 1 && l[0] === "ready")) res(l);
    });
    proc.on("exit", (code) => rej(new Error(`listener exited ${code}: ${err}`)));
  });
  const ready = lines.then(() => undefined);
  const received = new Promise<{ data: string; peer: string; port: number }>((res, rej) => {
    proc.stdout!.on("data", () => {
      const l = out.split("\n").filter((x) => x !== "");
      if (l[1] !== undefined) res(JSON.parse(l[1]) as { data: string; peer: string; port: number });
    });
    proc.on("exit", (code) => {
      if (code !== 0) rej(new Error(`listener exited ${code}: ${err}`));
    });
  });
  received.catch(() => {});
  return { ready, received, proc };
}

function udp(src: string, dst: string, srcPort: number, dstPort: number, text: string): Uint8Array {
  const l4: L4Repr = {
    protocol: IpProtocol.udp,
    udp: { srcPort, dstPort, payload: new TextEncoder().encode(text) },
  };
  return emitPacket({ ip: ipHeaderFor(parseIp(src), parseIp(dst), l4), l4 });
}

describeTier("e2e", MISSING, "toasim topology (root, netns, TUN)", () => {
  it("creates both namespaces with their devices, addresses, routes and sysctls", () => {
    const t = topology();
    const c = t.clientNs;
    const r = t.serverNs!;
    expect(netnsList()).toEqual(expect.arrayContaining([c, r]));

    const links = JSON.parse(ip("-j", "-n", c, "link", "show", "tun-c")) as {
      mtu: number;
      flags: string[];
    }[];
    expect(links[0]?.mtu).toBe(1500);
    expect(links[0]?.flags).toContain("UP");
    const rlinks = JSON.parse(ip("-j", "-n", r, "link", "show", "tun-r")) as { mtu: number }[];
    expect(rlinks[0]?.mtu).toBe(1500);

    const cAddr = ip("-n", c, "addr", "show", "dev", "lo");
    expect(cAddr).toContain("inet 198.51.100.7/32");
    expect(cAddr).toContain("inet6 2001:db8:c::7/128");
    const rAddr = ip("-n", r, "addr", "show", "dev", "lo");
    expect(rAddr).toContain("inet 192.0.2.10/32");
    expect(rAddr).toContain("inet6 2001:db8:5::10/128");
    // No link-local address on the TUNs (addr_gen_mode 1 before they existed).
    expect(ip("-n", c, "-6", "addr", "show", "dev", "tun-c")).not.toContain("fe80");

    expect(ip("-n", c, "route")).toContain("203.0.113.0/24 dev tun-c scope link src 198.51.100.7");
    expect(ip("-n", c, "-6", "route")).toContain("2001:db8:f::/64 dev tun-c src 2001:db8:c::7");
    expect(ip("-n", c, "route", "show", "table", "local")).toContain(
      "local 198.51.100.0/24 dev lo",
    );
    expect(ip("-n", c, "-6", "route", "show", "table", "local")).toContain(
      "local 2001:db8:c::/64 dev lo",
    );
    expect(ip("-n", r, "route")).toContain("192.0.2.0/24 dev tun-r");
    expect(ip("-n", r, "-6", "route")).toContain("2001:db8:5::/64 dev tun-r");

    // The sysctls were written inside the namespaces, not the host's.
    const read = (ns: string, key: string): string =>
      inNs(ns, ["cat", `/proc/sys/net/${key}`]).trim();
    for (const ns of [c, r]) {
      expect(read(ns, "ipv4/conf/all/rp_filter")).toBe("0");
      expect(read(ns, "ipv6/conf/default/accept_dad")).toBe("0");
      expect(read(ns, "ipv6/conf/default/addr_gen_mode")).toBe("1");
      expect(read(ns, "ipv6/conf/default/router_solicitations")).toBe("0");
    }
    expect(read(c, "ipv6/conf/tun-c/addr_gen_mode")).toBe("1");
  });

  it("delivers client datagrams to the VIP into tun-c (IPv4, IPv6, AnyIP sources)", () => {
    const t = topology();
    send(t.clientNs, "203.0.113.10", 9);
    const p4 = readPacket(t.clientTun, isUdp4);
    expect(p4[0]).toBe(0x45);
    expect(p4[9]).toBe(17);
    expect(bytes(p4, 12, 20)).toEqual([198, 51, 100, 7, 203, 0, 113, 10]);
    expect(u16(p4, 22)).toBe(9);

    send(t.clientNs, "2001:db8:f::10", 9);
    const p6 = readPacket(t.clientTun, isUdp6);
    expect(bytes(p6, 8, 24)).toEqual([...parseIp("2001:db8:c::7")]);
    expect(bytes(p6, 24, 40)).toEqual([...parseIp("2001:db8:f::10")]);

    // Any address of the client ranges can be a client (AnyIP local routes).
    send(t.clientNs, "203.0.113.11", 9, "198.51.100.99");
    expect(bytes(readPacket(t.clientTun, isUdp4), 12, 16)).toEqual([198, 51, 100, 99]);
    send(t.clientNs, "2001:db8:f::11", 9, "2001:db8:c::99");
    expect(bytes(readPacket(t.clientTun, isUdp6), 8, 24)).toEqual([...parseIp("2001:db8:c::99")]);
  });

  it.each([
    ["IPv4", "192.0.2.100", "192.0.2.10"],
    ["IPv6", "2001:db8:5::100", "2001:db8:5::10"],
  ])(
    "delivers %s written into tun-r to an RS socket, and its reply into tun-r",
    async (_, lip, rs) => {
      const t = topology();
      const l = listen(t.serverNs, rs, 8080);
      try {
        await l.ready;
        const pkt = udp(lip, rs, 40001, 8080, "hello-rs");
        expect(t.serverTun.write(pkt, pkt.length)).toBe(true);
        expect(await l.received).toEqual({ data: "hello-rs", peer: lip, port: 40001 });
        const v6 = rs.includes(":");
        const reply = readPacket(t.serverTun, v6 ? isUdp6 : isUdp4);
        const [src, dst, l4] = v6 ? [8, 24, 40] : [12, 16, 20];
        expect(bytes(reply, src, dst)).toEqual([...parseIp(rs)]);
        expect(bytes(reply, dst, dst + (v6 ? 16 : 4))).toEqual([...parseIp(lip)]);
        expect([u16(reply, l4), u16(reply, l4 + 2)]).toEqual([8080, 40001]);
      } finally {
        l.proc.kill("SIGKILL");
      }
    },
  );

  it("rejects a non-IP packet with a TunError naming the device", () => {
    const t = topology();
    const e = (() => {
      try {
        t.serverTun.write(new Uint8Array([0x10, 0, 0, 0]), 4);
      } catch (x) {
        return x;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(TunError);
    expect((e as TunError).code).toBe("WRITE_FAILED");
    expect((e as TunError).message).toBe("write 4 bytes to tun-r: EINVAL (Invalid argument)");
  });

  it("destroy() removes namespaces, devices and fds, and is idempotent", () => {
    const before = tunFdsOpen();
    const t = createTopology({ id: newInstanceId(), plan: ADDRESS_PLAN });
    expect(tunFdsOpen()).toBe(before + 2);
    // A process left in a namespace (an RS the test forgot) is stopped too.
    const argv = nsExecArgs(t.serverNs, ["sleep", "600"]);
    const sleeper = spawn(argv[0]!, argv.slice(1), { stdio: "ignore" });
    const exited = new Promise((res) => sleeper.on("exit", res));
    t.destroy();
    t.destroy();
    expect(netnsList()).not.toContain(t.clientNs);
    expect(netnsList()).not.toContain(t.serverNs);
    expect(tunFdsOpen()).toBe(before);
    expect(ip("-br", "link")).not.toMatch(/tun-[cr]/);
    return exited;
  });

  it("leaves nothing behind when creation fails half-way", () => {
    const before = tunFdsOpen();
    const id = newInstanceId();
    let err: unknown;
    try {
      live.push(
        createTopology({ id, plan: ADDRESS_PLAN, extraRsAddresses: ["192.0.2.11", "999.1.1.1"] }),
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TunError);
    expect((err as TunError).code).toBe("COMMAND_FAILED");
    expect((err as TunError).message).toContain(`ip -n ${serverNsName(id)} addr add 999.1.1.1/32`);
    expect(netnsList().filter((n) => n.startsWith(`toasim-${id}-`))).toEqual([]);
    expect(tunFdsOpen()).toBe(before);
  });

  it("refuses the root namespace as the server side on a host, creating nothing", () => {
    const id = newInstanceId();
    let err: unknown;
    try {
      live.push(createTopology({ id, plan: ADDRESS_PLAN, rsNetns: "root" }));
    } catch (e) {
      err = e;
    }
    expect((err as TunError).code).toBe("ROOT_NETNS_REFUSED");
    expect((err as TunError).message).toMatch(/only inside a toasim vm guest/);
    expect(netnsList().filter((n) => n.startsWith(`toasim-${id}-`))).toEqual([]);
    expect(ip("-br", "link")).not.toMatch(/tun-r/);
  });

  it("refuses an id in use and leaves the running topology alone", () => {
    const t = topology();
    let err: unknown;
    try {
      live.push(createTopology({ id: t.id, plan: ADDRESS_PLAN }));
    } catch (e) {
      err = e;
    }
    expect((err as TunError).code).toBe("TOPOLOGY_EXISTS");
    expect(netnsList()).toEqual(expect.arrayContaining([t.clientNs, t.serverNs]));
  });

  it("cleanupStale() removes what a SIGKILLed owner left (its record too), with processes in it", async () => {
    const id = newInstanceId();
    const script = join(work, `owner-${id}.ts`);
    // The owner is a separate process: only there can SIGKILL skip all cleanup.
    writeFileSync(
      script,
      `import { spawn } from "node:child_process";
import { ADDRESS_PLAN } from ${JSON.stringify(join(ROOT, "src/runtime/defaults.ts"))};
import { claimInstance } from ${JSON.stringify(join(ROOT, "src/runtime/registry.ts"))};
import { createTopology, nsExecArgs } from ${JSON.stringify(join(ROOT, "src/tun/topology.ts"))};
const id = ${JSON.stringify(id)};
claimInstance(id, { pid: process.pid, clientNs: "toasim-" + id + "-c", serverNs: "toasim-" + id + "-r", startedAt: "" });
const t = createTopology({ id, plan: ADDRESS_PLAN });
const argv = nsExecArgs(t.serverNs, ["sleep", "600"]);
const s = spawn(argv[0], argv.slice(1), { stdio: "ignore", detached: true });
s.unref();
setTimeout(() => console.log("ready " + s.pid), 300);
setInterval(() => {}, 1000);
`,
    );
    const owner = spawn(
      process.execPath,
      [join(ROOT, "node_modules/vite-node/vite-node.mjs"), script],
      {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let sleeper = 0;
    try {
      sleeper = await new Promise<number>((res, rej) => {
        let out = "";
        let err = "";
        owner.stdout!.on("data", (d: Buffer) => {
          out += d.toString();
          const m = /ready (\d+)/.exec(out);
          if (m) res(Number(m[1]));
        });
        owner.stderr!.on("data", (d: Buffer) => {
          err += d.toString();
        });
        owner.on("exit", (code) => rej(new Error(`owner exited ${code}: ${err}`)));
      });
      owner.kill("SIGKILL");
      await new Promise((res) => owner.once("exit", res));
      // The TUNs went with the fds; the namespaces and the sleeper did not.
      expect(netnsList()).toEqual(expect.arrayContaining([clientNsName(id), serverNsName(id)]));
      expect(running(sleeper)).toBe(true);

      const { removed, removedStates } = cleanupStale();
      expect(removed).toEqual(expect.arrayContaining([clientNsName(id), serverNsName(id)]));
      expect(removedStates).toContain(id);
      expect(netnsList().filter((n) => n.startsWith(`toasim-${id}-`))).toEqual([]);
      expect(existsSync(join(STATE_DIR, `${id}.json`))).toBe(false);
      expect(running(sleeper)).toBe(false);
    } finally {
      owner.kill("SIGKILL");
      if (sleeper > 0) {
        try {
          process.kill(sleeper, "SIGKILL");
        } catch {
          // gone, as it should be
        }
      }
      deleteNamespace(clientNsName(id));
      deleteNamespace(serverNsName(id));
      rmSync(join(STATE_DIR, `${id}.json`), { force: true });
    }
  });
});

describeTier("e2e", MISSING, "the instance registry (/run/toasim)", () => {
  const ids: string[] = [];
  afterEach(() => {
    for (const id of ids.splice(0)) removeState(id);
  });
  const claim = (id: string, pid: number, serverNs: string | null) => {
    ids.push(id);
    claimInstance(id, {
      pid,
      clientNs: clientNsName(id),
      serverNs,
      startedAt: new Date().toISOString(),
    });
  };

  it("records the owner with its start time, in a file only root reads", () => {
    const id = newInstanceId();
    claim(id, process.pid, serverNsName(id));
    const path = join(STATE_DIR, `${id}.json`);
    const state = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    expect(state).toMatchObject({ pid: process.pid, clientNs: clientNsName(id) });
    expect(state["pidStart"]).toEqual(expect.any(Number));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(STATE_DIR).mode & 0o777).toBe(0o700);
  });

  it("refuses an id a live process owns, and a second instance in the root namespace", () => {
    const id = newInstanceId();
    claim(id, process.pid, serverNsName(id));
    const refused = (f: () => void) => {
      try {
        f();
      } catch (e) {
        return e;
      }
      return null;
    };
    const again = refused(() =>
      claimInstance(id, { pid: process.pid, clientNs: "x", serverNs: "y", startedAt: "" }),
    );
    expect(again).toBeInstanceOf(RuntimeError);
    expect(again).toMatchObject({
      code: "INSTANCE_EXISTS",
      message: `instance ${id} belongs to running process ${process.pid}`,
    });
    const rootId = newInstanceId();
    claim(rootId, process.pid, null);
    const second = refused(() =>
      claimInstance(newInstanceId(), {
        pid: process.pid,
        clientNs: "x",
        serverNs: null,
        startedAt: "",
      }),
    );
    expect(second).toMatchObject({ code: "INSTANCE_EXISTS" });
    expect((second as Error).message).toMatch(
      new RegExp(`^the root namespace is already the server side of instance ${rootId} `),
    );
  });

  it("cleanupStale() removes the records of dead owners and keeps the live ones", async () => {
    const dead = spawn("true");
    const deadPid = await new Promise<number>((res) => dead.on("exit", () => res(dead.pid!)));
    const gone = newInstanceId();
    const mine = newInstanceId();
    claim(gone, deadPid, serverNsName(gone));
    claim(mine, process.pid, serverNsName(mine));
    const { removedStates } = cleanupStale();
    expect(removedStates).toContain(gone);
    expect(removedStates).not.toContain(mine);
    expect(listStates().map((e) => e.id)).toEqual(expect.arrayContaining([mine]));
    expect(existsSync(join(STATE_DIR, `${gone}.json`))).toBe(false);
  });
});
