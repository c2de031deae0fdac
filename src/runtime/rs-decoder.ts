import { mkdirSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cgroup2Root } from "../cgroup2.js";
import { type DecoderStats, EbpfDecoder } from "../decoder/decoder.js";
import { DecoderError, DecoderErrorCode } from "../decoder/errors.js";
import type { DecoderSettings } from "../decoder/maps.js";
import { SERVER_TUN } from "../tun/topology.js";

/**
 * An instance's eBPF decoder: the socket programs on a cgroup of its own
 * (`toasim exec rs` runs servers in it), the UOA program on tun-r in the
 * server namespace, and a sweep of expired flows every few seconds. All of
 * it goes with close(), or with the process: the cgroup attachments are
 * links held by this process, tun-r goes with its namespace, and `toasim
 * down` removes the cgroup folder a killed instance left.
 */
export interface RsDecoder {
  readonly cgroup: string;
  stats(): DecoderStats;
  close(): void;
}

const SWEEP_MS = 2000;

export function rsCgroupName(id: string): string {
  return `toasim-${id}-rs`;
}

export async function startRsDecoder(
  id: string,
  serverNs: string | null,
  settings: DecoderSettings,
): Promise<RsDecoder> {
  const root = cgroup2Root();
  if (root === null) {
    throw new DecoderError(
      DecoderErrorCode.unavailable,
      "no cgroup v2 is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)",
    );
  }
  const dir = join(root, rsCgroupName(id));
  const d = await EbpfDecoder.load(settings);
  let timer: NodeJS.Timeout | null = null;
  const close = (): void => {
    if (timer !== null) clearInterval(timer);
    timer = null;
    d.close();
    removeCgroup(dir);
  };
  try {
    mkdirSync(dir, { recursive: true });
    d.attachCgroup(dir);
    d.attachTc(SERVER_TUN, serverNs);
  } catch (e) {
    close();
    throw e;
  }
  timer = setInterval(() => d.sweep(), SWEEP_MS);
  timer.unref();
  return { cgroup: dir, stats: () => d.stats(), close };
}

/** Ends what is still in the group (cgroup.kill, 5.14+), then removes it. */
export function removeCgroup(dir: string): void {
  try {
    writeFileSync(join(dir, "cgroup.kill"), "1");
  } catch {
    // Gone already, or an older kernel: empty once its processes exited.
  }
  const until = Date.now() + 2000;
  for (;;) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || Date.now() > until) return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

/** Removes the decoder cgroups of instances that are gone (a SIGKILL leaves them). */
export function cleanupRsCgroups(liveIds: readonly string[]): string[] {
  const root = cgroup2Root();
  if (root === null) return [];
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  for (const name of names) {
    const m = /^toasim-([A-Za-z0-9_]+)-rs$/.exec(name);
    if (m === null || liveIds.includes(m[1]!)) continue;
    removeCgroup(join(root, name));
    removed.push(name);
  }
  return removed;
}
