import type { Command } from "commander";
import { ToasimError, ToasimErrorCode } from "../api/errors.js";
import { checkClientSpec } from "../api/instance.js";
import { SCRIPT_DEFAULTS } from "../craft/script-spec.js";
import type { ScriptResults } from "../craft/scripted-clients.js";
import { LINUX_SEGMENT, LINUX_SYN } from "../craft/segment-options.js";
import type { ScriptProgress } from "../runtime/control.js";
import { CliError } from "./errors.js";
import { attached } from "./instance-commands.js";
import type { Io } from "./io.js";
import { intFlag } from "./parse-flags.js";

interface ClientFlags {
  to: string;
  from?: string;
  sources: string;
  connections: string;
  concurrency: string;
  rate: string;
  request: string;
  syn?: string;
  ack?: string;
  segment?: string;
  linux?: boolean;
  dataOnAck?: boolean;
  timeoutMs: string;
  expectPeer: boolean;
  json?: boolean;
  id?: string;
}

export function registerClient(program: Command, io: Io): void {
  const client = program.command("client").summary("clients that toasim plays itself");
  client
    .command("run")
    .summary("open many connections from many addresses, crafted by toasim, and check each answer")
    .description(
      "Scripted clients: toasim builds every packet itself (as packetdrill does) and sends it straight into the gateway of a running instance, so any TCP option (a forged TOA too) and any number of source addresses can be used without configuring them. Each connection sends one request; when the server answers with a reader server's JSON report (toasim examples), its \"peer\" must be the connection's own address and port. Progress goes to stderr every second; the exit code is 0 only when every connection completed (and matched).\n\n" +
        "Option words (--syn, --ack, --segment, comma-separated): mss:N ws:N sack-perm ts nop eol sack:N toa:KIND:ADDR:PORT raw:HEX",
    )
    .option("--to <vip>", "the VIP to connect to", "203.0.113.10:80")
    .option(
      "--from <addr>",
      `first source address (default ${SCRIPT_DEFAULTS.from4} or ${SCRIPT_DEFAULTS.from6})`,
    )
    .option("--sources <n>", "how many consecutive source addresses", "1")
    .option("--connections <n>", "connections in all", "1")
    .option("--concurrency <n>", "connections open at once", String(SCRIPT_DEFAULTS.concurrency))
    .option("--rate <n>", "new connections per second at most (0: no limit)", "0")
    .option("--request <text>", "what each connection sends", SCRIPT_DEFAULTS.request)
    .option("--syn <words>", "options on the SYN (default mss:1460,sack-perm,nop,ws:7)")
    .option("--ack <words>", "options on the handshake ACK (default: as --segment)")
    .option("--segment <words>", "options on every later segment (default none)")
    .option(
      "--linux",
      `a Linux client's options: SYN ${LINUX_SYN.join(",")}, then ${LINUX_SEGMENT.join(",")}`,
    )
    .option("--data-on-ack", "send the request on the handshake ACK")
    .option(
      "--timeout-ms <n>",
      "give up on a connection after this long",
      String(SCRIPT_DEFAULTS.timeoutMs),
    )
    .option("--no-expect-peer", "do not check the answers (any server)")
    .option("--json", "print the results as one JSON object")
    .option("--id <id>", "instance id (when several are running)")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  toasim client run --connections 1000 --sources 100\n" +
        "  toasim client run --to '[2001:db8:f::10]:80' --sources 10000 --connections 100000\n" +
        "  toasim client run --ack nop,nop,toa:254:198.51.100.99:1234   (a client forging its own TOA)\n" +
        "  toasim client run --linux --ack nop,nop,ts,nop,nop,sack:3     (options full on the handshake ACK)",
    )
    .action(async (f: ClientFlags) => {
      const code = await runClients(f, io);
      process.exitCode = code;
    });
}

function wordsFlag(text: string | undefined): string[] | undefined {
  return text === undefined ? undefined : text.split(",").filter((w) => w !== "");
}

export function clientPlain(f: ClientFlags): Record<string, unknown> {
  const plain: Record<string, unknown> = {
    target: f.to,
    sources: intFlag("--sources", f.sources, 1, 1_000_000),
    connections: intFlag("--connections", f.connections, 1, 10_000_000),
    concurrency: intFlag("--concurrency", f.concurrency, 1, 65536),
    rate: intFlag("--rate", f.rate, 0, 10_000_000),
    request: f.request.replace(/\\n/g, "\n"),
    dataOnAck: f.dataOnAck === true,
    timeoutMs: intFlag("--timeout-ms", f.timeoutMs, 100, 600_000),
    expectPeer: f.expectPeer,
  };
  if (f.from !== undefined) plain["from"] = f.from;
  const linux = f.linux === true;
  const syn = wordsFlag(f.syn) ?? (linux ? [...LINUX_SYN] : undefined);
  const segment = wordsFlag(f.segment) ?? (linux ? [...LINUX_SEGMENT] : undefined);
  const ack = wordsFlag(f.ack);
  if (syn) plain["syn"] = syn;
  if (segment) plain["segment"] = segment;
  if (ack) plain["ack"] = ack;
  return plain;
}

const FLAG_OF: Record<string, string> = {
  target: "--to",
  from: "--from",
  sources: "--sources",
  connections: "--connections",
  request: "--request",
  syn: "--syn",
  ack: "--ack",
  segment: "--segment",
};

function flagError(e: unknown): unknown {
  if (e instanceof ToasimError && e.code === ToasimErrorCode.badOption) {
    const m = /^spec\.(\w+)(.*)$/.exec(e.option ?? "");
    const key = m?.[1] ?? "";
    // The index of a bad word in an option list (--ack's [0]) says which.
    const at = m?.[2] ? `${m[2]}: ` : "";
    return new CliError("BAD_FLAG", FLAG_OF[key] ?? null, `${at}${e.detail}`);
  }
  return e;
}

async function runClients(f: ClientFlags, io: Io): Promise<number> {
  const plain = clientPlain(f);
  // Checked before looking for an instance: a bad flag is exit code 2 either way.
  try {
    checkClientSpec(plain);
  } catch (e) {
    throw flagError(e);
  }
  const inst = attached(f.id);
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  let done: ScriptProgress;
  try {
    done = await inst.runClients(plain, {
      signal: abort.signal,
      onProgress: (p) => {
        if (!f.json) io.err(`${progressLine(p)}\n`);
      },
    });
  } catch (e) {
    throw flagError(e);
  } finally {
    process.off("SIGINT", stop);
  }
  const r = done.results;
  const total = Number(plain["connections"]);
  const rate = done.elapsedMs > 0 ? (r.completed * 1000) / done.elapsedMs : 0;
  const ok = r.completed === total && (!f.expectPeer || r.matched === total);
  if (f.json) {
    io.out(
      `${JSON.stringify({ ok, connections: total, ...r, elapsedMs: Math.round(done.elapsedMs), rate: Math.round(rate) })}\n`,
    );
  } else {
    io.out(`${progressLine(done)}\n`);
    for (const m of r.mismatches)
      io.out(`  mismatch: ${m.client} port ${m.port}, server saw ${m.seen}\n`);
    io.out(
      `${ok ? "PASS" : "FAIL"}: ${r.completed}/${total} completed${f.expectPeer ? `, ${r.matched} matched` : ""}\n`,
    );
  }
  return ok ? 0 : 1;
}

function progressLine(p: {
  readonly results: ScriptResults;
  readonly elapsedMs: number;
  readonly active: number;
}): string {
  const r = p.results;
  const failed = Object.entries(r.failed)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  const s = p.elapsedMs / 1000;
  const rate = s > 0 ? Math.round(r.completed / s) : 0;
  return (
    `${s.toFixed(1)} s: opened ${r.opened}, completed ${r.completed} (${rate}/s), matched ${r.matched}, ` +
    `mismatched ${r.mismatched}, failed ${failed || "0"}, open ${p.active}, retransmits ${r.retransmits}`
  );
}
