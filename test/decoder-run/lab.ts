import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { cgroup2Root } from "../../src/cgroup2.js";
import { EbpfDecoder } from "../../src/decoder/decoder.js";
import type { DecoderSettings } from "../../src/decoder/maps.js";
import { removeCgroup } from "../../src/runtime/rs-decoder.js";
import { KernelTun } from "../../src/tun/device.js";

/**
 * A server namespace reached through one TUN device, where storm.ts and
 * replay.ts write crafted or recorded packets: the server's addresses on
 * the TUN, and with the eBPF decoder (loaded here) on the TUN and on a
 * cgroup for the server; with the module, nothing more is needed.
 */

/** The reader servers' endpoints in every lab and instance. */
export const READER_ENDPOINTS = [
  "--tcp",
  "192.0.2.10:8080",
  "--tcp",
  "[2001:db8:5::10]:8080",
  "--udp",
  "192.0.2.10:5353",
  "--udp",
  "[2001:db8:5::10]:5353",
];

export interface Lab {
  readonly ns: string;
  readonly tun: KernelTun;
  readonly decoder: EbpfDecoder | null;
  /** argv that runs `argv` in the namespace, in the decoder's cgroup if any. */
  serverArgv(argv: readonly string[]): string[];
  close(): void;
}

function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export async function openLab(
  ns: string,
  tunName: string,
  decoder: DecoderSettings | null,
  routes: readonly string[] = [],
): Promise<Lab> {
  try {
    ip(["netns", "del", ns]);
  } catch {
    // Not there.
  }
  ip(["netns", "add", ns]);
  let tun: KernelTun | null = null;
  let d: EbpfDecoder | null = null;
  let cgroup: string | null = null;
  const close = (): void => {
    d?.close();
    if (cgroup !== null) removeCgroup(cgroup);
    tun?.close();
    try {
      ip(["netns", "del", ns]);
    } catch {
      // Gone.
    }
  };
  try {
    tun = KernelTun.open(tunName, { netns: ns });
    const n = (a: string[]): void => ip(["-n", ns, ...a]);
    n(["link", "set", "lo", "up"]);
    n(["link", "set", tunName, "up"]);
    n(["addr", "add", "192.0.2.10/24", "dev", tunName]);
    n(["addr", "add", "2001:db8:5::10/64", "dev", tunName, "nodad"]);
    for (const r of routes)
      n([...(r.includes(":") ? ["-6"] : []), "route", "add", r, "dev", tunName]);
    for (const c of ["all", tunName])
      execFileSync("ip", ["netns", "exec", ns, "sysctl", "-qw", `net.ipv4.conf.${c}.rp_filter=0`]);
    if (decoder !== null) {
      d = await EbpfDecoder.load(decoder);
      cgroup = join(cgroup2Root() ?? "/sys/fs/cgroup", `${ns}-rs`);
      mkdirSync(cgroup, { recursive: true });
      d.attachCgroup(cgroup);
      d.attachTc(tunName, ns);
    }
  } catch (e) {
    close();
    throw e;
  }
  const inNs = (argv: readonly string[]): string[] => ["ip", "netns", "exec", ns, ...argv];
  return {
    ns,
    tun,
    decoder: d,
    // Into the cgroup before `ip netns exec`, which remounts /sys.
    serverArgv: (argv) =>
      cgroup === null
        ? inNs(argv)
        : ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...inNs(argv)],
    close,
  };
}
