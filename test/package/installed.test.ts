import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, expect, inject, it } from "vitest";
import { runProcess } from "../../src/run-process.js";
import { describeTier } from "../helpers/tier.js";

// The package as its users meet it: packed, installed into an empty project
// outside the checkout (setup.ts), and run from there with npx, as root.

const packed = inject("packed");
const ROOT = resolve(import.meta.dirname, "../..");
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }
).version;

function missing(): string | null {
  if (packed.missing !== null) return packed.missing;
  if (process.geteuid?.() !== 0) return "not root (the installed package runs namespaces and VMs)";
  if (!existsSync("/dev/net/tun")) return "/dev/net/tun is missing";
  return null;
}

/** `npx toasim ARGS` in the user's project; never rejects. */
async function npx(args: readonly string[], timeoutMs: number, env: NodeJS.ProcessEnv = {}) {
  return runProcess(["npx", "--no-install", "toasim", ...args], {
    cwd: packed.project,
    env: { ...process.env, ...env },
    timeoutMs,
    keepAll: true,
  });
}

const scratch = mkdtempSync(join(tmpdir(), "toasim-package-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describeTier("package", missing(), "the npm package, installed into an empty project", () => {
  it("holds what toasim reads at run time and nothing it does not", () => {
    const files = packed.files;
    console.log(
      `package: ${files.length} files, tarball ${packed.size} B, unpacked ${packed.unpackedSize} B`,
    );
    for (const f of [
      "bin/toasim.js",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/sockopt/index.js",
      "dist/runtime/worker.js",
      "src/decoder/bpf/toasim.bpf.c",
      "src/decoder/bpf/decoder.h",
      "kmod/Kbuild",
      "kmod/Makefile",
      "kmod/dkms.conf",
      "kmod/include/uapi/toasim.h",
      "scenarios/scenario.schema.json",
      "scenarios/handshake-ack-lost.json",
      "examples/node/reader-server.mjs",
      "examples/python/reader_server.py",
      "examples/c/reader-server.c",
      "examples/c/Makefile",
      "docs/dialects.md",
      "README.md",
      "LICENSE",
      "package.json",
    ])
      expect(files, f).toContain(f);
    const unwanted = files.filter(
      (f) =>
        /^(test|bench|build|out)\//.test(f) ||
        f.startsWith("kmod/tests/") ||
        /\.(map|ko|o|pcap|tgz)$/.test(f) ||
        /\.test\.[jt]s$/.test(f) ||
        (f.startsWith("src/") && !f.startsWith("src/decoder/bpf/")),
    );
    expect(unwanted).toEqual([]);
  });

  it("says its version, the one in package.json", async () => {
    const r = await npx(["--version"], 30_000);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
  });

  it("toasim doctor finds everything this machine has installed", async () => {
    const r = await npx(["doctor", "--json"], 30_000);
    const report = JSON.parse(r.stdout) as { ok: boolean; packages: string[] };
    expect(report.packages).toEqual([]);
    expect(r.code).toBe(report.ok ? 0 : 1);
  });

  it("toasim examples points into the installed package, at files that are there", async () => {
    const r = await npx(["examples", "--json"], 30_000);
    expect(r.code).toBe(0);
    const ex = JSON.parse(r.stdout) as { dir: string; readers: { path: string }[] };
    expect(ex.dir).toBe(join(packed.installed, "examples"));
    for (const reader of ex.readers) expect(existsSync(reader.path), reader.path).toBe(true);
  });

  it("toasim demo --json: every row passes through the eBPF decoder, compiled on first use into the cache", async () => {
    const cache = join(scratch, "cache");
    const r = await npx(["demo", "--json"], 180_000, { TOASIM_CACHE: cache });
    expect(r.stderr).not.toMatch(/ENOENT|at .*\.js:\d+/);
    const out = JSON.parse(r.stdout) as {
      ok: boolean;
      decoder: string;
      results: { pass: boolean }[];
    };
    expect(out.decoder).toBe("ebpf");
    expect(out.results.length).toBeGreaterThanOrEqual(12);
    expect(out.results.every((x) => x.pass)).toBe(true);
    expect(r.code).toBe(0);
    const built = readdirSync(join(cache, "bpf")).map((d) => join(cache, "bpf", d, "toasim.bpf.o"));
    expect(built.some((o) => existsSync(o))).toBe(true);
  });

  it("toasim scenario run handshake-ack-lost finds the shipped scenario by name and passes", async () => {
    const r = await npx(
      ["scenario", "run", "handshake-ack-lost", "--out", join(scratch, "scenarios")],
      300_000,
    );
    expect(r.stdout).toContain("PASS: 2/2 scenario runs passed");
    expect(r.code).toBe(0);
    expect(existsSync(join(scratch, "scenarios/handshake-ack-lost-bug/server.pcap"))).toBe(true);
  });

  it("toasim vm --build toasim builds the shipped module, which then serves its counters", async () => {
    const r = await npx(
      ["vm", "--kernel", "6.1", "--build", "toasim", "--", "cat", "/proc/net/toa_stats"],
      900_000,
    );
    expect(r.stderr).toContain(`building ${join(packed.installed, "kmod")}`);
    expect(r.stdout).toMatch(/^syn_recv_sock_toa\s+:0/m);
    expect(r.stdout).toMatch(/^getname_toa_ok\s+:/m);
    expect(r.code).toBe(0);
  });

  it("a 20-line ESM script drives an instance through the API and leaves no namespace", async () => {
    const script = join(packed.project, "check.mjs");
    writeFileSync(script, ESM_SCRIPT);
    const lines = ESM_SCRIPT.trim().split("\n").length;
    expect(lines).toBeLessThanOrEqual(20);
    const r = await runProcess([process.execPath, script], {
      cwd: packed.project,
      timeoutMs: 120_000,
      keepAll: true,
    });
    expect(r.stderr).toBe("");
    const out = JSON.parse(r.stdout) as { seen: string; left: string[] };
    expect(out.seen).toBe("198.51.100.42");
    expect(out.left).toEqual([]);
    expect(r.code).toBe(0);
  });

  it("its type declarations compile a TypeScript user of the API under strict settings", () => {
    const file = join(packed.project, "use.ts");
    writeFileSync(file, TS_USER);
    const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
    const args = [
      tsc,
      "--noEmit",
      "--strict",
      "--target",
      "ES2022",
      "--module",
      "NodeNext",
      "--moduleResolution",
      "NodeNext",
      "--lib",
      "ES2022,ESNext.Disposable",
      "--types",
      "node",
      "--typeRoots",
      join(ROOT, "node_modules/@types"),
      "--skipLibCheck",
      "false",
      file,
    ];
    let out = "";
    try {
      execFileSync(process.execPath, args, { cwd: packed.project, encoding: "utf8" });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? e);
    }
    expect(out).toBe("");
  });
});

/** What the issue asks a user to be able to write: no more than 20 lines. */
const ESM_SCRIPT = `import { execFileSync } from "node:child_process";
import { up } from "toasim";
const gw = await up({ profile: "dpvs" });
let seen;
try {
  const server = gw.spawn("rs", ["node", "-e", "require('net').createServer((s) => s.end(s.remoteAddress)).listen(8080, '192.0.2.10', () => console.log('listening'))"]);
  await server.waitForOutput("listening");
  const client = "require('net').connect({ host: '203.0.113.10', port: 80, localAddress: '198.51.100.42' }).pipe(process.stdout)";
  const r = await gw.exec("client", ["node", "-e", client], { timeoutMs: 20000 });
  seen = r.stdout.trim();
} finally {
  await gw.stop();
}
const left = execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
  .split("\\n")
  .filter((l) => l.startsWith(\`toasim-\${gw.id}-\`));
console.log(JSON.stringify({ seen, left }));
process.exit(seen === "198.51.100.42" && left.length === 0 ? 0 : 1);
`;

/** A TypeScript test file of a user: the API's types as an editor sees them. */
const TS_USER = `import { up, ToasimError, type ExecResult, type UpOptions, type GatewayStats } from "toasim";
import { toaCtl, type SocketLike } from "toasim/sockopt";

const options: UpOptions = {
  profile: "tencent",
  settings: { mssClamp: false, carry: ["handshake-ack"] },
  services: ["tcp:203.0.113.10:80=192.0.2.10:8080", { proto: "udp", vip: "203.0.113.10:53", servers: ["192.0.2.10:5353"] }],
  faults: { rules: ["to-server:handshake-ack:drop,count=1", { direction: "to-client", class: "syn-ack", action: "delay", ms: 100 }] },
  decoder: { mode: "ebpf", trusted: ["192.0.2.0/24"] },
};

export async function check(socket: SocketLike): Promise<number> {
  await using gw = await up(options);
  const r: ExecResult = await gw.exec("client", ["true"]);
  const stats: GatewayStats = await gw.stats();
  const cap = await gw.capture({ side: "server", path: "server.pcap", count: 10 });
  await gw.setFaults(null);
  const packets: number = await cap.stop();
  try {
    toaCtl(socket);
  } catch (e) {
    if (e instanceof ToasimError && e.code === "BAD_OPTION") return -1;
  }
  return (r.code ?? 0) + stats.connectionsCreated + packets;
}
`;
