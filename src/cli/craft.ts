import type { Command } from "commander";
import { CRAFT_DEFAULTS, type CraftResult, craft, writePcap } from "../api/craft.js";
import { asCliError, CliError } from "./errors.js";
import { helpWidth } from "./help-text.js";
import type { Io } from "./io.js";
import { addProfileOptions, type ProfileFlags, profileList, settingsOf } from "./profile-flags.js";

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

export function registerCraft(program: Command, io: Io): void {
  const cmd = program.command("craft");
  addProfileOptions(cmd);
  const D = CRAFT_DEFAULTS;
  cmd
    .summary("write a pcap of one exchange as a gateway would send it")
    .description(
      "Writes a pcap (raw IP, readable by Wireshark and tshark) of a complete exchange - TCP: handshake, request, response, close; UDP: a few datagrams each way - as the chosen gateway profile delivers it to the real server (--side server), or as the client sees it (--side client). Needs no root and no network.",
    )
    .requiredOption("--out <file>", "pcap file to write")
    .option("--proto <proto>", "tcp or udp", "tcp")
    .option("--client <addr:port>", "client address (IPv6 as [addr]:port)", D.client4)
    .option(
      "--vip <addr:port>",
      `virtual service address (default ${D.vip4}, or ${D.vip6} for an IPv6 client)`,
    )
    .option(
      "--rs <addr:port>",
      `real server (default ${D.rs4}, or ${D.rs6} for an IPv6 client); a v4 server behind a v6 client is NAT64`,
    )
    .option(
      "--lip <addr:port>",
      `gateway local address toward the server (default ${D.lip4} or ${D.lip6})`,
    )
    .option("--mtu <bytes>", "path MTU toward the server", "1500")
    .option("--side <side>", "server, client or both", "server")
    .option("--datagrams <n>", "UDP: datagrams the client sends", "4")
    .option("--json", "print the packet list as JSON")
    .addHelpText(
      "after",
      `\n${profileList(helpWidth(io))}\n\nExamples:\n` +
        "  toasim craft --profile dpvs --proto tcp --client 198.51.100.7:40000 --vip 203.0.113.10:80 --rs 192.0.2.10:8080 --out x.pcap\n" +
        "  toasim craft --profile dpvs --client '[2001:db8:c::7]:40000' --rs 192.0.2.10:8080 --out nat64.pcap\n" +
        "  toasim craft --profile dpvs --proto udp --uoa ipo --out uoa.pcap\n" +
        "  toasim craft --profile custom --toa-kind 200 --carry every --out custom.pcap",
    )
    .action((f: CraftFlags) => {
      runCraft(f, io);
    });
}

function runCraft(f: CraftFlags, io: Io): void {
  if (!["server", "client", "both"].includes(f.side))
    throw new CliError("BAD_FLAG", "--side", `"${f.side}" is not one of server, client, both`);
  let r: CraftResult;
  try {
    r = craft({
      // Text values: the API reads them as a flag's words.
      ...(f.profile !== undefined ? { profile: f.profile as never } : {}),
      settings: settingsOf(f) as never,
      proto: f.proto as never,
      client: f.client,
      ...(f.vip !== undefined ? { vip: f.vip } : {}),
      ...(f.rs !== undefined ? { rs: f.rs } : {}),
      ...(f.lip !== undefined ? { lip: f.lip } : {}),
      mtu: f.mtu as never,
      datagrams: f.datagrams as never,
    });
  } catch (e) {
    throw asCliError(e);
  }
  const chosen = r.packets.filter((p) => f.side === "both" || p.side === f.side);
  try {
    writePcap(f.out, chosen);
  } catch (e) {
    throw new CliError("IO", "--out", `cannot write ${f.out}: ${(e as Error).message}`);
  }
  const rows = chosen.map((p, i) => ({
    frame: i + 1,
    side: p.side,
    direction: p.direction,
    packet: p.note,
    length: p.bytes.length,
    carrier: p.carrier,
  }));
  if (f.json) {
    io.out(
      `${JSON.stringify({ out: f.out, profile: r.profile, proto: r.proto, client: r.client, packets: rows })}\n`,
    );
    return;
  }
  io.out(
    `${f.out}: ${chosen.length} packets, profile ${r.profile}, ${r.proto}, client ${r.client} -> vip ${r.vip} -> rs ${r.rs}\n`,
  );
  for (const row of rows) {
    const arrow = row.direction === "to-server" ? "->" : "<-";
    io.out(
      `  ${String(row.frame).padStart(3)}  ${row.side.padEnd(6)} ${arrow} ${row.packet.padEnd(20)} ${String(row.length).padStart(5)} B  ${row.carrier}\n`,
    );
  }
}
