import { readFileSync } from "node:fs";

/**
 * Where cgroup v2 is mounted, read from mountinfo; the one lookup for the
 * eBPF decoder's cgroups and `exec --as`. A mount at or below
 * /sys/fs/cgroup is preferred: nft resolves cgroup paths only there, and
 * hybrid hosts also mount cgroup2 elsewhere (/sys/fs/cgroup/unified is
 * under it; a private mount for a container runtime may not be).
 */

export const CGROUP_FS_ROOT = "/sys/fs/cgroup";

/** The cgroup2 mount points in a mountinfo text, in its order. */
export function cgroup2Mounts(mountinfo: string): string[] {
  const mounts: string[] = [];
  for (const line of mountinfo.split("\n")) {
    // Optional fields come before " - ", so the fstype is after it.
    const [left, right] = line.split(" - ");
    if (!right?.startsWith("cgroup2 ")) continue;
    const field = left?.split(" ")[4];
    // mountinfo escapes space, tab, newline and backslash as octal.
    if (field)
      mounts.push(
        field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))),
      );
  }
  return mounts;
}

export const underCgroupFs = (mount: string): boolean =>
  mount === CGROUP_FS_ROOT || mount.startsWith(`${CGROUP_FS_ROOT}/`);

/** The cgroup2 mount to use, or null when there is none (or mountinfo cannot be read). */
export function cgroup2Root(mountinfo?: string): string | null {
  let text = mountinfo;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/mountinfo", "utf8");
    } catch {
      return null;
    }
  }
  const mounts = cgroup2Mounts(text);
  return mounts.find(underCgroupFs) ?? mounts[0] ?? null;
}
