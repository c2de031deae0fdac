import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { DecoderError } from "../decoder/errors.js";
import type { Attempt, Outcome } from "../demo/client.js";
import type { Seen } from "../demo/server.js";
import { formatEndpoint, formatIp, parseIp } from "../option-codec/address.js";
import { type RunningInstance, startInstance } from "../runtime/instance.js";
import { TunError } from "../tun/errors.js";
import { nsExecArgs } from "../tun/topology.js";
import {
  addDecoderOptions,
  type DecoderFlags,
  moduleDecoder,
  resolveDecoder,
} from "./decoder-flags.js";
import { CliError } from "./errors.js";
import type { Io } from "./main.js";
import { addProfileOptions, type ProfileFlags, profileList } from "./profile-flags.js";
import { buildConfig } from "./up.js";

interface DemoFlags extends ProfileFlags, DecoderFlags {
  json?: boolean;
}

const SOURCES = {
  4: ["198.51.100.7", "198.51.100.42"],
  6: ["2001:db8:c::7", "2001:db8:c::42"],
} as const;

export function registerDemo(program: Command, io: Io): void {
  const cmd = program.command("demo");
  addProfileOptions(cmd);
  addDecoderOptions(cmd);
  cmd
    .summary("set up, run real clients from several addresses, show what the server saw, tear down")
    .description(
      "One command end to end: starts a gateway instance, a server in the server namespace\n" +
        "that reports the client as an application learns it (a PROXY header, else the\n" +
        "decoder's getsockopt answer 2049/2048, else getpeername / recvfrom), runs TCP and\n" +
        "UDP clients from several IPv4 and IPv6 addresses (NAT64 included) through the VIPs,\n" +
        "prints client -> seen -> PASS/FAIL, and removes everything. A row passes when\n" +
        "the server saw the real client. Without a TOA/UOA decoder in the server's kernel,\n" +
        "TOA and UOA rows fail: the server sees the gateway's local address, which is\n" +
        "exactly what the decoder is for.\n\n" +
        `Profiles:\n${profileList()}`,
    )
    .option("--json", "print {ok, decoder, results: [...]} instead of the table")
    .addHelpText("after", "\nExamples:\n  toasim demo\n  toasim demo --profile proxy-v2 --json")
    .action(async (f: DemoFlags) => {
      process.exitCode = await demo(f, io);
    });
}

function progress(io: Io, json: boolean | undefined, s: string): void {
  if (!json && process.stderr.isTTY) io.err(`${s}\n`);
}

/**
 * Runs node with `args` in the namespace; in `cgroup` first when given
 * (before `ip netns exec`, which remounts /sys where the cgroup files are).
 */
function runInNs(ns: string, args: string[], cgroup: string | null = null): ChildProcess {
  let argv = nsExecArgs(ns, [process.execPath, ...args]);
  if (cgroup !== null)
    argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...argv];
  return spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
}

function firstLine(p: ChildProcess, what: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(
      () => reject(new CliError("RUNTIME", null, `${what} did not start: ${err.trim()}`, 1)),
      timeoutMs,
    );
    p.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    p.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    p.on("exit", (code) => {
      clearTimeout(timer);
      reject(new CliError("RUNTIME", null, `${what} exited (${code}): ${err.trim()}`, 1));
    });
  });
}

function allOutput(p: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    let out = "";
    p.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    p.on("close", () => resolve(out));
  });
}

async function demo(f: DemoFlags, io: Io): Promise<number> {
  const { config, extraRs } = buildConfig({
    ...f,
    scheduler: "rr",
    mtu: "1500",
    maxConnections: "100000",
  });
  const dec = resolveDecoder(f);
  if (dec.note !== null && !f.json) io.err(`toasim demo: ${dec.note}\n`);
  progress(
    io,
    f.json,
    `toasim demo: profile ${config.profile.name}, setting up namespaces and TUN devices...`,
  );
  let inst: RunningInstance;
  try {
    inst = await startInstance(config, extraRs, { decoder: dec.settings });
  } catch (e) {
    if (e instanceof TunError || e instanceof DecoderError)
      throw new CliError("RUNTIME", null, e.message, 1);
    throw e;
  }
  const stop = () => void inst.stop();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  let server: ChildProcess | null = null;
  try {
    const script = (name: string) => fileURLToPath(new URL(`../demo/${name}.js`, import.meta.url));
    progress(io, f.json, "starting the server in the server namespace...");
    const tcpPort =
      config.services.find((s) => s.proto === "tcp")?.servers[0]?.endpoint.port ?? 8080;
    const udpPort =
      config.services.find((s) => s.proto === "udp")?.servers[0]?.endpoint.port ?? 5353;
    const udpAddrs = [
      ...new Set(
        config.services
          .filter((s) => s.proto === "udp")
          .flatMap((s) => s.servers.map((r) => formatIp(r.endpoint.addr))),
      ),
    ];
    server = runInNs(
      inst.info.serverNs,
      [script("server"), String(tcpPort), String(udpPort), ...udpAddrs],
      inst.info.rsCgroup,
    );
    await firstLine(server, "the demo server", 10_000);
    const attempts: Attempt[] = [];
    for (const s of config.services) {
      const cf = s.vip.addr.length === 4 ? 4 : 6;
      const rf = s.servers[0]!.endpoint.addr.length === 4 ? 4 : 6;
      const family = cf === 4 ? "v4" : rf === 4 ? "nat64" : "v6";
      for (const source of SOURCES[cf]) {
        attempts.push({
          proto: s.proto,
          family,
          source,
          vip: formatIp(s.vip.addr),
          port: s.vip.port,
        });
      }
    }
    progress(io, f.json, `running ${attempts.length} clients from the client namespace...`);
    const client = runInNs(inst.info.clientNs, [script("client"), JSON.stringify(attempts)]);
    const out = await allOutput(client);
    const outcomes = out
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as Outcome);
    const results = outcomes.map((o) => {
      // What an application would take: a PROXY header, else the decoder's
      // getsockopt answer, else the peer.
      const seenAddr = o.seen?.proxy?.addr ?? o.seen?.sockopt?.addr ?? o.seen?.peer ?? null;
      const seenPort = o.seen?.proxy?.port ?? o.seen?.sockopt?.port ?? o.seen?.peerPort ?? null;
      const pass = seenAddr === o.attempt.source && seenPort === o.clientPort;
      return {
        proto: o.attempt.proto,
        family: o.attempt.family,
        client: formatEndpoint({ addr: parseIp(o.attempt.source), port: o.clientPort }),
        vip: o.attempt.vip.includes(":")
          ? `[${o.attempt.vip}]:${o.attempt.port}`
          : `${o.attempt.vip}:${o.attempt.port}`,
        seen: o.seen ? { ...o.seen, via: viaOf(o.seen) } : { error: o.error ?? "no answer" },
        pass,
      };
    });
    const ok = results.length > 0 && results.every((r) => r.pass);
    const decoder = inst.info.rsCgroup !== null ? "ebpf" : (moduleDecoder() ?? "none");
    if (f.json) {
      io.out(`${JSON.stringify({ ok, profile: config.profile.name, decoder, results })}\n`);
    } else {
      io.out(`toasim demo: profile ${config.profile.name}, decoder ${decoder}\n`);
      io.out(
        `  ${"proto".padEnd(5)} ${"family".padEnd(6)} ${"client sent".padEnd(28)} ${"server saw".padEnd(34)} result\n`,
      );
      for (const r of results) {
        const seen =
          "error" in r.seen
            ? `(${r.seen.error})`
            : `${formatSeen(
                r.seen.proxy?.addr ?? r.seen.sockopt?.addr ?? r.seen.peer,
                r.seen.proxy?.port ?? r.seen.sockopt?.port ?? r.seen.peerPort,
              )} ${r.seen.via}`;
        io.out(
          `  ${r.proto.padEnd(5)} ${r.family.padEnd(6)} ${r.client.padEnd(28)} ${seen.padEnd(34)} ${r.pass ? "PASS" : "FAIL"}\n`,
        );
      }
      const failed = results.filter((r) => !r.pass).length;
      io.out(ok ? "all rows PASS\n" : `${failed} of ${results.length} rows FAIL\n`);
      if (!ok && decoder === "none" && config.profile.tcp?.carrier === "toa") {
        io.out(
          "  (no TOA/UOA decoder in the server's kernel: the server sees the gateway's local address)\n",
        );
      }
    }
    return ok ? 0 : 1;
  } finally {
    server?.kill("SIGTERM");
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    progress(io, f.json, "tearing down...");
    await inst.stop();
  }
}

function viaOf(seen: Seen): string {
  if (seen.proxy) return "proxy-header";
  if (seen.sockopt) return `getsockopt(${seen.sockopt.optname})`;
  return "getpeername";
}

function formatSeen(addr: string, port: number): string {
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}
