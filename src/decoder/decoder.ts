import { closeSync, existsSync, openSync } from "node:fs";
import { cgroup2Root } from "../cgroup2.js";
import { Errno, errnoName } from "../errno.js";
import { type Prefix, parsePrefix } from "../option-codec/address.js";
import { CodecError } from "../option-codec/errors.js";
import { inNetns } from "../tun/netns.js";
import { decoderObject, KERNEL_BTF } from "./build.js";
import { DecoderError, DecoderErrorCode } from "./errors.js";
import { type LibBpf, libbpf, type Ptr, TcLayout } from "./libbpf.js";
import {
  DEFAULT_SETTINGS,
  type DecoderSettings,
  encodeCfg,
  FLOW_EXPIRES_OFFSET,
  FLOW_KEY_SIZE,
  FLOW_SIZE,
  lpmKey,
  STAT_NAMES,
  type StatName,
} from "./maps.js";

/**
 * The eBPF decoder, loaded and attached by this process: cgroup programs
 * (sockops, getpeername4/6, getsockopt) through links that die with the
 * process, and the tc ingress program on the server-side device, detached
 * by close() (and gone anyway with a namespace that is deleted). One object
 * per decoder: the maps are shared by all its attachments.
 */

const PROGRAMS = {
  sockops: "toasim_sockops",
  getpeername4: "toasim_getpeername4",
  getpeername6: "toasim_getpeername6",
  getsockopt: "toasim_getsockopt",
  ingress: "toasim_ingress",
} as const;

const MAPS = ["cfg", "trust4", "trust6", "stats", "uoa_flows", "syn_flows", "swept"] as const;
type MapName = (typeof MAPS)[number];

export interface DecoderStats {
  readonly counters: Record<StatName, number>;
  /** TCP sockets holding a client now (storage created minus freed). */
  readonly sockEntries: number;
  /** UOA flows not yet expired. */
  readonly flowEntries: number;
  /** SYN-carried TOAs waiting for their handshake, not yet expired. */
  readonly synEntries: number;
}

export interface TcAttachment {
  readonly ifname: string;
  readonly netns: string | null;
  readonly ifindex: number;
  readonly handle: number;
  readonly priority: number;
}

/**
 * Why the decoder cannot run here, or null. Each reason says what is
 * missing; checked before anything is loaded, so nothing is left half done.
 */
export function decoderUnavailable(btf = KERNEL_BTF): string | null {
  if (process.platform !== "linux") return `eBPF needs Linux (this is ${process.platform})`;
  if (process.geteuid?.() !== 0)
    return "not root: loading BPF programs needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON";
  if (!existsSync(btf))
    return `the kernel has no BTF (${btf} is missing; a kernel built with CONFIG_DEBUG_INFO_BTF is needed)`;
  if (cgroup2Root() === null)
    return "no cgroup v2 is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)";
  return null;
}

function fail(code: DecoderErrorCode, what: string, errno: number): DecoderError {
  const e = Math.abs(errno);
  return new DecoderError(code, `${what}: ${errnoText(e)}`, e);
}

/** What an errno means for a BPF call, where the bare name would not say. */
const BPF_HINTS: Readonly<Partial<Record<number, string>>> = {
  [Errno.EPERM]: "EPERM (not permitted: root, and no lockdown, are needed)",
  [Errno.ENODEV]: "ENODEV (no such device)",
  [Errno.ENOSYS]: "ENOSYS (the kernel has no BPF syscall: CONFIG_BPF_SYSCALL)",
  [Errno.EOPNOTSUPP]: "EOPNOTSUPP (this kernel lacks the program type or attach point)",
};

function errnoText(e: number): string {
  return BPF_HINTS[e] ?? errnoName(e) ?? `errno ${e}`;
}

export class EbpfDecoder {
  readonly #b: LibBpf;
  #obj: Ptr | null;
  readonly #maps: Record<MapName, number>;
  readonly #links: Ptr[] = [];
  readonly #tc: TcAttachment[] = [];

  readonly maps: DecoderMaps;

  private constructor(b: LibBpf, obj: Ptr, maps: Record<MapName, number>) {
    this.#b = b;
    this.#obj = obj;
    this.#maps = maps;
    this.maps = new DecoderMaps(b, maps);
  }

  /** Compiles (first time), loads and configures the programs; attaches nothing yet. */
  static async load(
    settings: DecoderSettings = DEFAULT_SETTINGS,
    btf = KERNEL_BTF,
  ): Promise<EbpfDecoder> {
    const why = decoderUnavailable(btf);
    if (why !== null) throw new DecoderError(DecoderErrorCode.unavailable, why);
    const cfg = encodeCfg(settings);
    const ranges = parseTrusted(settings.trusted);
    const path = await decoderObject(btf);
    const b = libbpf();
    let obj = openObject(b, path);
    if (b.load(obj) < 0) {
      const errno = b.errno();
      b.close(obj);
      // Again with the verifier's log, to say which program and why.
      obj = openObject(b, path);
      const logs = Object.values(PROGRAMS).map((name) => {
        const prog = b.programByName(obj, name);
        const buf = new Uint8Array(4 * 1024 * 1024);
        if (prog !== null) {
          b.setLogLevel(prog, 1);
          b.setLogBuf(prog, buf, buf.length);
        }
        return { name, buf };
      });
      b.load(obj);
      b.close(obj);
      const text = logs
        .map(({ name, buf }) => {
          const end = buf.indexOf(0);
          const log = Buffer.from(buf.subarray(0, end < 0 ? buf.length : end)).toString();
          return log.trim() === ""
            ? ""
            : `${name}:\n${log.trim().split("\n").slice(-12).join("\n")}`;
        })
        .filter((t) => t !== "")
        .join("\n");
      throw new DecoderError(
        DecoderErrorCode.loadFailed,
        `the kernel refused the decoder's BPF programs (${errnoText(errno)})${text ? `; the verifier said:\n${text}` : ""}`,
        errno,
      );
    }
    const maps = {} as Record<MapName, number>;
    for (const m of MAPS) {
      const fd = b.mapFdByName(obj, m);
      if (fd < 0) {
        b.close(obj);
        throw fail(DecoderErrorCode.loadFailed, `map ${m} of the BPF object`, fd);
      }
      maps[m] = fd;
    }
    const d = new EbpfDecoder(b, obj, maps);
    try {
      d.#update("cfg", new Uint8Array(4), cfg);
      for (const r of ranges) d.#update(r.map, lpmKey(r.prefix, r.addr), new Uint8Array([1]));
    } catch (e) {
      d.close();
      throw e;
    }
    return d;
  }

  #update(map: MapName, key: Uint8Array, value: Uint8Array): void {
    const rc = this.#b.mapUpdate(this.#maps[map], key, value, 0);
    if (rc < 0) throw fail(DecoderErrorCode.loadFailed, `update map ${map}`, rc);
  }

  #program(name: string): Ptr {
    if (this.#obj === null)
      throw new DecoderError(DecoderErrorCode.notLoaded, "the decoder is closed");
    const p = this.#b.programByName(this.#obj, name);
    if (p === null) throw new DecoderError(DecoderErrorCode.loadFailed, `no program ${name}`);
    return p;
  }

  /** Attaches the socket programs to a cgroup v2 folder (the server's). */
  attachCgroup(dir: string): void {
    let fd: number;
    try {
      fd = openSync(dir, "r");
    } catch (e) {
      throw new DecoderError(
        DecoderErrorCode.attachFailed,
        `open cgroup ${dir}: ${(e as Error).message}`,
        null,
        { cause: e },
      );
    }
    try {
      for (const name of [
        PROGRAMS.sockops,
        PROGRAMS.getpeername4,
        PROGRAMS.getpeername6,
        PROGRAMS.getsockopt,
      ]) {
        const link = this.#b.attachCgroup(this.#program(name), fd);
        if (link === null) {
          throw fail(
            DecoderErrorCode.attachFailed,
            `attach ${name} to cgroup ${dir}`,
            this.#b.errno(),
          );
        }
        this.#links.push(link);
      }
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Attaches the UOA program to the ingress of `ifname` (in `netns`, or in
   * this thread's namespace). The netlink socket libbpf uses belongs to the
   * namespace it is opened in, so the calls run switched into it.
   */
  attachTc(ifname: string, netns: string | null = null): TcAttachment {
    const b = this.#b;
    const progFd = b.programFd(this.#program(PROGRAMS.ingress));
    const attach = (): TcAttachment => {
      const ifindex = b.ifNameToIndex(ifname);
      if (ifindex === 0)
        throw new DecoderError(
          DecoderErrorCode.attachFailed,
          `no device ${ifname}${netns ? ` in netns ${netns}` : ""}`,
        );
      const hook = tcHook(ifindex);
      const rc = b.tcHookCreate(hook);
      if (rc < 0 && rc !== -Errno.EEXIST)
        throw fail(DecoderErrorCode.attachFailed, `create the clsact qdisc on ${ifname}`, rc);
      const opts = new Uint8Array(TcLayout.optsSize);
      const dv = new DataView(opts.buffer);
      dv.setBigUint64(0, BigInt(TcLayout.optsSize), true);
      dv.setInt32(8, progFd, true);
      const rc2 = b.tcAttach(hook, opts);
      if (rc2 < 0) throw fail(DecoderErrorCode.attachFailed, `attach tc ingress on ${ifname}`, rc2);
      return {
        ifname,
        netns,
        ifindex,
        handle: dv.getUint32(20, true),
        priority: dv.getUint32(24, true),
      };
    };
    const t = netns === null ? attach() : inNetns(netns, attach);
    this.#tc.push(t);
    return t;
  }

  /** Counters summed over CPUs, and the gauges. */
  stats(): DecoderStats {
    return this.maps.stats();
  }

  /** Deletes expired UOA flows and SYN TOAs; returns how many. */
  sweep(): { flows: number; syns: number } {
    return this.maps.sweep();
  }

  /**
   * Pins the cgroup links and the maps under `dir` (bpffs), so they outlive
   * this process: `toasim decoder load`. Unpinning (rm) detaches.
   */
  pin(dir: string): void {
    this.#links.forEach((link, i) => {
      const rc = this.#b.linkPin(link, `${dir}/link${i}`);
      if (rc < 0) throw fail(DecoderErrorCode.attachFailed, `pin link in ${dir}`, rc);
    });
    for (const m of PINNED_MAPS) {
      const rc = this.#b.objPin(this.#maps[m], `${dir}/${m}`);
      if (rc < 0) throw fail(DecoderErrorCode.attachFailed, `pin map ${m} in ${dir}`, rc);
    }
  }

  get tcAttachments(): readonly TcAttachment[] {
    return this.#tc;
  }

  /** Detaches everything and frees the object; idempotent. */
  close(): void {
    for (const link of this.#links.splice(0)) this.#b.linkDestroy(link);
    for (const t of this.#tc.splice(0)) detachTc(t);
    this.#closeObject();
  }

  /**
   * Frees this process's hold on the object and leaves the attachments to
   * their pins and tc filters (after pin()): `toasim decoder load` exits
   * with the decoder running.
   */
  release(): void {
    for (const link of this.#links.splice(0)) {
      this.#b.linkDisconnect(link);
      this.#b.linkDestroy(link);
    }
    this.#tc.splice(0);
    this.#closeObject();
  }

  #closeObject(): void {
    if (this.#obj !== null) {
      this.#b.close(this.#obj);
      this.#obj = null;
    }
  }
}

/** Removes a tc filter attachTc() made; a missing device or namespace means it is gone already. */
export function detachTc(t: TcAttachment): void {
  const b = libbpf();
  const detach = (): void => {
    const opts = new Uint8Array(TcLayout.optsSize);
    const dv = new DataView(opts.buffer);
    dv.setBigUint64(0, BigInt(TcLayout.optsSize), true);
    dv.setUint32(20, t.handle, true);
    dv.setUint32(24, t.priority, true);
    b.tcDetach(tcHook(t.ifindex), opts);
  };
  try {
    if (t.netns === null) detach();
    else if (existsSync(`/var/run/netns/${t.netns}`)) inNetns(t.netns, detach);
  } catch {
    // The device or its namespace is gone, and the filter with it.
  }
}

function openObject(b: LibBpf, path: string): Ptr {
  const obj = b.openFile(path);
  if (obj === null) throw fail(DecoderErrorCode.loadFailed, `open BPF object ${path}`, b.errno());
  return obj;
}

function tcHook(ifindex: number): Uint8Array {
  const hook = new Uint8Array(TcLayout.hookSize);
  const dv = new DataView(hook.buffer);
  dv.setBigUint64(0, BigInt(TcLayout.hookSize), true);
  dv.setInt32(8, ifindex, true);
  dv.setInt32(12, TcLayout.BPF_TC_INGRESS, true);
  return hook;
}

interface Range {
  readonly map: "trust4" | "trust6";
  readonly prefix: number;
  readonly addr: Uint8Array;
}

/** CIDR text -> LPM keys; "any" needs none (the cfg flag says so). */
export function parseTrusted(spec: readonly string[] | "any"): Range[] {
  if (spec === "any") return [];
  return spec.map((text) => {
    let p: Prefix;
    try {
      p = parsePrefix(text);
    } catch (e) {
      throw new DecoderError(
        DecoderErrorCode.badInput,
        `trusted range "${text}": ${e instanceof CodecError ? "not an address range (ADDR/LEN)" : String(e)}`,
      );
    }
    return { map: p.addr.length === 4 ? "trust4" : "trust6", prefix: p.length, addr: p.addr };
  });
}

/** The maps user space reads: counters, the flow tables and the sweep counts. */
export const PINNED_MAPS = ["stats", "uoa_flows", "syn_flows", "swept"] as const;
type PinnedMap = (typeof PINNED_MAPS)[number];

/**
 * Reading the decoder's maps, by file descriptor: the loading process's
 * own, or ones opened from pins (bpf_obj_get) by `toasim decoder stats`.
 */
export class DecoderMaps {
  readonly #b: LibBpf;
  readonly #fds: Record<PinnedMap, number>;
  readonly #ncpu: number;

  constructor(b: LibBpf, fds: Record<PinnedMap, number>) {
    this.#b = b;
    this.#fds = fds;
    this.#ncpu = Math.max(1, b.numCpus());
  }

  /** The maps pinned under `dir` by `toasim decoder load`. */
  static fromPins(dir: string): DecoderMaps {
    const b = libbpf();
    const fds = {} as Record<PinnedMap, number>;
    for (const m of PINNED_MAPS) {
      const fd = b.objGet(`${dir}/${m}`);
      if (fd < 0) {
        for (const f of Object.values(fds)) b.close2(f);
        throw fail(DecoderErrorCode.notLoaded, `no decoder pinned at ${dir} (map ${m})`, fd);
      }
      fds[m] = fd;
    }
    return new DecoderMaps(b, fds);
  }

  close(): void {
    for (const f of Object.values(this.#fds)) this.#b.close2(f);
  }

  /** Counters summed over CPUs, and the gauges. */
  stats(): DecoderStats {
    const per = new Uint8Array(8 * this.#ncpu);
    const dv = new DataView(per.buffer);
    const key = new Uint8Array(4);
    const counters = {} as Record<StatName, number>;
    STAT_NAMES.forEach((name, i) => {
      new DataView(key.buffer).setUint32(0, i, true);
      per.fill(0);
      this.#b.mapLookup(this.#fds.stats, key, per);
      let sum = 0n;
      for (let c = 0; c < this.#ncpu; c++) sum += dv.getBigUint64(8 * c, true);
      counters[name] = Number(sum);
    });
    counters.expired += this.#swept(0);
    return {
      counters,
      sockEntries: counters.sock_alloc - counters.sock_free,
      flowEntries: this.#live("uoa_flows", false),
      synEntries: this.#live("syn_flows", false),
    };
  }

  /** Deletes expired UOA flows and SYN TOAs; returns how many. */
  sweep(): { flows: number; syns: number } {
    const flows = this.#live("uoa_flows", true);
    const syns = this.#live("syn_flows", true);
    return { flows, syns };
  }

  #swept(i: number): number {
    const key = new Uint8Array(4);
    new DataView(key.buffer).setUint32(0, i, true);
    const v = new Uint8Array(8);
    this.#b.mapLookup(this.#fds.swept, key, v);
    return Number(new DataView(v.buffer).getBigUint64(0, true));
  }

  /**
   * Walks a flow map: returns the live entries, or with `remove` deletes
   * the expired ones and returns how many (added to the swept counter).
   */
  #live(map: "uoa_flows" | "syn_flows", remove: boolean): number {
    const fd = this.#fds[map];
    const now = process.hrtime.bigint(); // CLOCK_MONOTONIC, as bpf_ktime_get_ns()
    let key: Uint8Array | null = null;
    const next = new Uint8Array(FLOW_KEY_SIZE);
    const value = new Uint8Array(FLOW_SIZE);
    const expired: Uint8Array[] = [];
    let live = 0;
    for (let guard = 0; guard < 1_000_000; guard++) {
      if (this.#b.mapNextKey(fd, key, next) < 0) break;
      key = next.slice();
      if (this.#b.mapLookup(fd, key, value) < 0) continue;
      const expires = new DataView(value.buffer).getBigUint64(FLOW_EXPIRES_OFFSET, true);
      if (expires > now) live++;
      else expired.push(key);
    }
    if (!remove) return live;
    for (const k of expired) this.#b.mapDelete(fd, k);
    if (expired.length > 0) {
      const i = map === "uoa_flows" ? 0 : 1;
      const key4 = new Uint8Array(4);
      new DataView(key4.buffer).setUint32(0, i, true);
      const v = new Uint8Array(8);
      new DataView(v.buffer).setBigUint64(0, BigInt(this.#swept(i) + expired.length), true);
      this.#b.mapUpdate(this.#fds.swept, key4, v, 0);
    }
    return expired.length;
  }
}
