import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { type ProcessResult, runProcess } from "../../src/run-process.js";
import { commandMissing, describeTier } from "../helpers/tier.js";

// The CI recipe of examples/ci as a user runs it: toasim-ci.sh copied out of
// the packed package into a project of its own where toasim is not installed
// yet, so the script's own `npm install` of the tarball runs too. The server
// is the shipped Node reader; the tests are a small Node client that checks
// the client address the reader saw.

const packed = inject("packed");
const SHIPPED = "examples/ci/toasim-ci.sh";

function missing(): string | null {
  if (packed.missing !== null) return packed.missing;
  if (process.geteuid?.() !== 0) return "not root (the script creates namespaces)";
  if (!existsSync("/dev/net/tun")) return "/dev/net/tun is missing";
  return commandMissing("tshark", ["-v"]);
}

/** The user's test: connect from BIND, exit 0 when the reader saw WANT, 7 when it saw another. */
const CLIENT = `import net from "node:net";
const [bind, want] = process.argv.slice(2);
const sock = net.connect({ host: "203.0.113.10", port: 80, localAddress: bind });
let text = "";
sock.setEncoding("utf8");
sock.on("connect", () => sock.end("hello from the CI recipe\\n"));
sock.on("data", (d) => (text += d));
sock.on("error", (e) => {
  console.error(\`client: \${e.message}\`);
  process.exit(1);
});
sock.on("close", () => {
  const seen = JSON.parse(text.split("\\n")[0]).peer.address;
  console.log(\`the server saw \${seen}, the test wants \${want}\`);
  process.exit(seen === want ? 0 : 7);
});
setTimeout(() => {
  console.error("client: no reply within 10 s");
  process.exit(1);
}, 10_000).unref();
`;

const work = mkdtempSync(join(tmpdir(), "toasim-ci-recipe-"));
const project = join(work, "project");
const script = join(project, "ci/toasim-ci.sh");
const artifacts = join(project, "toasim-artifacts");
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What a run of the script says about the instance it started. */
interface Started {
  readonly id: string;
  readonly rsCgroup: string | null;
}

function started(stderr: string): Started {
  const m = /^toasim-ci: gateway (\w+) ready: (\{.*\})$/m.exec(stderr);
  expect(m, "the script names the instance it started").not.toBeNull();
  const ready = JSON.parse(m![2]!) as { id: string; rsCgroup?: string | null };
  expect(ready.id).toBe(m![1]);
  return { id: ready.id, rsCgroup: ready.rsCgroup ?? null };
}

/** The script in the project, with the user's variables; never rejects. */
async function run(vars: Record<string, string>, cwd = project): Promise<ProcessResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ["SERVER_CMD", "SERVER_READY", "TEST_CMD", "TEST_TIMEOUT", "ARTIFACTS"])
    delete env[k];
  for (const k of Object.keys(env)) if (k.startsWith("TOASIM_")) delete env[k];
  const t0 = Date.now();
  const r = await runProcess(["sh", script], {
    cwd,
    env: {
      ...env,
      npm_config_loglevel: "error",
      npm_config_fund: "false",
      npm_config_audit: "false",
      npm_config_update_notifier: "false",
      TOASIM_PACKAGE: packed.tarball,
      ...vars,
    },
    timeoutMs: 300_000,
    // SIGTERM: the script's trap still stops what it started.
    killSignal: "SIGTERM",
    keepAll: true,
  });
  console.log(`toasim-ci.sh: exit ${r.code} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (r.timedOut) console.log(r.stderr);
  return r;
}

/** What an instance or the script's children could leave behind: none of it may remain. */
function leftovers(s: Started): string[] {
  const left: string[] = [];
  const ns = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  for (const line of ns.split("\n"))
    if (line.startsWith(`toasim-${s.id}-`)) left.push(`namespace ${line.split(" ")[0]}`);
  for (const f of [`/run/toasim/${s.id}.json`, `/run/toasim/${s.id}.sock`])
    if (existsSync(f)) left.push(f);
  if (s.rsCgroup !== null && existsSync(s.rsCgroup)) left.push(`cgroup ${s.rsCgroup}`);
  // Processes: the reader runs from the project, captures and execs name the id.
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (cmdline.includes(project) || cmdline.includes(`\0--id\0${s.id}\0`))
      left.push(`process ${pid}: ${cmdline.replaceAll("\0", " ").trim()}`);
  }
  return left;
}

function tshark(pcap: string, filter: string): string[] {
  return execFileSync("tshark", ["-n", "-r", pcap, "-Y", filter], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  })
    .split("\n")
    .filter((l) => l.trim() !== "");
}

describeTier("package", missing(), "examples/ci/toasim-ci.sh against the packed tarball", () => {
  let server = "";

  beforeAll(() => {
    // A user's project without toasim, with the script copied out of the package.
    expect(packed.files).toContain(SHIPPED);
    mkdirSync(join(project, "ci"), { recursive: true });
    writeFileSync(
      join(project, "package.json"),
      `${JSON.stringify({ name: "ci-user", version: "1.0.0", private: true, type: "module" }, null, 2)}\n`,
    );
    copyFileSync(join(packed.installed, SHIPPED), script);
    writeFileSync(join(project, "client.mjs"), CLIENT);
    server = `node ${join(project, "node_modules/toasim/examples/node/reader-server.mjs")} --tcp 192.0.2.10:8080`;
  });

  it("passing tests: installs toasim from the tarball, exits 0, keeps no artifacts, leaves nothing", async () => {
    const r = await run({
      SERVER_CMD: server,
      TEST_CMD: "node client.mjs 198.51.100.42 198.51.100.42",
    });
    expect(r.stderr).toContain(
      `toasim is not installed here: npm install --no-save ${packed.tarball}`,
    );
    expect(existsSync(join(project, "node_modules/toasim/bin/toasim.js"))).toBe(true);
    expect(r.stdout).toContain("the server saw 198.51.100.42, the test wants 198.51.100.42");
    expect(r.stderr).toContain("toasim-ci: tests passed: no artifacts kept");
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(artifacts) ? readdirSync(artifacts) : []).toEqual([]);
    expect(leftovers(started(r.stderr))).toEqual([]);
  });

  it("failing tests: their exit code, and pcaps, counters and logs as artifacts", async () => {
    const r = await run({
      SERVER_CMD: server,
      TEST_CMD: "node client.mjs 198.51.100.42 198.51.100.43",
    });
    expect(r.stdout).toContain("the server saw 198.51.100.42, the test wants 198.51.100.43");
    expect(r.code, r.stderr).toBe(7);
    expect(r.stderr).toMatch(/^toasim-ci: error: the tests failed \(exit code 7\)$/m);
    expect(r.stderr).toContain("toasim-ci: artifacts kept in ./toasim-artifacts:");
    const s = started(r.stderr);

    const kept = readdirSync(artifacts).sort();
    expect(kept).toEqual(["client.pcap", "gateway.log", "server.log", "server.pcap", "stats.json"]);
    // More than the 24-byte pcap header: the packets of the connection.
    for (const f of ["client.pcap", "server.pcap"])
      expect(statSync(join(artifacts, f)).size, f).toBeGreaterThan(24);
    const toServer = tshark(
      join(artifacts, "server.pcap"),
      "ip.dst==192.0.2.10 && tcp.dstport==8080",
    );
    expect(toServer.length).toBeGreaterThanOrEqual(3);
    const fromClient = tshark(
      join(artifacts, "client.pcap"),
      "ip.src==198.51.100.42 && ip.dst==203.0.113.10 && tcp.dstport==80",
    );
    expect(fromClient.length).toBeGreaterThanOrEqual(3);

    const stats = JSON.parse(readFileSync(join(artifacts, "stats.json"), "utf8")) as {
      id: string;
      connectionsCreated: number;
      packetsToServer: number;
    };
    expect(stats.id).toBe(s.id);
    expect(stats.connectionsCreated).toBeGreaterThanOrEqual(1);
    expect(stats.packetsToServer).toBeGreaterThanOrEqual(3);

    const reports = readFileSync(join(artifacts, "server.log"), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { reader: string; peer: { address: string }; payload: string });
    expect(reports).toHaveLength(1);
    expect(reports[0]!.reader).toBe("node");
    expect(reports[0]!.peer.address).toBe("198.51.100.42");
    expect(reports[0]!.payload).toBe("hello from the CI recipe\n");

    const gateway = readFileSync(join(artifacts, "gateway.log"), "utf8");
    expect(JSON.parse(gateway.split("\n")[0]!)).toMatchObject({ ready: true, id: s.id });

    expect(leftovers(s)).toEqual([]);
    rmSync(artifacts, { recursive: true, force: true });
  });

  it("no TEST_CMD: usage, exit 2, nothing installed or started", async () => {
    const empty = join(work, "unconfigured");
    mkdirSync(empty);
    writeFileSync(join(empty, "package.json"), '{"name":"u","version":"1.0.0","private":true}\n');
    const t0 = Date.now();
    const r = await run({ SERVER_CMD: server }, empty);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^usage: /m);
    expect(r.stderr).toMatch(/^toasim-ci: error: TEST_CMD is not set$/m);
    expect(r.stderr).not.toMatch(/^toasim-ci: (toasim|not root|gateway)/m);
    expect(r.stdout).toBe("");
    expect(readdirSync(empty)).toEqual(["package.json"]);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
