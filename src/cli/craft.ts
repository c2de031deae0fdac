import type { Command } from "commander";
import { craftExchange } from "../craft/exchange.js";
import { CarrierOutcome, unsupportedFlow } from "../fullnat-sim/gateway.js";
import { type Endpoint, formatEndpoint, parseEndpoint } from "../option-codec/address.js";
import { CodecError } from "../option-codec/errors.js";
import { ToaLayout } from "../option-codec/toa.js";
import { PcapWriter } from "../tun/pcap-writer.js";
import { CliError } from "./errors.js";
import { choiceFlag, endpointFlag, intFlag } from "./parse-flags.js";
import { addProfileOptions, type ProfileFlags, profileFrom, profileList } from "./profile-flags.js";

// Documentation addresses from ARCHITECTURE.md.
const DEFAULTS = {
  client4: "198.51.100.7:40000",
  vip4: "203.0.113.10:80",
  vip6: "[2001:db8:f::10]:80",
  rs4: "192.0.2.10:8080",
  rs6: "[2001:db8:5::10]:8080",
  lip4: "192.0.2.100:5000",
  lip6: "[2001:db8:5::100]:5000",
} as const;

interface CraftFlags extends ProfileFlags {
  proto: string;
  client: string;
  vip?: string;
  rs?: string;
  lip?: string;
  mtu: string;
  side: string;
  datagrams: string;
  out: string;
  json?: boolean;
}

export function registerCraft(program: Command, io: { out: (s: string) => void }): void {
  const cmd = program.command("craft");
  addProfileOptions(cmd);
  cmd
    .summary("write a pcap of one exchange as a gateway would send it")
    .description(
      "Writes a pcap (raw IP, readable by Wireshark and tshark) of a complete exchange -\n" +
        "TCP: handshake, request, response, close; UDP: a few datagrams each way -\n" +
        "as the chosen gateway profile delivers it to the real server (--side server),\n" +
        "or as the client sees it (--side client).\n\n" +
        `Profiles:\n${profileList()}`,
    )
    .requiredOption("--out <file>", "pcap file to write")
    .option("--proto <proto>", "tcp or udp", "tcp")
    .option("--client <addr:port>", "client address (IPv6 as [addr]:port)", DEFAULTS.client4)
    .option(
      "--vip <addr:port>",
      `virtual service address (default ${DEFAULTS.vip4}, or ${DEFAULTS.vip6} for an IPv6 client)`,
    )
    .option(
      "--rs <addr:port>",
      `real server (default ${DEFAULTS.rs4}, or ${DEFAULTS.rs6} for an IPv6 client); a v4 server behind a v6 client is NAT64`,
    )
    .option(
      "--lip <addr:port>",
      `gateway local address toward the server (default ${DEFAULTS.lip4} or ${DEFAULTS.lip6})`,
    )
    .option("--mtu <bytes>", "path MTU toward the server", "1500")
    .option("--side <side>", "server, client or both", "server")
    .option("--datagrams <n>", "UDP: datagrams the client sends", "4")
    .option("--json", "print the packet list as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  toasim craft --profile dpvs --proto tcp --client 198.51.100.7:40000 --vip 203.0.113.10:80 --rs 192.0.2.10:8080 --out x.pcap\n" +
        "  toasim craft --profile dpvs --client '[2001:db8:c::7]:40000' --rs 192.0.2.10:8080 --out nat64.pcap\n" +
        "  toasim craft --profile dpvs --proto udp --uoa ipo --out uoa.pcap",
    )
    .action((flags: CraftFlags) => {
      craft(flags, io);
    });
}

function defaulted(
  flag: string,
  given: string | undefined,
  v4: string,
  v6: string,
  v6Wanted: boolean,
): Endpoint {
  return given === undefined ? parseEndpoint(v6Wanted ? v6 : v4) : endpointFlag(flag, given);
}

function craft(f: CraftFlags, io: { out: (s: string) => void }): void {
  const profile = profileFrom(f);
  const proto = choiceFlag("--proto", f.proto, ["tcp", "udp"] as const);
  const side = choiceFlag("--side", f.side, ["server", "client", "both"] as const);
  const mtu = intFlag("--mtu", f.mtu, 576, 65535);
  const datagrams = intFlag("--datagrams", f.datagrams, 1, 1000);
  const client = endpointFlag("--client", f.client);
  const v6Client = client.addr.length === 16;
  const vip = defaulted("--vip", f.vip, DEFAULTS.vip4, DEFAULTS.vip6, v6Client);
  const rs = defaulted("--rs", f.rs, DEFAULTS.rs4, DEFAULTS.rs6, v6Client);
  const lip = defaulted("--lip", f.lip, DEFAULTS.lip4, DEFAULTS.lip6, rs.addr.length === 16);
  if (vip.addr.length !== client.addr.length) {
    throw new CliError(
      "BAD_COMBINATION",
      "--vip",
      `an IPv${v6Client ? 6 : 4} client needs an IPv${v6Client ? 6 : 4} VIP (NAT64 translates only a v6 client to a v4 server; give a v4 --rs for it)`,
    );
  }
  if (!v6Client && rs.addr.length === 16) {
    throw new CliError(
      "BAD_COMBINATION",
      "--rs",
      "an IPv4 client cannot reach an IPv6 server (NAT46 is not supported)",
    );
  }
  if (lip.addr.length !== rs.addr.length) {
    throw new CliError(
      "BAD_COMBINATION",
      "--lip",
      "the local address must be of the real server's family",
    );
  }
  if (proto === "tcp" && (f.uoa !== undefined || f.maxTrail !== undefined)) {
    throw new CliError(
      "BAD_COMBINATION",
      f.uoa !== undefined ? "--uoa" : "--max-trail",
      "applies to --proto udp only",
    );
  }
  if (
    profile.tcp?.carrier === "toa" &&
    profile.tcp.v4.layout === ToaLayout.portAddrVaddr &&
    v6Client
  ) {
    throw new CliError(
      "BAD_COMBINATION",
      "--toa-layout",
      "port-addr-vaddr carries IPv4 clients only",
    );
  }
  const why = unsupportedFlow(profile, proto, v6Client ? 6 : 4, rs.addr.length === 16 ? 6 : 4);
  if (why) throw new CliError("BAD_COMBINATION", flagForReason(why, proto), why);
  let packets: ReturnType<typeof craftExchange>;
  try {
    packets = craftExchange({
      profile,
      protocol: proto,
      endpoints: { client, vip, lip, rs },
      mtu,
      datagrams,
    });
  } catch (e) {
    if (e instanceof CodecError) throw new CliError("BAD_COMBINATION", null, e.message);
    throw e;
  }
  const chosen = packets.filter((p) => side === "both" || p.side === side);
  let w: PcapWriter;
  try {
    w = new PcapWriter(f.out);
  } catch (e) {
    throw new CliError("IO", "--out", `cannot write ${f.out}: ${(e as Error).message}`, 1);
  }
  try {
    for (const p of chosen) w.write(p.bytes, p.bytes.length, p.timeUs);
  } finally {
    w.close();
  }
  const rows = chosen.map((p, i) => ({
    frame: i + 1,
    side: p.side,
    direction: p.direction,
    packet: p.note,
    length: p.bytes.length,
    carrier: p.direction === "to-server" && p.side === "server" ? outcomeName(p.carrier) : "",
  }));
  if (f.json) {
    io.out(
      `${JSON.stringify({ out: f.out, profile: profile.name, proto, client: formatEndpoint(client), packets: rows })}\n`,
    );
    return;
  }
  io.out(
    `${f.out}: ${chosen.length} packets, profile ${profile.name}, ${proto}, client ${formatEndpoint(client)} -> vip ${formatEndpoint(vip)} -> rs ${formatEndpoint(rs)}\n`,
  );
  for (const r of rows) {
    const arrow = r.direction === "to-server" ? "->" : "<-";
    io.out(
      `  ${String(r.frame).padStart(3)}  ${r.side.padEnd(6)} ${arrow} ${r.packet.padEnd(20)} ${String(r.length).padStart(5)} B  ${r.carrier}\n`,
    );
  }
}

function outcomeName(o: CarrierOutcome): string {
  switch (o) {
    case CarrierOutcome.inserted:
      return "carrier";
    case CarrierOutcome.insertedAfterPruning:
      return "carrier (options pruned)";
    case CarrierOutcome.failed:
      return "carrier FAILED (no room)";
    default:
      return "";
  }
}

function flagForReason(why: string, proto: string): string {
  if (why.includes("carrier")) return proto === "udp" ? "--proto" : "--profile";
  if (why.includes("ipo")) return "--uoa";
  if (why.includes("TOA for IPv6")) return "--profile";
  return "--rs";
}
