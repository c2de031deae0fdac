import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KernelTun, TunOffload } from "./device.js";
import { TunError, TunErrorCode } from "./errors.js";
import { inNetns, NETNS_DIR, netnsPath } from "./netns.js";

/**
 * The toasim topology: two network namespaces per instance, each with one
 * TUN device whose fd toasim holds.
 *
 *   toasim-<id>-c: client addresses on lo, VIP ranges routed into tun-c
 *   toasim-<id>-r: RS addresses on lo, the RS range (with the LIP pool) into tun-r
 *
 * Inside a `toasim vm` guest the server side can instead be the root
 * namespace (rsNetns "root"), for decoders that hook only there; the RS
 * addresses it adds to the root's lo are removed again by destroy() and,
 * after a SIGKILL, by the runtime's cleanupStale() (runtime/registry.ts,
 * which also keeps the record of who owns which namespaces).
 *
 * Addresses, links and routes are set with `ip` (iproute2): netlink by hand
 * would be a lot of code for a few dozen calls at start-up. The TUN devices
 * are opened by KernelTun inside the namespaces, so nothing is ever created
 * in the host's namespace.
 */

/**
 * The addresses a topology configures and routes. Their values are the
 * address plan of runtime/defaults.ts (ADDRESS_PLAN); this layer only
 * says what it needs.
 */
export interface TopologyPlan {
  readonly client4: string;
  readonly client6: string;
  /** AnyIP: every address here can be bound in the client namespace. */
  readonly clientRange4: string;
  readonly clientRange6: string;
  readonly vipRange4: string;
  readonly vipRange6: string;
  /** On lo of the server side. */
  readonly rs4: string;
  readonly rs6: string;
  /** Routed into tun-r: the LIP pool lives here. */
  readonly rsRange4: string;
  readonly rsRange6: string;
}

export const CLIENT_TUN = "tun-c";
export const SERVER_TUN = "tun-r";
export const NS_PREFIX = "toasim-";
export interface TopologySpec {
  /** Instance id (newInstanceId()): [A-Za-z0-9_], 1 to 32 characters. */
  readonly id: string;
  readonly plan: TopologyPlan;
  /** More RS addresses for lo in the server namespace, e.g. "192.0.2.11", "2001:db8:5::11". */
  readonly extraRsAddresses?: readonly string[];
  /** MTU of both TUN devices; 1500 when absent. */
  readonly mtu?: number;
  /** Where the server side lives: a namespace of toasim's (the default) or the root namespace. */
  readonly rsNetns?: RsNetns;
  /**
   * Both TUNs with IFF_VNET_HDR and TCP segmentation offload (v4, v6) and
   * partial checksums: the kernel hands TCP super-packets of up to 64 KB
   * and segments those written back. Off when absent.
   */
  readonly offload?: boolean;
}

/** "toasim": a namespace toasim creates; "root": the machine's own (only inside a toasim vm guest). */
export const RS_NETNS = ["toasim", "root"] as const;
export type RsNetns = (typeof RS_NETNS)[number];

/** On the kernel command line of every `toasim vm` guest. */
export const GUEST_MARK = "toasim.guest=1";

export interface Topology {
  readonly id: string;
  readonly clientNs: string;
  /** null: the server side is the root namespace. */
  readonly serverNs: string | null;
  /** The RS addresses added to the root namespace's lo (none unless serverNs is null). */
  readonly rootAddresses: readonly string[];
  readonly clientTun: KernelTun;
  readonly serverTun: KernelTun;
  /**
   * Closes the TUN fds, stops processes left in the namespaces, deletes the
   * namespaces and takes the RS addresses off the root's lo. Idempotent;
   * throws the first failure after trying every step.
   */
  destroy(): void;
}

/** The addresses on lo of the server side: the plan's two, then the extra ones. */
export function serverAddresses(spec: Pick<TopologySpec, "plan" | "extraRsAddresses">): string[] {
  return [spec.plan.rs4, spec.plan.rs6, ...(spec.extraRsAddresses ?? [])];
}

export function newInstanceId(): string {
  return randomBytes(3).toString("hex");
}

export function clientNsName(id: string): string {
  return `${NS_PREFIX}${id}-c`;
}

export function serverNsName(id: string): string {
  return `${NS_PREFIX}${id}-r`;
}

// ---------------------------------------------------------------------------
// Preconditions and the `ip` command

let ipBinary: string | null = null;

/** The path of iproute2's `ip`: PATH first, then the sbin folders a non-login PATH may lack. */
export function ipPath(): string {
  if (ipBinary !== null) return ipBinary;
  const dirs = [
    ...(process.env["PATH"] ?? "").split(":"),
    "/usr/sbin",
    "/sbin",
    "/usr/bin",
    "/bin",
  ];
  for (const dir of dirs) {
    if (dir === "") continue;
    const p = join(dir, "ip");
    try {
      if (statSync(p).isFile()) {
        ipBinary = p;
        return p;
      }
    } catch {
      // not in this folder
    }
  }
  throw new TunError(TunErrorCode.commandFailed, "ip not found in PATH, /usr/sbin or /sbin", null, {
    hint: "install iproute2 (apt-get install iproute2)",
  });
}

/** Runs `ip ARGS`; returns stdout, or throws COMMAND_FAILED with ip's own error line. */
export function runIp(args: readonly string[]): string {
  const ip = ipPath();
  try {
    return execFileSync(ip, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 10_000,
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string; status?: number | null };
    if (err.code === "ENOENT") {
      throw new TunError(TunErrorCode.commandFailed, `run ${ip} (iproute2)`, 2, { cause: e });
    }
    const detail = (err.stderr ?? "").trim().split("\n").join("; ") || err.message;
    throw new TunError(TunErrorCode.commandFailed, `ip ${args.join(" ")}: ${detail}`, null, {
      cause: e,
    });
  }
}

/**
 * argv that runs `cmd` inside the namespace (null: the root namespace, so
 * `cmd` itself): spawn(argv[0], argv.slice(1)).
 */
export function nsExecArgs(ns: string | null, cmd: readonly string[]): string[] {
  if (ns === null) return [...cmd];
  netnsPath(ns);
  return [ipPath(), "netns", "exec", ns, ...cmd];
}

/** `ip` arguments that select the namespace (none for the root namespace). */
export function ipNs(ns: string | null): string[] {
  return ns === null ? [] : ["-n", ns];
}

/**
 * Why the server side cannot be the root namespace here, or null when it can.
 * A host's root namespace may drop what a TUN injects (measured on the
 * machine toasim is developed on: silently, with no counter to show it), and
 * its addresses and routes belong to its owner; a `toasim vm` guest's root
 * namespace is toasim's to use and thrown away at power-off.
 */
export function rootPlacementRefusal(cmdline = kernelCmdline()): string | null {
  if (cmdline.split(/\s+/).includes(GUEST_MARK)) return null;
  return "the server side can be the root network namespace only inside a toasim vm guest (a host's root namespace may silently drop what a TUN injects, and its addresses are not toasim's to change): run it under toasim vm, or keep the default";
}

function kernelCmdline(): string {
  try {
    return readFileSync("/proc/cmdline", "utf8");
  } catch {
    return ""; // no /proc: not a toasim guest either
  }
}

/** Throws NOT_ROOT, NO_TUN_SUPPORT or COMMAND_FAILED when a topology cannot be created here. */
export function checkPreconditions(): void {
  if (process.platform !== "linux") {
    throw new TunError(
      TunErrorCode.noTunSupport,
      `network namespaces and TUN devices need Linux (this is ${process.platform})`,
    );
  }
  if (process.geteuid?.() !== 0) {
    throw new TunError(
      TunErrorCode.notRoot,
      "toasim needs root to create network namespaces and TUN devices",
    );
  }
  if (!existsSync("/dev/net/tun")) {
    throw new TunError(TunErrorCode.noTunSupport, "/dev/net/tun is missing", null, {
      hint: "load the tun module (modprobe tun) or use a kernel built with CONFIG_TUN=y/m",
    });
  }
  runIp(["-V"]);
}

// ---------------------------------------------------------------------------
// Creation

/**
 * Before any TUN exists in the namespace, so that the devices inherit the
 * "default" values. Written to /proc/sys while the thread is switched into
 * the namespace (/proc/sys/net resolves to the opening thread's namespace)
 * rather than by `ip netns exec NS sysctl -w`: no process per namespace, no
 * dependency on procps, and a failure comes back as an errno naming the file.
 */
const SYSCTLS = [
  // Packets from the gateway come from addresses with no route back through
  // the TUN they arrived on (the LIP, the VIP): strict reverse-path filtering
  // would drop them.
  ["net/ipv4/conf/all/rp_filter", "0"],
  ["net/ipv4/conf/default/rp_filter", "0"],
  // A host with devconf_inherit_init_net=1 would pass its own values in.
  ["net/ipv6/conf/all/disable_ipv6", "0"],
  ["net/ipv6/conf/default/disable_ipv6", "0"],
  ["net/ipv6/conf/all/accept_dad", "0"],
  ["net/ipv6/conf/default/accept_dad", "0"],
  // No link-local address on the TUNs and no Router Solicitation read from
  // the fd when they come up: the gateway sees only traffic it is meant for.
  ["net/ipv6/conf/default/addr_gen_mode", "1"],
  ["net/ipv6/conf/default/router_solicitations", "0"],
] as const;

/**
 * Client side only: IPv4 binds to any address of a `local` route (AnyIP),
 * IPv6 does not (EADDRNOTAVAIL on 6.x kernels, measured), so a synthetic
 * client bound to 2001:db8:c::99 needs non-local binds allowed. The local
 * route still decides that replies to it are delivered here.
 */
const CLIENT_SYSCTLS = [["net/ipv6/ip_nonlocal_bind", "1"]] as const;

function setSysctls(ns: string, extra: readonly (readonly [string, string])[]): void {
  inNetns(ns, () => {
    for (const [key, value] of [...SYSCTLS, ...extra]) {
      try {
        writeFileSync(`/proc/sys/${key}`, value);
      } catch (e) {
        const errno = Math.abs((e as NodeJS.ErrnoException).errno ?? 0) || null;
        throw new TunError(
          TunErrorCode.sysctlFailed,
          `sysctl ${key.replaceAll("/", ".")}=${value} in netns ${ns}`,
          errno,
          { cause: e },
        );
      }
    }
  });
}

function prefixed(addr: string): string {
  return addr.includes("/") ? addr : `${addr}/${addr.includes(":") ? 128 : 32}`;
}

function rsAddressArgs(ns: string | null, addr: string): string[] {
  return addr.includes(":")
    ? [...ipNs(ns), "-6", "addr", "add", prefixed(addr), "dev", "lo", "nodad"]
    : [...ipNs(ns), "addr", "add", prefixed(addr), "dev", "lo"];
}

/** Takes an RS address off the root namespace's lo; one already gone is not an error. */
export function removeRootAddress(addr: string): void {
  try {
    runIp([...(addr.includes(":") ? ["-6"] : []), "addr", "del", prefixed(addr), "dev", "lo"]);
  } catch (e) {
    if (!/Cannot assign requested address|No such|not found/i.test(String(e))) throw e;
  }
}

/**
 * Creates the two namespaces and their TUN devices, addresses and routes.
 * On any failure everything created so far is removed before the error is
 * thrown. A process "exit" hook destroys the topology if the owner forgets;
 * after SIGKILL, the runtime's cleanupStale() finds it through the owner's
 * record, which the runtime writes before calling this.
 */
export function createTopology(spec: TopologySpec): Topology {
  const id = spec.id;
  if (!/^[A-Za-z0-9_]{1,32}$/.test(id)) {
    throw new TunError(
      TunErrorCode.invalidArgument,
      `topology id ${JSON.stringify(id)}: use 1 to 32 letters, digits or _`,
    );
  }
  const mtu = spec.mtu ?? 1500;
  if (!Number.isInteger(mtu) || mtu < 1280 || mtu > 65535) {
    throw new TunError(
      TunErrorCode.invalidArgument,
      `topology ${id}: MTU ${mtu} (IPv6 needs at least 1280)`,
    );
  }
  checkPreconditions();
  const root = spec.rsNetns === "root";
  if (root) {
    const why = rootPlacementRefusal();
    if (why !== null) throw new TunError(TunErrorCode.rootNetnsRefused, why);
  }
  const clientNs = clientNsName(id);
  const serverNs = root ? null : serverNsName(id);
  const A = spec.plan;
  const rsAddresses = serverAddresses(spec);
  for (const ns of serverNs === null ? [clientNs] : [clientNs, serverNs]) {
    if (existsSync(netnsPath(ns))) {
      throw new TunError(TunErrorCode.topologyExists, `netns ${ns} already exists`, null, {
        hint: "another toasim instance uses this id, or run toasim down to remove leftovers",
      });
    }
  }

  const parts: Parts = { namespaces: [], tuns: [], rootAddresses: [] };
  try {
    for (const ns of serverNs === null ? [clientNs] : [clientNs, serverNs]) {
      runIp(["netns", "add", ns]);
      parts.namespaces.push(ns);
      runIp(["-n", ns, "link", "set", "lo", "up"]);
      setSysctls(ns, ns === clientNs ? CLIENT_SYSCTLS : []);
    }
    const vnetHdr = spec.offload === true;
    const clientTun = KernelTun.open(CLIENT_TUN, { netns: clientNs, vnetHdr });
    parts.tuns.push(clientTun);
    // The root namespace keeps its own sysctls: the guest's defaults suit.
    const serverTun = KernelTun.open(SERVER_TUN, {
      ...(serverNs === null ? {} : { netns: serverNs }),
      vnetHdr,
    });
    parts.tuns.push(serverTun);
    if (vnetHdr) {
      // ECN on super-packets where the kernel takes it back; the rest is required.
      const required = TunOffload.csum | TunOffload.tso4 | TunOffload.tso6;
      for (const t of [clientTun, serverTun]) t.setOffload(required, [TunOffload.tsoEcn]);
    }

    const c = ["-n", clientNs];
    runIp([...c, "link", "set", CLIENT_TUN, "mtu", String(mtu), "up"]);
    runIp([...c, "addr", "add", `${A.client4}/32`, "dev", "lo"]);
    runIp([...c, "-6", "addr", "add", `${A.client6}/128`, "dev", "lo", "nodad"]);
    runIp([...c, "route", "add", "local", A.clientRange4, "dev", "lo"]);
    runIp([...c, "-6", "route", "add", "local", A.clientRange6, "dev", "lo"]);
    runIp([...c, "route", "add", A.vipRange4, "dev", CLIENT_TUN, "src", A.client4]);
    runIp([...c, "-6", "route", "add", A.vipRange6, "dev", CLIENT_TUN, "src", A.client6]);

    const r = ipNs(serverNs);
    runIp([...r, "link", "set", SERVER_TUN, "mtu", String(mtu), "up"]);
    for (const addr of rsAddresses) {
      runIp(rsAddressArgs(serverNs, addr));
      if (serverNs === null) parts.rootAddresses.push(addr);
    }
    // Routes through tun-r go away with it, in the root namespace too.
    runIp([...r, "route", "add", A.rsRange4, "dev", SERVER_TUN]);
    runIp([...r, "-6", "route", "add", A.rsRange6, "dev", SERVER_TUN]);

    let destroyed = false;
    const onExit = (): void => {
      try {
        topology.destroy();
      } catch {
        // exiting anyway; cleanupStale() gets what is left
      }
    };
    const topology: Topology = {
      id,
      clientNs,
      serverNs,
      rootAddresses: [...parts.rootAddresses],
      clientTun,
      serverTun,
      destroy() {
        if (destroyed) return;
        destroyed = true;
        process.removeListener("exit", onExit);
        const errors = teardown(parts);
        if (errors[0] !== undefined) throw errors[0];
      },
    };
    process.on("exit", onExit);
    return topology;
  } catch (e) {
    teardown(parts);
    throw e;
  }
}

interface Parts {
  readonly namespaces: string[];
  readonly tuns: KernelTun[];
  /** RS addresses added to the root namespace's lo (rsNetns "root"). */
  readonly rootAddresses: string[];
}

/** Undoes what `parts` records, in an order that works; returns the failures. */
function teardown(parts: Parts): unknown[] {
  const errors: unknown[] = [];
  // fds first: an open TUN fd keeps its namespace alive after `ip netns del`.
  for (const tun of parts.tuns.splice(0)) {
    try {
      tun.close();
    } catch (e) {
      errors.push(e);
    }
  }
  for (const ns of parts.namespaces.splice(0)) {
    try {
      deleteNamespace(ns);
    } catch (e) {
      errors.push(e);
    }
  }
  for (const addr of parts.rootAddresses.splice(0)) {
    try {
      removeRootAddress(addr);
    } catch (e) {
      errors.push(e);
    }
  }
  return errors;
}

// ---------------------------------------------------------------------------
// Teardown of namespaces

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread: teardown is synchronous so that it can run in an "exit" hook. */
function sleepMs(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

function nsPids(ns: string): number[] {
  let out: string;
  try {
    out = runIp(["netns", "pids", ns]);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const line of out.split("\n")) {
    const pid = Number.parseInt(line, 10);
    // Never ourselves: a thread of ours could be switched in for a moment.
    if (pid > 0 && pid !== process.pid) pids.push(pid);
  }
  return pids;
}

function signal(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

/**
 * Stops the processes in `ns` (SIGTERM, then SIGKILL after half a second)
 * and deletes it. A namespace that does not exist is not an error.
 */
export function deleteNamespace(ns: string): void {
  if (!existsSync(netnsPath(ns))) return;
  let pids = nsPids(ns);
  if (pids.length > 0) {
    signal(pids, "SIGTERM");
    // A dead process leaves the namespace at once, even while still a zombie.
    for (let waited = 0; waited < 500 && pids.length > 0; waited += 25) {
      sleepMs(25);
      pids = nsPids(ns);
    }
    signal(pids, "SIGKILL");
  }
  runIp(["netns", "del", ns]);
}

/** Names of the toasim namespaces present (`ip netns list`, read from its folder). */
export function listToasimNamespaces(): string[] {
  try {
    return readdirSync(NETNS_DIR).filter((n) => n.startsWith(NS_PREFIX));
  } catch {
    return [];
  }
}
