import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { remoteControl } from "../runtime/control-client.js";
import { type RunningInstance, startInstance } from "../runtime/instance.js";
import {
  cleanupStale,
  listStates,
  ownerAlive,
  removeState,
  STATE_DIR,
  type StateEntry,
} from "../runtime/registry.js";
import { cleanupRsCgroups } from "../runtime/rs-decoder.js";
import { cleanupClientSources } from "../tun/client-source.js";
import { chooseDecoder } from "./decoder-choice.js";
import { badOption, ToasimError, ToasimErrorCode } from "./errors.js";
import { Instance, type InstanceDescription } from "./instance.js";
import { resolveUpOptions, type ServiceInfo, serviceInfo, type UpOptions } from "./options.js";

export interface UpHooks {
  /** A line worth telling the user (why the eBPF decoder was not loaded). */
  readonly onNote?: (line: string) => void;
}

/** An instance this process runs: it also says how it ended. */
export class LocalInstance extends Instance {
  /** Resolves when the instance has stopped (stop(), or its packet worker died). */
  readonly stopped: Promise<void>;

  constructor(
    d: InstanceDescription,
    private readonly running: RunningInstance,
  ) {
    super(d, running, true, () => running.stop());
    this.stopped = running.stopped;
  }

  /** Why the packet worker died, if it did. */
  failure(): string | null {
    return this.running.failure();
  }
}

/**
 * Starts a gateway instance in this process, as `toasim up` does: a client
 * and a server network namespace joined by TUN devices, the gateway between
 * them, the eBPF decoder for the servers it spawns (unless a module
 * decodes, or options.decoder says none). Needs root. Everything is
 * removed by stop() or `await using`, and by the process's exit; after a
 * SIGKILL, by down().
 */
export async function up(options: UpOptions = {}, hooks: UpHooks = {}): Promise<LocalInstance> {
  const r = resolveUpOptions(options);
  const decoder = chooseDecoder(r.decoder);
  if (decoder.note !== null) hooks.onNote?.(decoder.note);
  const services = r.config.services.map(serviceInfo);
  const inst = await startInstance(r.config, r.extraRs, {
    decoder: decoder.settings,
    ...(r.faults !== null ? { faults: r.faults } : {}),
    rsNetns: r.rsNetns,
    ...(r.offload !== null ? { offload: r.offload } : {}),
    meta: { profile: r.config.profile.name, services, decoderName: decoder.name },
  });
  const d: InstanceDescription = {
    id: inst.info.id,
    clientNamespace: inst.info.clientNs,
    serverNamespace: inst.info.serverNs,
    profile: r.config.profile.name,
    decoder: decoder.name,
    services,
    rsCgroup: inst.info.rsCgroup,
    socket: inst.info.socket,
  };
  return new LocalInstance(d, inst);
}

function describe(e: StateEntry): InstanceDescription {
  const s = e.state;
  const services = Array.isArray(s["services"]) ? (s["services"] as ServiceInfo[]) : [];
  const rsCgroup = typeof s["rsCgroup"] === "string" ? s["rsCgroup"] : null;
  return {
    id: e.id,
    clientNamespace: s.clientNs,
    serverNamespace: s.serverNs,
    profile: typeof s["profile"] === "string" ? s["profile"] : null,
    decoder:
      typeof s["decoderName"] === "string" ? s["decoderName"] : rsCgroup !== null ? "ebpf" : "none",
    services,
    rsCgroup,
    socket: typeof s["socket"] === "string" ? s["socket"] : join(STATE_DIR, `${e.id}.sock`),
  };
}

/** The instances running on this machine (any process's). */
export function instances(): InstanceDescription[] {
  return listStates()
    .filter((e) => ownerAlive(e.state))
    .map(describe);
}

/**
 * A handle on an instance another process runs (`toasim up` in a CI step,
 * say): the one named by `id`, or the only one running.
 */
export function attach(opts: { readonly id?: string } = {}): Instance {
  const live = listStates().filter((e) => ownerAlive(e.state));
  let entry: StateEntry | undefined;
  if (opts.id !== undefined) {
    entry = live.find((x) => x.id === opts.id);
    if (entry === undefined) {
      const ids = live.map((x) => x.id).join(", ");
      throw new ToasimError(
        ToasimErrorCode.noInstance,
        `no running instance ${opts.id}${ids ? ` (running: ${ids})` : ""}`,
      );
    }
  } else {
    if (live.length === 0)
      throw new ToasimError(
        ToasimErrorCode.noInstance,
        "no toasim instance is running (start one with: toasim up)",
      );
    if (live.length > 1)
      badOption(
        "id",
        `${live.length} instances are running (${live.map((x) => x.id).join(", ")}): choose one`,
      );
    entry = live[0]!;
  }
  const d = describe(entry);
  const control = remoteControl(d.socket);
  const state = entry.state;
  return new Instance(d, control, false, async () => {
    await control.stop();
    // Until its owner has removed it all.
    for (let i = 0; i < 200 && ownerAlive(state) && listStates().some((x) => x.id === d.id); i++)
      await new Promise((r) => setTimeout(r, 50));
  });
}

export interface DownResult {
  /** Instances whose owner was asked to stop. */
  readonly stopped: readonly string[];
  /** Namespaces a killed instance had left, removed. */
  readonly removedNamespaces: readonly string[];
  readonly removedStates: readonly string[];
}

/**
 * Stops running instances (all, or `id`) and removes what killed ones left
 * behind: namespaces, state files, cgroups, control sockets. Instances
 * that this process runs are left to their handles.
 */
export async function down(opts: { readonly id?: string } = {}): Promise<DownResult> {
  const targets = listStates().filter((e) => opts.id === undefined || e.id === opts.id);
  const stopped: string[] = [];
  for (const e of targets) {
    // This process's own instances belong to their handles (a SIGTERM would end the caller).
    if (!ownerAlive(e.state) || e.state.pid === process.pid) continue;
    try {
      process.kill(e.state.pid, "SIGTERM");
    } catch {
      // Gone meanwhile.
    }
    const deadline = Date.now() + 5000;
    while (ownerAlive(e.state) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    if (ownerAlive(e.state)) {
      process.kill(e.state.pid, "SIGKILL");
      removeState(e.id);
    }
    stopped.push(e.id);
  }
  const { removed, removedStates } = cleanupStale();
  const live = listStates()
    .filter((e) => ownerAlive(e.state))
    .map((e) => e.id);
  cleanupClientSources(live);
  cleanupRsCgroups(live);
  removeStaleSockets(live);
  return { stopped, removedNamespaces: removed, removedStates };
}

/** Control sockets of instances that are gone (a SIGKILL leaves them). */
function removeStaleSockets(live: readonly string[]): void {
  let names: string[] = [];
  try {
    names = readdirSync(STATE_DIR);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^(.+)\.sock$/.exec(n);
    if (m && !live.includes(m[1]!)) rmSync(join(STATE_DIR, n), { force: true });
  }
}
