import { execFileSync } from "node:child_process";

// The one way every tier asks tshark (a decoder nobody here wrote) about a
// pcap: checksum validation on, sequence analysis off (synthetic flows
// would be flagged as retransmissions), heuristics first (PROXY on port
// 8080), DNS off (test payloads on ports 53/5353 are not DNS).

export type Row = Record<string, string>;

/**
 * tshark's fields for every frame (or those `filter` keeps), checksum
 * validation on. Repeated fields are joined with "|". mDNS/DNS are off: the
 * test payloads on ports 53/5353 are not DNS.
 */
export function tshark(
  file: string,
  fields: readonly string[],
  filter?: string,
  prefs: readonly string[] = [],
): Row[] {
  const args = [
    "-n",
    "-r",
    file,
    "-o",
    "ip.check_checksum:TRUE",
    "-o",
    "tcp.check_checksum:TRUE",
    "-o",
    "udp.check_checksum:TRUE",
    "-o",
    "tcp.analyze_sequence_numbers:FALSE",
    "-o",
    "tcp.try_heuristic_first:TRUE",
    "--disable-protocol",
    "mdns",
    "--disable-protocol",
    "dns",
    "-T",
    "fields",
    "-E",
    "occurrence=a",
    "-E",
    "aggregator=|",
    ...fields.flatMap((f) => ["-e", f]),
    ...prefs.flatMap((p) => ["-o", p]),
  ];
  if (filter) args.push("-Y", filter);
  const out = execFileSync("tshark", args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
    timeout: 30_000,
  });
  return out
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => Object.fromEntries(l.split("\t").map((v, i) => [fields[i]!, v])));
}
