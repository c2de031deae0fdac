import { resolve } from "node:path";
import { parseScriptSpec } from "../craft/script-spec.js";
import type { DecoderStats } from "../decoder/decoder.js";
import { GatewayError } from "../fullnat-sim/errors.js";
import type { StatName } from "../fullnat-sim/stats.js";
import { runProcess } from "../run-process.js";
import type { InstanceControl, ScriptProgress } from "../runtime/control.js";
import { type ClientSource, clientSource } from "../tun/client-source.js";
import { nsExecArgs } from "../tun/topology.js";
import { clientAddress } from "./addresses.js";
import { ToasimError, ToasimErrorCode } from "./errors.js";
import type { FaultsSpec, ServiceInfo } from "./options.js";
import { faultConfig } from "./options.js";
import { type ExitStatus, execFailure, NsProcess } from "./process.js";

/** Checks a scripted-client spec; a bad value is a ToasimError naming it (`spec.sources`). */
export function checkClientSpec(spec: unknown): void {
  try {
    parseScriptSpec(spec, "spec");
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    const m = /^([^:]+): (.*)$/s.exec(e.message);
    throw new ToasimError(ToasimErrorCode.badOption, m?.[2] ?? e.message, m?.[1] ?? "spec", {
      cause: e,
    });
  }
}

/** The two sides of an instance: the clients' namespace and the real servers'. */
export type Side = "client" | "rs";

export interface SpawnOptions {
  /**
   * Client side only: the source address the program's connections use
   * (any of 198.51.100.0/24 or 2001:db8:c::/64), without changing the
   * program. Needs cgroup v2 and nftables.
   */
  readonly as?: string;
  /** Environment of the program (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

export interface ProcessOptions extends SpawnOptions {
  /** inherit: the program uses this process's terminal (its output is then not kept). */
  readonly stdio?: "pipe" | "inherit";
}

export interface ExecOptions extends SpawnOptions {
  /** Written to its stdin, which is then closed. */
  readonly input?: string;
  /** SIGKILLed after this long (default: no limit); the result says timedOut. */
  readonly timeoutMs?: number;
}

export interface ExecResult extends ExitStatus {
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export type GatewayStats = Readonly<Record<StatName, number>>;

export interface CaptureOptions {
  /** client: what the client namespace sends and gets; server (the default): what the servers see. */
  readonly side?: "client" | "server";
  /** The pcap file (raw IP link type). */
  readonly path: string;
  /** Stop after this many packets (default: until stop()). */
  readonly count?: number;
}

/** A pcap being written; stop() closes it. */
export interface Capture extends AsyncDisposable {
  readonly side: "client" | "server";
  /** The absolute path of the file. */
  readonly path: string;
  /** Resolves with the packet count once the file is closed. */
  readonly done: Promise<number>;
  /** Closes the file; resolves with the packet count. */
  stop(): Promise<number>;
}

/** What an instance is: the same in the process that runs it and in one that attached. */
export interface InstanceDescription {
  readonly id: string;
  readonly clientNamespace: string;
  /** null: the server side is the root namespace (rsNetns "root", inside a toasim vm guest). */
  readonly serverNamespace: string | null;
  /** The profile's name (null for an instance started by an older toasim). */
  readonly profile: string | null;
  /** What decodes for servers started with spawn("rs", ...): "ebpf", a module's name, or "none". */
  readonly decoder: string;
  readonly services: readonly ServiceInfo[];
  /** The cgroup the eBPF decoder serves (servers spawned on the rs side join it), or null. */
  readonly rsCgroup: string | null;
  /** The control socket other processes reach it through. */
  readonly socket: string;
}

/**
 * A running gateway instance: from up() (this process runs it, and stop()
 * removes it) or from attach() (another process runs it; stop() asks that
 * process to stop it, and disposing of the handle only stops the programs
 * it spawned). Programs run on either side with exec() and spawn(); the
 * rest are the controls of `toasim stats`, `capture`, `fault`, `restart`.
 */
export class Instance implements AsyncDisposable, InstanceDescription {
  declare readonly id: string;
  declare readonly clientNamespace: string;
  declare readonly serverNamespace: string | null;
  declare readonly profile: string | null;
  declare readonly decoder: string;
  declare readonly services: readonly ServiceInfo[];
  declare readonly rsCgroup: string | null;
  declare readonly socket: string;
  /** True when this process runs the instance (up()); false when attached. */
  readonly owned: boolean;
  private readonly processes = new Set<NsProcess>();
  private stopping: Promise<void> | null = null;

  constructor(
    d: InstanceDescription,
    private readonly control: InstanceControl,
    owned: boolean,
    private readonly onStop: () => Promise<void>,
  ) {
    Object.assign(this, d);
    this.owned = owned;
  }

  private checkRunning(): void {
    if (this.stopping !== null)
      throw new ToasimError(ToasimErrorCode.stopped, `instance ${this.id} has stopped`);
  }

  /** argv that runs `command` on `side`, and what to undo after it. */
  private wrap(
    side: Side,
    command: readonly string[],
    opts: SpawnOptions,
  ): { argv: string[]; source: ClientSource | null } {
    this.checkRunning();
    if (side !== "client" && side !== "rs")
      throw new ToasimError(
        ToasimErrorCode.badOption,
        `${JSON.stringify(side)} is not client or rs`,
        "side",
      );
    if (
      !Array.isArray(command) ||
      command.length === 0 ||
      command.some((w) => typeof w !== "string")
    )
      throw new ToasimError(ToasimErrorCode.badOption, "a non-empty list of strings", "command");
    if (opts.as !== undefined && side !== "client")
      throw new ToasimError(ToasimErrorCode.badOption, "applies to the client side only", "as");
    const ns = side === "client" ? this.clientNamespace : this.serverNamespace;
    let argv = nsExecArgs(ns, command);
    // Servers join the decoder's cgroup before `ip netns exec` (which remounts /sys).
    if (side === "rs" && this.rsCgroup !== null)
      argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', this.rsCgroup, ...argv];
    let source: ClientSource | null = null;
    if (opts.as !== undefined) {
      source = clientSource(this.id, this.clientNamespace, clientAddress(opts.as, "as"), argv);
      argv = source.argv;
    }
    return { argv, source };
  }

  /**
   * Runs a program on one side to its end: exit code, output. A program
   * that cannot be started (not installed) is a ToasimError SPAWN_FAILED,
   * not an exit code.
   */
  async exec(side: Side, command: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const { argv, source } = this.wrap(side, command, opts);
    try {
      const r = await runProcess(argv, {
        keepAll: true,
        ...(opts.input !== undefined ? { input: opts.input } : {}),
        ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
        ...(opts.env !== undefined ? { env: opts.env } : {}),
        ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      });
      const failed =
        r.spawnError?.message ?? (r.code !== 0 ? (execFailure(r.stderr) ?? undefined) : undefined);
      if (failed !== undefined)
        throw new ToasimError(ToasimErrorCode.spawnFailed, `cannot run ${command[0]}: ${failed}`);
      return {
        code: r.code,
        signal: r.signal,
        stdout: r.stdout,
        stderr: r.stderr,
        timedOut: r.timedOut,
      };
    } finally {
      source?.cleanup();
    }
  }

  /**
   * Starts a program on one side and returns at once (a server, a
   * long-running client). stop() on the instance, or on the program, ends it.
   */
  spawn(side: Side, command: readonly string[], opts: ProcessOptions = {}): NsProcess {
    const { argv, source } = this.wrap(side, command, opts);
    let p: NsProcess | null = null;
    p = new NsProcess(
      argv,
      command,
      () => {
        source?.cleanup();
        if (p !== null) this.processes.delete(p);
      },
      {
        ...(opts.stdio !== undefined ? { stdio: opts.stdio } : {}),
        ...(opts.env !== undefined ? { env: opts.env } : {}),
        ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      },
    );
    if (p.exitStatus === null) this.processes.add(p);
    return p;
  }

  /** The gateway's counters (connections, packets and bytes each way, carriers, drops, faults). */
  async stats(): Promise<GatewayStats> {
    this.checkRunning();
    return this.control.stats();
  }

  /** The eBPF decoder's counters, in the module's toa_stats/uoa_stats rows; null without it. */
  async decoderStats(): Promise<DecoderStats | null> {
    this.checkRunning();
    return this.control.decoderStats();
  }

  /** Starts a pcap of one side; resolves once the file is open. */
  async capture(opts: CaptureOptions): Promise<Capture> {
    this.checkRunning();
    const side = opts.side ?? "server";
    if (side !== "client" && side !== "server")
      throw new ToasimError(
        ToasimErrorCode.badOption,
        `${JSON.stringify(side)} is not client or server`,
        "side",
      );
    const count = opts.count ?? 0;
    if (!Number.isInteger(count) || count < 0)
      throw new ToasimError(ToasimErrorCode.badOption, "a whole number of packets", "count");
    // The instance may run in another process, with another working folder.
    const session = await this.control.capture(side, resolve(opts.path), count);
    const stop = async () => {
      session.stop();
      return session.done;
    };
    return {
      side,
      path: session.path,
      done: session.done,
      stop,
      [Symbol.asyncDispose]: async () => {
        await stop();
      },
    };
  }

  /** Replaces the fault rules (as the `faults` option of up()); null switches faults off. */
  async setFaults(faults: FaultsSpec | null): Promise<{ rules: number }> {
    this.checkRunning();
    // Checked here, so a bad rule is a ToasimError naming it, whoever runs the gateway.
    faultConfig(faults);
    return this.control.setFaults(faults ?? null);
  }

  async clearFaults(): Promise<void> {
    await this.setFaults(null);
  }

  /** A gateway restart: every connection forgotten, new ones work at once. */
  restart(): Promise<void> {
    this.checkRunning();
    return this.control.restart();
  }

  /**
   * Scripted clients (`toasim client run`): connections toasim plays itself,
   * from many source addresses, checked against the reader server's reports
   * (the spec: docs/faults.md). Resolves with the results when every
   * connection has finished, or when `signal` aborts the run.
   */
  async runClients(
    spec: Readonly<Record<string, unknown>>,
    opts: { readonly onProgress?: (p: ScriptProgress) => void; readonly signal?: AbortSignal } = {},
  ): Promise<ScriptProgress> {
    this.checkRunning();
    checkClientSpec(spec);
    const run = await this.control.script(spec, opts.onProgress ?? (() => {}));
    const stop = () => run.stop();
    opts.signal?.addEventListener("abort", stop, { once: true });
    try {
      return await run.done;
    } finally {
      opts.signal?.removeEventListener("abort", stop);
    }
  }

  /** Stops what this handle spawned, then the instance (attached: asks its owner to). */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all([...this.processes].map((p) => p.stop("SIGTERM", 2000)));
      await this.onStop();
    })();
    return this.stopping;
  }

  /**
   * `await using gw = await up(...)`: an owned instance is stopped at the
   * end of the scope, whatever happened in it; an attached one only loses
   * the programs this handle spawned.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.owned) {
      await this.stop();
      return;
    }
    await Promise.all([...this.processes].map((p) => p.stop("SIGTERM", 2000)));
  }
}
