import type { Command } from "commander";
import { ToasimError } from "../api/errors.js";
import type { UpOptions } from "../api/options.js";
import { up } from "../api/up.js";
import { familyOf, formatEndpoint } from "../option-codec/address.js";
import { ADDRESS_PLAN, defaultServices } from "../runtime/defaults.js";
import { readConfigFile } from "./config-file.js";
import {
  addDecoderOptions,
  type DecoderFlags,
  decoderFlagError,
  decoderOf,
} from "./decoder-flags.js";
import { asCliError, CliError } from "./errors.js";
import {
  addFaultOptions,
  type FaultFlags,
  faultSpecHelp,
  faultsOf,
  fileRuleCount,
} from "./fault-flags.js";
import { helpWidth } from "./help-text.js";
import type { Io } from "./io.js";
import { addProfileOptions, type ProfileFlags, profileList, settingsOf } from "./profile-flags.js";

interface UpFlags extends ProfileFlags, DecoderFlags, FaultFlags {
  service?: string[];
  scheduler?: string;
  config?: string;
  mtu?: string;
  maxConnections?: string;
  timeout?: string[];
  rsNetns?: string;
  offload?: string;
  json?: boolean;
}

const A = ADDRESS_PLAN;
const lipRange = (prefix: string) => `${prefix}${A.lipFirst}-${A.lipFirst + A.lipCount - 1}`;

/** The default services as help shows them, one a line. */
export const DEFAULT_SERVICES_HELP = `Default services (without --service or a config file):\n${defaultServices()
  .map((s) => {
    const rs = s.servers[0]!.endpoint;
    const nat64 = familyOf(s.vip.addr) === 6 && familyOf(rs.addr) === 4;
    const line = `  ${s.proto} ${formatEndpoint(s.vip).padEnd(23)}-> ${formatEndpoint(rs).padEnd(23)}`;
    return nat64 ? `${line}(NAT64)` : line.trimEnd();
  })
  .join("\n")}`;

export function registerUp(program: Command, io: Io): void {
  const cmd = program.command("up");
  addProfileOptions(cmd);
  addDecoderOptions(cmd);
  addFaultOptions(cmd);
  cmd
    .summary("start the gateway between a client and a server namespace, until Ctrl-C")
    .description(
      "Creates a client and a server network namespace joined by two TUN devices and runs the FULLNAT gateway between them in the foreground. Clients reach the VIPs from the client namespace (toasim exec client -- CMD); servers listen in the server namespace (toasim exec rs -- CMD). Ctrl-C or SIGTERM stops it and removes everything.\n\n" +
        "Servers started with toasim exec rs run in a cgroup where the eBPF decoder (the module-free server side: --decoder) gives them the real client through getpeername and the getsockopt ABIs; its UOA part sits on the server namespace's TUN.\n\n" +
        `Clients have ${A.client4} and ${A.client6}, and can bind any address of ${A.clientRange4} and ${A.clientRange6}; servers have ${A.rs4} and ${A.rs6}; the gateway's local addresses are ${lipRange(A.lipPrefix4)} and ${lipRange(A.lipPrefix6)}.`,
    )
    .option(
      "--service <spec...>",
      "PROTO:VIP=RS[*WEIGHT][,RS...], repeatable, e.g. tcp:203.0.113.10:80=192.0.2.10:8080",
    )
    .option("--scheduler <s>", "rr (the default) or wrr")
    .option(
      "--config <file>",
      'JSON options: {"profile": "...", "services": ["SPEC", ...], "settings": {"uoa": "ipo"}, "mtu": 1500, "faults": {"rules": [...]}}; flags win',
    )
    .option("--mtu <bytes>", "path MTU toward the server (default 1500)")
    .option("--max-connections <n>", "connection table limit (default 1000000)")
    .option(
      "--timeout <state=seconds...>",
      "idle timeout of a connection by state, repeatable or comma-separated: syn (30), established (900), fin (120), close (10), udp (300)",
    )
    .option(
      "--rs-netns <where>",
      "toasim (the default): the servers in a namespace of the instance's own; root: in the root namespace, for decoders that hook only there (only inside a toasim vm guest; serverNs is then null)",
    )
    .option(
      "--offload <on|off>",
      "on (the default): TCP crosses as super-packets of up to 64 KB (TUN offloads), cut into wire segments after the gateway; off: one packet at a time, for reproductions that need it",
    )
    .option(
      "--json",
      "print the ready line as JSON: {ready, id, clientNs, serverNs, profile, decoder, rsCgroup, decoderNote, services}",
    )
    .addHelpText(
      "after",
      `\n${DEFAULT_SERVICES_HELP}\n\n${profileList(helpWidth(io))}\n\n${faultSpecHelp(helpWidth(io))}\n\n` +
        "Examples:\n" +
        "  toasim up --profile dpvs\n" +
        "  toasim up --profile lvs --service tcp:203.0.113.10:443=192.0.2.10:8443,192.0.2.11:8443\n" +
        "  toasim up --profile dpvs --uoa ipo --max-trail 5\n" +
        "  toasim up --profile dpvs --timeout udp=5,established=60\n" +
        "  toasim up --config gateway.json\n" +
        "  toasim up --rs-netns root   (in a toasim vm guest: the servers in its root namespace)\n" +
        "  toasim up --offload off     (every packet through the gateway alone, as on the wire)\n" +
        "  toasim up --profile tencent --fault to-server:handshake-ack:drop,count=1\n" +
        "  toasim up --profile dpvs --fault to-server:toa:corrupt=tcp-option:254:1,set=6 --link-mtu server=1400",
    )
    .action(async (flags: UpFlags) => {
      await runUp(flags, io);
    });
}

/**
 * The API's options from the flags, on top of a --config file's; the
 * keys the file gave (and no flag replaced), for errors that blame it.
 */
export function upOptionsOf(f: UpFlags): {
  options: UpOptions;
  fromFile: Set<string>;
  fileRules: number;
} {
  const file = f.config === undefined ? {} : readConfigFile(f.config);
  const flags: Record<string, unknown> = {};
  if (f.profile !== undefined) flags["profile"] = f.profile;
  const settings = settingsOf(f);
  if (Object.keys(settings).length > 0)
    flags["settings"] = { ...(file["settings"] as object | undefined), ...settings };
  if (f.service !== undefined && f.service.length > 0) flags["services"] = f.service;
  if (f.scheduler !== undefined) flags["scheduler"] = f.scheduler;
  if (f.mtu !== undefined) flags["mtu"] = f.mtu;
  if (f.maxConnections !== undefined) flags["maxConnections"] = f.maxConnections;
  if (f.timeout !== undefined && f.timeout.length > 0) flags["timeouts"] = f.timeout.join(",");
  if (f.rsNetns !== undefined) flags["rsNetns"] = f.rsNetns;
  if (f.offload !== undefined) flags["offload"] = f.offload;
  const decoder = decoderOf(f);
  if (Object.keys(decoder).length > 0) flags["decoder"] = decoder;
  const faults = faultsOf(f, file["faults"]);
  if (faults !== undefined) flags["faults"] = faults;
  const fromFile = new Set(Object.keys(file).filter((k) => !(k in flags)));
  // Values are still text here: the API reads flags' words as a config file's.
  return {
    options: { ...file, ...flags } as UpOptions,
    fromFile,
    fileRules: fileRuleCount(file["faults"]),
  };
}

/** An option error as the flag (or the --config file) it came from. */
export function upError(e: unknown, fromFile: ReadonlySet<string>, fileRules: number): unknown {
  const rule = e instanceof ToasimError ? /^faults\.rules\[(\d+)\]/.exec(e.option ?? "") : null;
  if (e instanceof ToasimError && rule && Number(rule[1]) < fileRules)
    return new CliError("BAD_FLAG", "--config", e.message);
  return asCliError(decoderFlagError(e), fromFile);
}

async function runUp(f: UpFlags, io: Io): Promise<void> {
  const { options, fromFile, fileRules } = upOptionsOf(f);
  let inst: Awaited<ReturnType<typeof up>>;
  let note: string | null = null;
  try {
    inst = await up(options, {
      onNote: (n) => {
        note = n;
        io.err(`toasim up: ${n}\n`);
      },
    });
  } catch (e) {
    throw upError(e, fromFile, fileRules);
  }
  const stop = () => {
    void inst.stop();
  };
  // `on`, not `once`: a second signal (timeout sends two) must not kill us mid-cleanup.
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  process.on("SIGHUP", stop);
  if (f.json) {
    io.out(
      `${JSON.stringify({ ready: true, id: inst.id, clientNs: inst.clientNamespace, serverNs: inst.serverNamespace, profile: inst.profile, decoder: inst.decoder, rsCgroup: inst.rsCgroup, decoderNote: note, services: inst.services })}\n`,
    );
  } else {
    io.out(`toasim: instance ${inst.id} up, profile ${inst.profile}\n`);
    io.out(`  client namespace ${inst.clientNamespace}   (toasim exec client -- CMD)\n`);
    io.out(`  server namespace ${inst.serverNamespace}   (toasim exec rs -- CMD)\n`);
    io.out(
      `  decoder          ${inst.rsCgroup === null ? inst.decoder : `ebpf, for servers in cgroup ${inst.rsCgroup}`}\n`,
    );
    for (const s of inst.services)
      io.out(`  ${s.proto} ${s.vip.padEnd(22)} -> ${s.servers.join(", ")}\n`);
    io.out("Ctrl-C stops and removes everything.\n");
  }
  await inst.stopped;
  process.off("SIGINT", stop);
  process.off("SIGTERM", stop);
  process.off("SIGHUP", stop);
  const failure = inst.failure();
  if (failure !== null)
    throw new CliError(
      "RUNTIME",
      null,
      `instance ${inst.id} stopped: the packet worker failed: ${failure}`,
    );
  if (!f.json) io.out(`toasim: instance ${inst.id} stopped\n`);
}
