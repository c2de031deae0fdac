import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CGROUP_FS_ROOT, cgroup2Root, underCgroupFs } from "../cgroup2.js";
import { TunError, TunErrorCode } from "./errors.js";
import { netnsPath } from "./netns.js";

/**
 * `toasim exec client --as ADDR`: any program, unmodified, appears to come
 * from ADDR. The program runs in a cgroup of its own; in the client
 * namespace an nftables rule marks the packets of that cgroup's sockets on
 * output and source-NATs them to ADDR on postrouting (conntrack undoes it
 * on the replies). The socket match is not allowed in NAT chains, hence
 * the mark. nft resolves cgroup paths below /sys/fs/cgroup, and must run
 * with the host's /sys (nsenter --net, not `ip netns exec`, which remounts it).
 */

const MARK = "0x7a5a0001";

/** The cgroup2 mount point, which must be at or below /sys/fs/cgroup. */
export function cgroup2Mount(): string {
  const mount = cgroup2Root();
  if (mount !== null && underCgroupFs(mount)) return mount;
  throw new TunError(
    TunErrorCode.commandFailed,
    "--as needs cgroup v2 mounted at or below /sys/fs/cgroup",
    null,
    { hint: "mount -t cgroup2 none /sys/fs/cgroup/unified" },
  );
}

export interface ClientSource {
  /** argv that runs `cmd` in the client namespace inside the cgroup. */
  readonly argv: string[];
  /** Removes the rule and the cgroup; idempotent. */
  cleanup(): void;
}

function nft(ns: string, script: string): void {
  try {
    execFileSync("nsenter", [`--net=${netnsPath(ns)}`, "nft", "-f", "-"], {
      input: script,
      stdio: ["pipe", "ignore", "pipe"],
    });
  } catch (e) {
    const err = (e as { stderr?: Buffer }).stderr?.toString().trim() ?? String(e);
    throw new TunError(TunErrorCode.commandFailed, `nft in netns ${ns}: ${err}`, null, {
      hint: "install nftables (toasim doctor --install)",
    });
  }
}

// Several programs of one process may each have their own source address.
let sequence = 0;

export function clientSource(
  id: string,
  clientNs: string,
  addr: string,
  ipArgv: readonly string[],
): ClientSource {
  const mount = cgroup2Mount();
  const seq = sequence++;
  const name = `toasim-${id}-as-${process.pid}-${seq}`;
  const dir = join(mount, name);
  const rel = join(mount.slice(CGROUP_FS_ROOT.length + 1), name);
  const table = `toasim_as_${process.pid}_${seq}`;
  const family = addr.includes(":") ? "ip6" : "ip";
  mkdirSync(dir, { recursive: true });
  let done = false;
  const cleanup = () => {
    if (done) return;
    done = true;
    try {
      nft(clientNs, `delete table inet ${table}\n`);
    } catch {
      // The namespace may be gone with its instance, rule included.
    }
    removeCgroup(dir);
  };
  try {
    nft(
      clientNs,
      `table inet ${table} {
  chain out {
    type filter hook output priority 0;
    socket cgroupv2 level 1 "${rel}" meta mark set ${MARK}
  }
  chain post {
    type nat hook postrouting priority srcnat;
    meta mark ${MARK} snat ${family} to ${addr}
  }
}
`,
    );
  } catch (e) {
    cleanup();
    throw e;
  }
  // The shell joins the cgroup, then becomes the command: everything it starts stays inside.
  const argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, ...ipArgv];
  return { argv, cleanup };
}

function removeCgroup(dir: string): void {
  try {
    // Kill what is left (cgroup.kill, Linux 5.14+), then remove the empty group.
    writeFileSync(join(dir, "cgroup.kill"), "1");
  } catch {
    // Older kernels: the group is empty once the command has exited.
  }
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch {
      execFileSync("sleep", ["0.02"]);
    }
  }
}

/** Removes cgroups left by a killed `exec --as` of instances that are gone. */
export function cleanupClientSources(liveIds: readonly string[]): string[] {
  let mount: string;
  try {
    mount = cgroup2Mount();
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of readdirSync(mount)) {
    const m = /^toasim-([A-Za-z0-9_]+)-as-\d+(-\d+)?$/.exec(name);
    if (!m || liveIds.includes(m[1]!)) continue;
    removeCgroup(join(mount, name));
    removed.push(name);
  }
  return removed;
}
