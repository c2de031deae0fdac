import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import dgram from "node:dgram";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decodeSockaddr,
  decodeToaCtl,
  localName,
  peerName,
  type SockAddr,
  SockoptError,
  toaCtl,
  toaLookup,
  ttmPeer,
  uoaLookup,
} from "../../src/sockopt/index.js";
import { commandMissing, describeTier } from "../helpers/tier.js";
import { thrown } from "./helpers/errors.js";

/**
 * The three reader servers (Node, C, Python) on loopback, on a host with no
 * TOA/UOA decoder: every lookup must come back as the kernel's real answer
 * (ENOPROTOOPT) in the report, the peer must be the client's real address,
 * and the three must print the same line byte for byte, "reader" aside.
 * The kernel tier runs these same servers behind the module for the ok-paths.
 */

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const C_SERVER = join(ROOT, "examples/c/reader-server");
const SERVERS = {
  node: ["node", join(ROOT, "examples/node/reader-server.mjs")],
  c: [C_SERVER],
  python: ["python3", join(ROOT, "examples/python/reader_server.py")],
} as const;
type Reader = keyof typeof SERVERS;

const missing = commandMissing("gcc") ?? commandMissing("make") ?? commandMissing("python3");
const TIER = "unit (reader servers need gcc, make, python3)";

const dir = mkdtempSync(join(tmpdir(), "toasim-readers-"));
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

const NOPROTO = { ok: false, errno: 92, error: "ENOPROTOOPT" };

/**
 * The Node server imports dist/: build it when src/sockopt is newer. tsc
 * emits even when some other file of the project has a type error; this
 * layer's output being fresh is what counts here.
 */
function ensureBuilt(): void {
  const built = join(ROOT, "dist/sockopt/index.js");
  const srcDir = join(ROOT, "src/sockopt");
  const fresh = (): boolean => {
    const newest = Math.max(...readdirSync(srcDir).map((f) => statSync(join(srcDir, f)).mtimeMs));
    return existsSync(built) && statSync(built).mtimeMs >= newest;
  };
  if (fresh()) return;
  const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
  try {
    execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], {
      cwd: ROOT,
      stdio: "pipe",
    });
  } catch (e) {
    if (!fresh()) throw e;
  }
}

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
  listeners: { proto: "tcp" | "udp"; family: 4 | 6; address: string; port: number }[];
}

async function start(
  reader: Reader,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Running> {
  const ready = join(dir, `ready-${reader}-${Date.now()}`);
  const [cmd, ...pre] = SERVERS[reader];
  const child = spawn(cmd, [...pre, ...args, "--ready", ready], {
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
  children.add(child);
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString("utf8");
  });
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString("utf8");
  });
  const exit = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  let exited: number | null | undefined;
  void exit.then((c) => {
    exited = c;
  });
  const deadline = Date.now() + 15_000;
  while (!existsSync(ready)) {
    if (exited !== undefined) throw new Error(`${reader} server exited (${exited}): ${err}`);
    if (Date.now() > deadline) throw new Error(`${reader} server not ready after 15 s: ${err}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const listeners = readFileSync(ready, "utf8")
    .trim()
    .split("\n")
    .map((line) => {
      const m = /^(tcp|udp) (?:\[([^\]]+)\]|([0-9.]+)):(\d+)$/.exec(line);
      if (m === null) throw new Error(`${reader}: bad ready line ${JSON.stringify(line)}`);
      return {
        proto: m[1] as "tcp" | "udp",
        family: (m[2] === undefined ? 4 : 6) as 4 | 6,
        address: m[2] ?? m[3] ?? "",
        port: Number(m[4]),
      };
    });
  return { child, stdout: () => out, stderr: () => err, exit, listeners };
}

/** One TCP exchange: connect, send (or only half-close), read the report until EOF. */
function tcpProbe(
  host: string,
  port: number,
  payload: Buffer | null,
): Promise<{ reply: string; client: { address: string; port: number } }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const chunks: Buffer[] = [];
    let client = { address: "", port: 0 };
    sock.on("connect", () => {
      client = { address: sock.localAddress ?? "", port: sock.localPort ?? 0 };
      if (payload === null) sock.end();
      else sock.write(payload);
    });
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.on("end", () => {
      sock.end();
      resolve({ reply: Buffer.concat(chunks).toString("utf8"), client });
    });
    sock.on("error", reject);
    sock.setTimeout(10_000, () => reject(new Error(`no report from ${host}:${port}`)));
  });
}

function udpProbe(
  family: 4 | 6,
  host: string,
  port: number,
  payload: Buffer,
): Promise<{ reply: string; client: { address: string; port: number } }> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(family === 4 ? "udp4" : "udp6");
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error(`no UDP report from ${host}:${port}`));
    }, 10_000);
    sock.on("error", reject);
    sock.bind(0, family === 4 ? "127.0.0.1" : "::1", () => {
      const a = sock.address();
      sock.on("message", (msg) => {
        clearTimeout(timer);
        sock.close();
        resolve({ reply: msg.toString("utf8"), client: { address: a.address, port: a.port } });
      });
      sock.send(payload, port, host);
    });
  });
}

// Quotes, a backslash, an invalid byte, control characters, multibyte text,
// a truncated sequence: every JSON and UTF-8 rule the three must share.
const TRICKY = Buffer.concat([
  Buffer.from('GET /x "q"\\'),
  Buffer.from([0xff]),
  Buffer.from("\n\t\u0001é€😀"),
  Buffer.from([0xe2, 0x82]),
  Buffer.from(" end"),
]);
const TRICKY_TEXT = 'GET /x "q"\\\uFFFD\n\t\u0001é€😀\uFFFD end';
// 65 bytes: the 64-byte cut falls inside the "é".
const LONG = Buffer.from(`${"a".repeat(63)}é`);
const LONG_TEXT = `${"a".repeat(63)}\uFFFD`;

function addr(family: 4 | 6, address: string, port: number): SockAddr {
  return { family, address, port };
}

function tcpLine(reader: Reader, local: SockAddr, peer: SockAddr, payload: string): string {
  return JSON.stringify({
    reader,
    proto: "tcp",
    local,
    peer,
    toaCtl: NOPROTO,
    toaLookup: NOPROTO,
    ttm: NOPROTO,
    payload,
  });
}

function udpLine(reader: Reader, local: SockAddr, peer: SockAddr, payload: string): string {
  return JSON.stringify({
    reader,
    proto: "udp",
    local,
    peer,
    uoaNoa: NOPROTO,
    uoaDpvs: NOPROTO,
    payload,
  });
}

const LISTEN = [
  ["--tcp", "127.0.0.1:0"],
  ["--tcp", "[::1]:0"],
  ["--tcp", "[::ffff:127.0.0.1]:0"],
  ["--udp", "127.0.0.1:0"],
  ["--udp", "[::1]:0"],
  ["--udp", "[::ffff:127.0.0.1]:0"],
].flat();

describeTier(TIER, missing, "reader servers (node, c, python) on loopback", () => {
  beforeAll(() => {
    execFileSync("make", ["-s", "-C", join(ROOT, "examples/c")], { stdio: "pipe" });
    ensureBuilt();
  }, 180_000);

  const lines: Record<string, string[]> = {};

  for (const reader of Object.keys(SERVERS) as Reader[]) {
    it(`${reader}: reports the real peer and ENOPROTOOPT for every lookup, then exits after --count`, async () => {
      const run = await start(reader, [...LISTEN, "--count", "7"]);
      // TCP first, then UDP, each in command-line order.
      expect(run.listeners.map((l) => `${l.proto} ${l.address}`)).toEqual([
        "tcp 127.0.0.1",
        "tcp ::1",
        "tcp ::ffff:127.0.0.1",
        "udp 127.0.0.1",
        "udp ::1",
        "udp ::ffff:127.0.0.1",
      ]);
      const [t4, t6, tm, u4, u6, um] = run.listeners;
      if (!t4 || !t6 || !tm || !u4 || !u6 || !um) throw new Error("listeners missing");
      const got: string[] = [];
      const want: string[] = [];

      let r = await tcpProbe("127.0.0.1", t4.port, TRICKY);
      got.push(r.reply);
      want.push(
        tcpLine(
          reader,
          addr(4, "127.0.0.1", t4.port),
          addr(4, "127.0.0.1", r.client.port),
          TRICKY_TEXT,
        ),
      );

      r = await tcpProbe("::1", t6.port, LONG);
      got.push(r.reply);
      want.push(tcpLine(reader, addr(6, "::1", t6.port), addr(6, "::1", r.client.port), LONG_TEXT));

      // A v4 client of a v6 socket is v4-mapped, as the kernel reports it.
      r = await tcpProbe("127.0.0.1", tm.port, Buffer.from("mapped"));
      got.push(r.reply);
      want.push(
        tcpLine(
          reader,
          addr(6, "::ffff:127.0.0.1", tm.port),
          addr(6, "::ffff:127.0.0.1", r.client.port),
          "mapped",
        ),
      );

      // No data, only a FIN: the report comes anyway, with an empty payload.
      r = await tcpProbe("127.0.0.1", t4.port, null);
      got.push(r.reply);
      want.push(
        tcpLine(reader, addr(4, "127.0.0.1", t4.port), addr(4, "127.0.0.1", r.client.port), ""),
      );

      r = await udpProbe(4, "127.0.0.1", u4.port, TRICKY);
      got.push(r.reply);
      want.push(
        udpLine(
          reader,
          addr(4, "127.0.0.1", u4.port),
          addr(4, "127.0.0.1", r.client.port),
          TRICKY_TEXT,
        ),
      );

      r = await udpProbe(6, "::1", u6.port, Buffer.from("dgram ☃"));
      got.push(r.reply);
      want.push(udpLine(reader, addr(6, "::1", u6.port), addr(6, "::1", r.client.port), "dgram ☃"));

      r = await udpProbe(4, "127.0.0.1", um.port, LONG);
      got.push(r.reply);
      want.push(
        udpLine(
          reader,
          addr(6, "::ffff:127.0.0.1", um.port),
          addr(6, "::ffff:127.0.0.1", r.client.port),
          LONG_TEXT,
        ),
      );

      expect(got).toEqual(want.map((w) => `${w}\n`));
      expect(await run.exit).toBe(0);
      expect(run.stdout()).toBe(got.join(""));
      expect(run.stderr()).toBe("");
      lines[reader] = got;
    });
  }

  it("the three print the same payload text for random bytes (UTF-8 repair and JSON escapes)", async () => {
    // Bytes weighted towards UTF-8 lead, continuation and boundary values.
    const edge = [
      0x00, 0x0a, 0x22, 0x5c, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2,
    ];
    edge.push(0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff);
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const payloads = Array.from({ length: 100 }, () =>
      Buffer.from(
        Array.from({ length: 1 + rnd(80) }, () =>
          rnd(5) === 0 ? rnd(256) : (edge[rnd(edge.length)] ?? 0),
        ),
      ),
    );
    const texts: Record<string, string[]> = {};
    for (const reader of Object.keys(SERVERS) as Reader[]) {
      const run = await start(reader, ["--udp", "127.0.0.1:0", "--count", String(payloads.length)]);
      const port = run.listeners[0]?.port ?? 0;
      const got: string[] = [];
      for (const p of payloads) {
        const r = await udpProbe(4, "127.0.0.1", port, p);
        // The raw text after "payload": escapes and all, not the parsed string.
        got.push(r.reply.slice(r.reply.indexOf('"payload":')));
      }
      expect(await run.exit).toBe(0);
      texts[reader] = got;
    }
    const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    const want = payloads.map(
      (p) => `"payload":${JSON.stringify(decoder.decode(p.subarray(0, 64)))}}\n`,
    );
    expect(texts["node"]).toEqual(want);
    expect(texts["c"]).toEqual(want);
    expect(texts["python"]).toEqual(want);
  });

  it("the three printed the same lines, the reader's name and the ports aside", () => {
    const norm = (l: string): string =>
      l.replace(/"reader":"\w+"/, '"reader":"?"').replace(/"port":\d+/g, '"port":0');
    const readers = Object.keys(SERVERS) as Reader[];
    for (const reader of readers) expect(lines[reader]?.length).toBe(7);
    const [first, ...rest] = readers.map((r) => (lines[r] ?? []).map(norm));
    for (const other of rest) expect(other).toEqual(first);
  });

  for (const reader of Object.keys(SERVERS) as Reader[]) {
    it(`${reader}: rejects bad command lines with exit 2 and a busy port with exit 1`, () => {
      const [cmd, ...pre] = SERVERS[reader];
      const run = (...args: string[]) =>
        spawnSync(cmd, [...pre, ...args], { encoding: "utf8", timeout: 20_000 });
      for (const bad of [
        [],
        ["--tcp", "127.0.0.1"],
        ["--tcp", "localhost:80"],
        ["--udp", "[::1:80"],
        ["--udp", "127.0.0.1:65536"],
        ["--tcp", "127.0.0.1:0", "--count", "0"],
        ["--tcp", "127.0.0.1:0", "--frobnicate"],
        ["--tcp"],
      ]) {
        const r = run(...bad);
        expect({ args: bad, status: r.status }).toEqual({ args: bad, status: 2 });
        expect(r.stderr).toMatch(/^reader-server: .*\nusage: reader-server/);
      }
      const blocker = net.createServer();
      return new Promise<void>((resolve, reject) => {
        blocker.listen(0, "127.0.0.1", () => {
          const port = (blocker.address() as net.AddressInfo).port;
          const r = run("--tcp", `127.0.0.1:${port}`);
          blocker.close();
          try {
            expect(r.status).toBe(1);
            expect(r.stderr).toMatch(/^reader-server: /);
            resolve();
          } catch (e) {
            reject(e);
          }
        });
      });
    });
  }
});

describe("the Node readers on real sockets (no decoder loaded)", () => {
  const caught = (fn: () => unknown): SockoptError => thrown(SockoptError, fn);

  /** An accepted server-side socket and its client, on `host`. */
  function pair(
    host: string,
  ): Promise<{ server: net.Socket; client: net.Socket; close: () => void }> {
    return new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.on("error", reject);
      srv.listen(0, host, () => {
        const client = net.connect((srv.address() as net.AddressInfo).port, host);
        client.on("error", () => {});
        srv.once("connection", (server) => {
          server.on("error", () => {});
          const go = () =>
            resolve({
              server,
              client,
              close: () => {
                client.destroy();
                server.destroy();
                srv.close();
              },
            });
          if (client.localPort !== undefined) go();
          else client.once("connect", go);
        });
      });
    });
  }

  it("peerName and localName give the real loopback addresses, v4 and v6", async () => {
    for (const [host, family] of [
      ["127.0.0.1", 4],
      ["::1", 6],
    ] as const) {
      const p = await pair(host);
      try {
        expect(peerName(p.server)).toEqual({ family, address: host, port: p.client.localPort });
        expect(localName(p.server)).toEqual({ family, address: host, port: p.server.localPort });
        expect(peerName(p.client)).toEqual(localName(p.server));
      } finally {
        p.close();
      }
    }
  });

  it("every TCP lookup fails with ENOPROTOOPT, carried as errno, naming the optname", async () => {
    const p = await pair("127.0.0.1");
    try {
      for (const [fn, optname] of [
        [toaCtl, 2049],
        [toaLookup, 4096],
        [ttmPeer, 1345],
      ] as const) {
        const e = caught(() => fn(p.server));
        expect(e.code).toBe("SYSCALL_FAILED");
        expect(e.errno).toBe(92);
        expect(e.errnoName).toBe("ENOPROTOOPT");
        expect(e.message).toContain(`getsockopt(IPPROTO_IP, ${optname})`);
      }
    } finally {
      p.close();
    }
  });

  it("UOA lookups on a bound UDP socket fail with ENOPROTOOPT in both forms", async () => {
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
    try {
      const dest = localName(sock);
      expect(dest).toEqual({ family: 4, address: "127.0.0.1", port: sock.address().port });
      const source = { family: 4 as const, address: "127.0.0.1", port: 9 };
      for (const form of ["noa", "dpvs"] as const) {
        const e = caught(() => uoaLookup(sock, { source, dest }, form));
        expect([e.code, e.errno, e.errnoName]).toEqual(["SYSCALL_FAILED", 92, "ENOPROTOOPT"]);
        expect(e.message).toContain(`with ${form === "noa" ? 56 : 58} bytes`);
      }
      // Input is checked before any system call.
      expect(caught(() => uoaLookup(sock, { source, dest }, "x" as "noa")).code).toBe(
        "INVALID_ARGUMENT",
      );
      const bad = { ...source, address: "127.0.0.256" };
      expect(caught(() => uoaLookup(sock, { source: bad, dest }, "noa")).code).toBe(
        "INVALID_ARGUMENT",
      );
    } finally {
      sock.close();
    }
  });

  it("sockets without a file descriptor give NO_FD, not a crash", async () => {
    const p = await pair("127.0.0.1");
    p.close();
    const e = caught(() => toaCtl(p.server));
    expect(e.code).toBe("NO_FD");
    expect(e.errno).toBeNull();
    expect(e.message).toMatch(/closed/);
    expect(caught(() => peerName(p.server)).code).toBe("NO_FD");

    const unbound = dgram.createSocket("udp6");
    expect(caught(() => localName(unbound)).message).toMatch(/not bound yet/);
    await new Promise<void>((r) => unbound.bind(0, "::1", r));
    expect(localName(unbound).family).toBe(6);
    await new Promise<void>((r) => unbound.close(r));
    expect(caught(() => localName(unbound)).code).toBe("NO_FD");
  });

  it("raw fds: a file is ENOTSOCK, a Unix socket has no IP family, a bad number is refused", async () => {
    const fd = openSync("/dev/null", "r");
    try {
      expect(caught(() => toaCtl(fd)).errnoName).toBe("ENOTSOCK");
      expect(caught(() => peerName(fd)).errno).toBe(88);
    } finally {
      closeSync(fd);
    }
    expect(caught(() => toaCtl(-1)).code).toBe("INVALID_ARGUMENT");
    expect(caught(() => toaCtl(1.5)).code).toBe("INVALID_ARGUMENT");

    const path = join(dir, "unix.sock");
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(path, r));
    const client = net.connect(path);
    const server = await new Promise<net.Socket>((r) => srv.once("connection", r));
    try {
      const e = caught(() => peerName(server));
      expect([e.code, e.got]).toEqual(["BAD_FAMILY", 1]);
      expect(caught(() => toaCtl(server)).errnoName).toBe("EOPNOTSUPP");
    } finally {
      client.destroy();
      server.destroy();
      srv.close();
    }
  });

  it("decoders reject short buffers and foreign families", () => {
    expect(caught(() => decodeToaCtl(new Uint8Array(12))).code).toBe("SHORT_BUFFER");
    expect(caught(() => decodeSockaddr(new Uint8Array(1))).got).toBe(1);
    const sin6 = new Uint8Array(27);
    new Uint16Array(sin6.buffer, 0, 1)[0] = 10; // sa_family is host order
    expect([
      caught(() => decodeSockaddr(sin6)).code,
      caught(() => decodeSockaddr(sin6)).got,
    ]).toEqual(["SHORT_BUFFER", 27]);
  });
});

// The stand-in decoder, test/fixtures/fake-decoder/fake-decoder.c, says
// what it answers and why.
describeTier(TIER, missing, "reader servers with a stand-in decoder (LD_PRELOAD)", () => {
  let shim = "";
  beforeAll(() => {
    execFileSync("make", ["-s", "-C", join(ROOT, "examples/c")], { stdio: "pipe" });
    ensureBuilt();
    shim = join(dir, "fake-decoder.so");
    execFileSync(
      "gcc",
      [
        ...["-Wall", "-Wextra", "-Werror", "-O2", "-shared", "-fPIC"],
        ...["-I", join(ROOT, "kmod/include/uapi")],
        ...["-o", shim, join(ROOT, "test/fixtures/fake-decoder/fake-decoder.c"), "-ldl"],
      ],
      { stdio: "pipe" },
    );
  }, 180_000);

  const ok = (family: 4 | 6, address: string, port: number) => ({
    ok: true,
    family,
    address,
    port,
  });

  for (const reader of Object.keys(SERVERS) as Reader[]) {
    it(`${reader}: decodes every reply, ok or odd, the same way`, async () => {
      const args = ["--tcp", "127.0.0.1:0", "--tcp", "[::1]:0", "--udp", "127.0.0.1:0"];
      args.push("--udp", "[::1]:0", "--udp", "[::ffff:127.0.0.1]:0", "--count", "5");
      const run = await start(reader, args, { ...process.env, LD_PRELOAD: shim });
      const [t4, t6, u4, u6, um] = run.listeners;
      if (!t4 || !t6 || !u4 || !u6 || !um) throw new Error("listeners missing");
      const got: unknown[] = [];
      const want: unknown[] = [];
      const tcp = (local: SockAddr, peer: SockAddr, rest: object) => ({
        reader,
        proto: "tcp",
        local,
        peer,
        ...rest,
        payload: "hi",
      });
      const udp = (local: SockAddr, peer: SockAddr, rest: object) => ({
        reader,
        proto: "udp",
        local,
        peer,
        ...rest,
        payload: "hi",
      });

      let r = await tcpProbe("127.0.0.1", t4.port, Buffer.from("hi"));
      got.push(r.reply);
      want.push(
        tcp(addr(4, "127.0.0.1", t4.port), addr(4, "127.0.0.1", r.client.port), {
          toaCtl: { ...ok(4, "198.51.100.7", 40000), toaSet: true },
          toaLookup: ok(6, "2001:db8:c::9", 0x1234),
          ttm: ok(6, "::ffff:198.51.100.1", 1),
        }),
      );
      r = await tcpProbe("::1", t6.port, Buffer.from("hi"));
      got.push(r.reply);
      want.push(
        tcp(addr(6, "::1", t6.port), addr(6, "::1", r.client.port), {
          toaCtl: { ...ok(6, "2001:db8:c::7", 443), toaSet: false },
          toaLookup: { ok: false, errno: 22, error: "EINVAL" },
          ttm: { ok: false, error: "SHORT_BUFFER", length: 12 },
        }),
      );
      r = await udpProbe(4, "127.0.0.1", u4.port, Buffer.from("hi"));
      got.push(r.reply);
      want.push(
        udp(addr(4, "127.0.0.1", u4.port), addr(4, "127.0.0.1", r.client.port), {
          uoaNoa: ok(6, "2001:db8:c::42", r.client.port),
          uoaDpvs: ok(4, "198.51.100.9", r.client.port),
        }),
      );
      r = await udpProbe(6, "::1", u6.port, Buffer.from("hi"));
      got.push(r.reply);
      want.push(
        udp(addr(6, "::1", u6.port), addr(6, "::1", r.client.port), {
          uoaNoa: ok(6, "2001:db8:c::42", r.client.port),
          uoaDpvs: { ok: false, error: "BAD_FAMILY", af: 99 },
        }),
      );
      r = await udpProbe(4, "127.0.0.1", um.port, Buffer.from("hi"));
      got.push(r.reply);
      want.push(
        // A v6 socket, so the stand-in answers the DPVS form with af 99.
        udp(addr(6, "::ffff:127.0.0.1", um.port), addr(6, "::ffff:127.0.0.1", r.client.port), {
          uoaNoa: ok(6, "2001:db8:c::42", r.client.port),
          uoaDpvs: { ok: false, error: "BAD_FAMILY", af: 99 },
        }),
      );
      expect(got).toEqual(want.map((w) => `${JSON.stringify(w)}\n`));
      expect(await run.exit).toBe(0);
      expect(run.stderr()).toBe("");
    });
  }
});
