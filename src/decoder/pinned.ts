import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import {
  DecoderMaps,
  type DecoderStats,
  detachTc,
  EbpfDecoder,
  type TcAttachment,
} from "./decoder.js";
import { DecoderError, DecoderErrorCode } from "./errors.js";
import type { DecoderSettings } from "./maps.js";

/**
 * `toasim decoder load|unload`: a decoder that outlives the command, for
 * servers run outside toasim. Its cgroup links and maps are pinned under
 * /sys/fs/bpf/toasim/NAME (removing the pins detaches the programs); what
 * unload needs besides (the tc filter's handle, where it sits) is written
 * to /run/toasim/decoder-NAME.json.
 */

export const BPFFS = "/sys/fs/bpf";
export const PIN_ROOT = `${BPFFS}/toasim`;
const STATE_ROOT = "/run/toasim";

export interface PinnedDecoder {
  readonly name: string;
  readonly cgroup: string;
  readonly tc: TcAttachment | null;
  readonly settings: DecoderSettings;
  readonly loadedAt: string;
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(name))
    throw new DecoderError(
      DecoderErrorCode.badInput,
      `decoder name "${name}": use 1-32 of A-Z a-z 0-9 _ -`,
    );
}

const pinDir = (name: string): string => join(PIN_ROOT, name);
const stateFile = (name: string): string => join(STATE_ROOT, `decoder-${name}.json`);

function bpffsMounted(): boolean {
  try {
    return readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .some((l) => l.split(" ")[4] === BPFFS && / - bpf /.test(l));
  } catch {
    return false;
  }
}

/** Pins need a bpf filesystem at /sys/fs/bpf: mounted when missing. */
function ensureBpffs(): void {
  if (bpffsMounted()) return;
  try {
    execFileSync("mount", ["-t", "bpf", "bpf", BPFFS], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    const err = (e as { stderr?: Buffer }).stderr?.toString().trim() ?? String(e);
    throw new DecoderError(
      DecoderErrorCode.unavailable,
      `mount the bpf filesystem on ${BPFFS}: ${err}`,
    );
  }
}

export async function loadPinned(
  name: string,
  settings: DecoderSettings,
  cgroup: string,
  tc: { readonly ifname: string; readonly netns: string | null } | null,
): Promise<PinnedDecoder> {
  checkName(name);
  if (existsSync(stateFile(name)) || existsSync(pinDir(name))) {
    throw new DecoderError(
      DecoderErrorCode.badInput,
      `a decoder named ${name} is loaded already (toasim decoder unload --name ${name})`,
    );
  }
  if (!existsSync(cgroup))
    throw new DecoderError(DecoderErrorCode.badInput, `cgroup ${cgroup} does not exist`);
  const d = await EbpfDecoder.load(settings);
  let pinned = false;
  try {
    ensureBpffs();
    d.attachCgroup(cgroup);
    const t = tc === null ? null : d.attachTc(tc.ifname, tc.netns);
    mkdirSync(pinDir(name), { recursive: true });
    pinned = true;
    d.pin(pinDir(name));
    const state: PinnedDecoder = {
      name,
      cgroup,
      tc: t,
      settings,
      loadedAt: new Date().toISOString(),
    };
    mkdirSync(STATE_ROOT, { recursive: true });
    writeFileSync(`${stateFile(name)}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
    renameSync(`${stateFile(name)}.tmp`, stateFile(name));
    d.release();
    return state;
  } catch (e) {
    d.close();
    if (pinned) removePins(name);
    throw e;
  }
}

function removePins(name: string): void {
  const dir = pinDir(name);
  try {
    for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
    rmdirSync(dir);
  } catch {
    // Not there.
  }
  // The shared folder goes with the last decoder pinned in it.
  try {
    if (readdirSync(PIN_ROOT).length === 0) rmdirSync(PIN_ROOT);
  } catch {
    // Not there, or another decoder still pinned.
  }
}

export function listPinned(): PinnedDecoder[] {
  let names: string[] = [];
  try {
    names = readdirSync(STATE_ROOT);
  } catch {
    return [];
  }
  const out: PinnedDecoder[] = [];
  for (const f of names) {
    if (!/^decoder-.+\.json$/.test(f)) continue;
    try {
      out.push(JSON.parse(readFileSync(join(STATE_ROOT, f), "utf8")) as PinnedDecoder);
    } catch {
      // A broken state file is left for unload --name to remove.
    }
  }
  return out;
}

export function unloadPinned(name: string): PinnedDecoder | null {
  checkName(name);
  let state: PinnedDecoder | null = null;
  try {
    state = JSON.parse(readFileSync(stateFile(name), "utf8")) as PinnedDecoder;
  } catch {
    state = null;
  }
  if (state === null && !existsSync(pinDir(name))) {
    throw new DecoderError(DecoderErrorCode.notLoaded, `no decoder named ${name} is loaded`);
  }
  // The pins are the links' last holders: removing them detaches.
  removePins(name);
  if (state?.tc) detachTc(state.tc);
  rmSync(stateFile(name), { force: true });
  return state;
}

export function pinnedStats(name: string): DecoderStats {
  checkName(name);
  const maps = DecoderMaps.fromPins(pinDir(name));
  try {
    // Nobody sweeps a pinned decoder's flow tables but this.
    maps.sweep();
    return maps.stats();
  } finally {
    maps.close();
  }
}
