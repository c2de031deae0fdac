import {
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import {
  clientNsName,
  deleteNamespace,
  listToasimNamespaces,
  removeRootAddress,
  serverNsName,
} from "../tun/topology.js";
import { RuntimeError, RuntimeErrorCode } from "./errors.js";

/**
 * The registry of instances on this machine: one record per instance in
 * /run/toasim (who owns it, its namespaces, what it put into the root
 * namespace, its control socket), so that other processes find it (`toasim
 * stats`, `exec`, `down`) and what a killed owner left can be removed.
 */

/** Where instances are recorded, and where `toasim down` finds what a killed one left. */
export const STATE_DIR = "/run/toasim";

const ID = /^[A-Za-z0-9_]{1,32}$/;

export interface InstanceState {
  readonly pid: number;
  readonly clientNs: string;
  /** null: the server side is the root namespace, holding rootAddresses on its lo. */
  readonly serverNs: string | null;
  readonly rootAddresses?: readonly string[];
  /** ISO 8601. */
  readonly startedAt: string;
  /** The owner's start time (/proc/PID/stat field 22), so a reused pid is not taken for it. */
  readonly pidStart?: number;
  readonly [extra: string]: unknown;
}

export interface StateEntry {
  readonly id: string;
  readonly state: InstanceState;
}

/**
 * Records this process as the owner of instance `id` before anything of it
 * exists: cleanupStale() in another process takes a toasim namespace
 * without a live owner for a leftover, and must not take one being set up.
 * Refuses an id a live process owns, and a second instance with its
 * server side in the root namespace.
 */
export function claimInstance(id: string, state: InstanceState): void {
  const states = listStates();
  const owner = states.find((e) => e.id === id);
  if (owner !== undefined && ownerAlive(owner.state)) {
    throw new RuntimeError(
      RuntimeErrorCode.instanceExists,
      `instance ${id} belongs to running process ${owner.state.pid}`,
    );
  }
  const rootOwner = states.find((e) => e.state.serverNs === null && ownerAlive(e.state));
  if (state.serverNs === null && rootOwner !== undefined) {
    throw new RuntimeError(
      RuntimeErrorCode.instanceExists,
      `the root namespace is already the server side of instance ${rootOwner.id} (process ${rootOwner.state.pid}): one at a time`,
    );
  }
  writeState(id, state);
}

function statePath(id: string): string {
  if (!ID.test(id)) {
    throw new RuntimeError(RuntimeErrorCode.stateFailed, `instance id ${JSON.stringify(id)}`);
  }
  return join(STATE_DIR, `${id}.json`);
}

/** Start time in clock ticks of a running process, null if it is gone or a zombie. */
function processStart(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const st = fields[0];
  if (st === undefined || st === "Z" || st === "X" || st === "x") return null;
  const start = Number(fields[19]);
  return Number.isFinite(start) ? start : null;
}

/** Whether the process that wrote `state` is still the one running under its pid. */
export function ownerAlive(state: InstanceState): boolean {
  if (!Number.isInteger(state.pid) || state.pid <= 0) return false;
  const start = processStart(state.pid);
  if (start === null) return false;
  return state.pidStart === undefined || state.pidStart === start;
}

/**
 * Writes /run/toasim/<id>.json (folder mode 0700, file 0600) by rename, so
 * a reader never sees half a file. Fills in pidStart from /proc when absent.
 */
export function writeState(id: string, state: InstanceState): void {
  const path = statePath(id);
  const start = state.pidStart ?? processStart(state.pid);
  const record: InstanceState = start === null ? state : { ...state, pidStart: start };
  try {
    mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });
    chmodSync(STATE_DIR, 0o700);
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    renameSync(tmp, path);
  } catch (e) {
    throw new RuntimeError(
      RuntimeErrorCode.stateFailed,
      `write state ${path}: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
}

/**
 * Every state record. A file that does not parse gets pid 0 (an unknown
 * owner, so cleanupStale() removes it with its namespaces).
 */
export function listStates(): StateEntry[] {
  let names: string[];
  try {
    names = readdirSync(STATE_DIR);
  } catch {
    return [];
  }
  const entries: StateEntry[] = [];
  for (const name of names) {
    const id = name.endsWith(".json") ? name.slice(0, -5) : null;
    if (id === null || !ID.test(id)) continue;
    let state: InstanceState;
    try {
      const raw = JSON.parse(readFileSync(join(STATE_DIR, name), "utf8")) as Partial<InstanceState>;
      state = {
        ...raw,
        pid: typeof raw.pid === "number" ? raw.pid : 0,
        clientNs: typeof raw.clientNs === "string" ? raw.clientNs : clientNsName(id),
        serverNs:
          raw.serverNs === null || typeof raw.serverNs === "string"
            ? raw.serverNs
            : serverNsName(id),
        startedAt: typeof raw.startedAt === "string" ? raw.startedAt : "",
      };
    } catch {
      state = { pid: 0, clientNs: clientNsName(id), serverNs: serverNsName(id), startedAt: "" };
    }
    entries.push({ id, state });
  }
  return entries;
}

export function removeState(id: string): void {
  rmSync(statePath(id), { force: true });
}

/**
 * Removes what dead instances left: every toasim-* namespace whose owner
 * (per its state file) is not running, or that has no state file, with the
 * processes in it; then the state files of dead owners, and the RS
 * addresses they put into the root namespace. Instances whose owner runs
 * are left alone, so this is safe while other instances work.
 */
export function cleanupStale(): { removed: string[]; removedStates: string[] } {
  // Namespaces before states: a live instance writes its state before its
  // namespaces, so any namespace seen here has its state file visible below.
  const namespaces = listToasimNamespaces();
  const states = listStates();
  const live = new Set<string>();
  for (const { state } of states) {
    if (ownerAlive(state)) {
      live.add(state.clientNs);
      if (state.serverNs !== null) live.add(state.serverNs);
    }
  }
  const removed: string[] = [];
  const errors: unknown[] = [];
  for (const ns of namespaces) {
    if (live.has(ns)) continue;
    try {
      deleteNamespace(ns);
      removed.push(ns);
    } catch (e) {
      errors.push(e);
    }
  }
  const removedStates: string[] = [];
  for (const { id, state } of states) {
    if (ownerAlive(state)) continue;
    // Its tun-r and routes went with its process; addresses on lo stay.
    if (state.serverNs === null) {
      for (const addr of state.rootAddresses ?? []) {
        try {
          removeRootAddress(addr);
        } catch (e) {
          errors.push(e);
        }
      }
    }
    removeState(id);
    removedStates.push(id);
  }
  if (errors[0] !== undefined) throw errors[0];
  return { removed, removedStates };
}
