import type { Command } from "commander";
import { DecoderError } from "../decoder/errors.js";
import {
  DEFAULT_PORTS,
  DEFAULT_TIMEOUTS,
  type GatewayConfig,
  type ServiceConfig,
} from "../fullnat-sim/config.js";
import type { FaultConfig } from "../fullnat-sim/faults.js";
import { formatEndpoint } from "../option-codec/address.js";
import { defaultLips4, defaultLips6 } from "../runtime/defaults.js";
import { type RunningInstance, startInstance } from "../runtime/instance.js";
import { TunError } from "../tun/errors.js";
import { addDecoderOptions, type DecoderFlags, resolveDecoder } from "./decoder-flags.js";
import { CliError } from "./errors.js";
import { addFaultOptions, FAULT_SPEC_HELP, type FaultFlags, faultsFrom } from "./fault-flags.js";
import type { Io } from "./main.js";
import { choiceFlag, intFlag } from "./parse-flags.js";
import { addProfileOptions, type ProfileFlags, profileFrom, profileList } from "./profile-flags.js";
import {
  checkService,
  defaultServicesFor,
  extraRsAddresses,
  parseService,
  readConfigFile,
} from "./services.js";

interface UpFlags extends ProfileFlags, DecoderFlags, FaultFlags {
  service?: string[];
  scheduler: string;
  config?: string;
  mtu: string;
  maxConnections: string;
  json?: boolean;
}

export function registerUp(program: Command, io: Io): void {
  const cmd = program.command("up");
  addProfileOptions(cmd);
  addDecoderOptions(cmd);
  addFaultOptions(cmd);
  cmd
    .summary("start the gateway between a client and a server namespace, until Ctrl-C")
    .description(
      "Creates a client and a server network namespace joined by two TUN devices and runs\n" +
        "the FULLNAT gateway between them in the foreground. Clients reach the VIPs from the\n" +
        "client namespace (toasim exec client -- CMD); servers listen in the server namespace\n" +
        "(toasim exec rs -- CMD). Ctrl-C or SIGTERM stops it and removes everything.\n\n" +
        "Servers started with toasim exec rs run in a cgroup where the eBPF decoder (the\n" +
        "module-free server side: --decoder) gives them the real client through getpeername\n" +
        "and the getsockopt ABIs; its UOA part sits on the server namespace's TUN.\n\n" +
        "Default services (without --service or a config file):\n" +
        "  tcp 203.0.113.10:80        -> 192.0.2.10:8080\n" +
        "  tcp [2001:db8:f::10]:80    -> [2001:db8:5::10]:8080\n" +
        "  tcp [2001:db8:f::64]:80    -> 192.0.2.10:8080        (NAT64)\n" +
        "  udp 203.0.113.10:53        -> 192.0.2.10:5353\n" +
        "  udp [2001:db8:f::10]:53    -> [2001:db8:5::10]:5353\n" +
        "  udp [2001:db8:f::64]:53    -> 192.0.2.10:5353        (NAT64)\n\n" +
        `Profiles:\n${profileList()}\n\n${FAULT_SPEC_HELP}`,
    )
    .option(
      "--service <spec...>",
      "PROTO:VIP=RS[*WEIGHT][,RS...], repeatable, e.g. tcp:203.0.113.10:80=192.0.2.10:8080,192.0.2.11:8080",
    )
    .option("--scheduler <s>", "rr or wrr", "rr")
    .option(
      "--config <file>",
      'JSON: {"profile": "...", "services": ["SPEC", ...], "settings": {"uoa": "ipo"}, "mtu": 1500, "faults": {"rules": [...]}}',
    )
    .option("--mtu <bytes>", "path MTU toward the server", "1500")
    .option("--max-connections <n>", "connection table limit", "1000000")
    .option("--json", "print the ready line as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  toasim up --profile dpvs\n" +
        "  toasim up --profile lvs --service tcp:203.0.113.10:443=192.0.2.10:8443,192.0.2.11:8443\n" +
        "  toasim up --profile dpvs --uoa ipo --max-trail 5\n" +
        "  toasim up --profile tencent --fault to-server:handshake-ack:drop,count=1\n" +
        "  toasim up --profile dpvs --fault to-server:toa:corrupt=tcp-option:254:1,set=6 --link-mtu server=1400",
    )
    .action(async (flags: UpFlags) => {
      await up(flags, io);
    });
}

export function buildConfig(f: UpFlags): {
  config: GatewayConfig;
  extraRs: string[];
  faults: FaultConfig | null;
} {
  let flags: UpFlags = f;
  let specs = f.service ?? [];
  let fileFaults: unknown;
  if (f.config !== undefined) {
    const file = readConfigFile(f.config);
    fileFaults = file.faults;
    flags = { ...(file.settings ?? {}), ...f, profile: file.profile ?? f.profile };
    if (file.scheduler) flags.scheduler = file.scheduler;
    if (file.mtu !== undefined) flags.mtu = String(file.mtu);
    if (specs.length === 0) specs = file.services ?? [];
  }
  const profile = profileFrom(flags);
  const scheduler = choiceFlag("--scheduler", flags.scheduler, ["rr", "wrr"] as const);
  const services: ServiceConfig[] =
    specs.length > 0
      ? specs.map((s) => parseService("--service", s, scheduler))
      : defaultServicesFor(profile);
  if (services.length === 0) {
    throw new CliError(
      "BAD_COMBINATION",
      "--profile",
      `profile ${profile.name} can carry none of the default services`,
    );
  }
  for (const s of services) checkService("--service", s, profile);
  const config: GatewayConfig = {
    profile,
    services,
    lips4: defaultLips4(),
    lips6: defaultLips6(),
    portMin: DEFAULT_PORTS.min,
    portMax: DEFAULT_PORTS.max,
    mtu: intFlag("--mtu", flags.mtu, 576, 65535),
    maxConnections: intFlag("--max-connections", flags.maxConnections, 1, 10_000_000),
    timeouts: DEFAULT_TIMEOUTS,
  };
  return { config, extraRs: extraRsAddresses(services), faults: faultsFrom(f, fileFaults) };
}

async function up(f: UpFlags, io: Io): Promise<void> {
  const { config, extraRs, faults } = buildConfig(f);
  const decoder = resolveDecoder(f);
  if (decoder.note !== null) io.err(`toasim up: ${decoder.note}\n`);
  let inst: RunningInstance;
  try {
    inst = await startInstance(config, extraRs, {
      decoder: decoder.settings,
      ...(faults ? { faults } : {}),
    });
  } catch (e) {
    if (e instanceof TunError || e instanceof DecoderError)
      throw new CliError("RUNTIME", null, e.message, 1);
    throw e;
  }
  const stop = () => {
    void inst.stop();
  };
  // `on`, not `once`: a second signal (timeout sends two) must not kill us mid-cleanup.
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  process.on("SIGHUP", stop);
  const { id, clientNs, serverNs, rsCgroup } = inst.info;
  const decoderName = rsCgroup === null ? "none" : "ebpf";
  const services = config.services.map((s) => ({
    proto: s.proto,
    vip: formatEndpoint(s.vip),
    servers: s.servers.map((r) => formatEndpoint(r.endpoint)),
  }));
  if (f.json) {
    io.out(
      `${JSON.stringify({ ready: true, id, clientNs, serverNs, profile: config.profile.name, decoder: decoderName, rsCgroup, services })}\n`,
    );
  } else {
    io.out(`toasim: instance ${id} up, profile ${config.profile.name}\n`);
    io.out(`  client namespace ${clientNs}   (toasim exec client -- CMD)\n`);
    io.out(`  server namespace ${serverNs}   (toasim exec rs -- CMD)\n`);
    io.out(
      `  decoder          ${rsCgroup === null ? "none" : `ebpf, for servers in cgroup ${rsCgroup}`}\n`,
    );
    for (const s of services)
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
      `instance ${id} stopped: the packet worker failed: ${failure}`,
      1,
    );
  if (!f.json) io.out(`toasim: instance ${id} stopped\n`);
}
