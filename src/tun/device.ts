import { Errno } from "../errno.js";
import { TunError, TunErrorCode } from "./errors.js";
import { type Libc, libc, Sys } from "./libc.js";
import { inNetns } from "./netns.js";

/**
 * What the gateway sees of a TUN device (wireguard-go's `tun.Device`, cut
 * down to one packet per call): non-blocking, one whole IP packet per read or
 * write, no packet-information header. KernelTun is the real device,
 * MemoryTun the test double.
 */
export interface TunDevice {
  readonly name: string;
  /** Reads one packet into buf; returns its length, or 0 when none is waiting (EAGAIN). */
  read(buf: Uint8Array): number;
  /**
   * Writes buf[0..len); returns false when the kernel queue is full (EAGAIN),
   * throws TunError otherwise.
   */
  write(buf: Uint8Array, len: number): boolean;
  /** The file descriptor to poll, or -1 for in-memory devices. */
  readonly fd: number;
  close(): void;
}

/** The largest IP packet; a read buffer this big never truncates. */
export const MAX_PACKET = 65535;

export interface KernelTunOptions {
  /** Named network namespace (iproute2's /var/run/netns/NAME) to create the device in. */
  readonly netns?: string;
  /** IFF_MULTI_QUEUE: open() again with the same name attaches another queue. */
  readonly multiQueue?: boolean;
  /**
   * IFF_VNET_HDR: every read and write starts with a virtio_net_hdr
   * (option-codec/vnet-hdr.ts), in little-endian order (TUNSETVNETLE).
   * Offloads are then asked for with setOffload().
   */
  readonly vnetHdr?: boolean;
}

/** TUNSETOFFLOAD's flags: what user space accepts from the kernel, and may hand it. */
export const TunOffload = {
  csum: 0x01,
  tso4: 0x02,
  tso6: 0x04,
  tsoEcn: 0x08,
  ufo: 0x10,
  uso4: 0x20,
  uso6: 0x40,
} as const;

const NO_TUN_HINT = "load the tun module (modprobe tun) or use a kernel built with CONFIG_TUN=y/m";

/**
 * A Linux TUN device (IFF_TUN | IFF_NO_PI) on a non-blocking fd. The device
 * exists as long as the fd is open (it is not made persistent), so a crash
 * cannot leave it behind.
 */
export class KernelTun implements TunDevice {
  #fd: number;
  readonly #c: Libc;

  private constructor(
    readonly name: string,
    fd: number,
  ) {
    this.#fd = fd;
    this.#c = libc();
  }

  get fd(): number {
    return this.#fd;
  }

  /**
   * Creates (or, multi-queue, attaches to) the device `name` in `opts.netns`
   * or in the calling thread's namespace.
   *
   * The namespace of a TUN device is fixed when /dev/net/tun is opened, not
   * at TUNSETIFF, so only the open() runs switched into the namespace; the
   * fd is then used from any thread (fds are process-wide).
   */
  static open(name: string, opts: KernelTunOptions = {}): KernelTun {
    if (Buffer.byteLength(name) >= Sys.IFNAMSIZ) {
      throw new TunError(
        TunErrorCode.invalidArgument,
        `TUN device name ${JSON.stringify(name)} is longer than ${Sys.IFNAMSIZ - 1} bytes`,
      );
    }
    const c = libc();
    const where = opts.netns === undefined ? "" : ` in netns ${opts.netns}`;
    // errno is read inside the switched region: switching back is another
    // libc call and must not be what we report.
    const openTun = (): number => {
      const fd = c.open("/dev/net/tun", Sys.O_RDWR | Sys.O_NONBLOCK | Sys.O_CLOEXEC);
      return fd < 0 ? -c.errno() : fd;
    };
    const fd = opts.netns === undefined ? openTun() : inNetns(opts.netns, openTun);
    if (fd < 0) {
      const errno = -fd;
      // ENOENT: no device node; ENODEV/ENXIO: a node but no driver behind it.
      const missing = errno === Errno.ENOENT || errno === Errno.ENODEV || errno === Errno.ENXIO;
      throw new TunError(
        missing ? TunErrorCode.noTunSupport : TunErrorCode.openFailed,
        `open /dev/net/tun${where}`,
        errno,
        missing ? { hint: NO_TUN_HINT } : {},
      );
    }
    const ifr = Buffer.alloc(Sys.IFREQ_SIZE);
    ifr.write(name, 0, Sys.IFNAMSIZ - 1, "utf8");
    ifr.writeUInt16LE(
      Sys.IFF_TUN |
        Sys.IFF_NO_PI |
        (opts.multiQueue === true ? Sys.IFF_MULTI_QUEUE : 0) |
        (opts.vnetHdr === true ? Sys.IFF_VNET_HDR : 0),
      16,
    );
    if (c.ioctl(fd, Sys.TUNSETIFF, ifr) < 0) {
      const errno = c.errno();
      c.close(fd);
      throw new TunError(TunErrorCode.ioctlFailed, `TUNSETIFF ${name}${where}`, errno);
    }
    if (opts.vnetHdr === true) {
      const one = Buffer.alloc(4);
      one.writeInt32LE(1, 0);
      if (c.ioctl(fd, Sys.TUNSETVNETLE, one) < 0) {
        const errno = c.errno();
        c.close(fd);
        throw new TunError(TunErrorCode.ioctlFailed, `TUNSETVNETLE ${name}${where}`, errno);
      }
    }
    // The kernel writes back the name it used (it fills in "tun%d" patterns).
    const end = ifr.indexOf(0);
    return new KernelTun(ifr.toString("utf8", 0, end < 0 || end > 15 ? 15 : end), fd);
  }

  /**
   * Asks for offloads (TunOffload flags) on a device opened with vnetHdr.
   * A kernel that does not know some of them
   * (USO before 6.2) refuses the whole set with EINVAL: each flag in
   * `optional` is then dropped in turn, last first. Returns the set the
   * kernel took.
   */
  setOffload(required: number, optional: readonly number[] = []): number {
    const fd = this.#fd;
    if (fd < 0) throw this.closedError("TUNSETOFFLOAD");
    const extra = [...optional];
    for (;;) {
      const flags = extra.reduce((a, f) => a | f, required);
      if (this.#c.ioctlValue(fd, Sys.TUNSETOFFLOAD, flags) >= 0) return flags;
      const errno = this.#c.errno();
      if (errno !== Errno.EINVAL || extra.length === 0) {
        throw new TunError(
          TunErrorCode.ioctlFailed,
          `TUNSETOFFLOAD 0x${flags.toString(16)} on ${this.name}`,
          errno,
          { hint: "this kernel's TUN does not offload TCP: use --offload off" },
        );
      }
      extra.pop();
    }
  }

  /** Wraps an fd opened elsewhere in this process (a worker receives the number). */
  static fromFd(name: string, fd: number): KernelTun {
    if (!Number.isInteger(fd) || fd < 0) {
      throw new TunError(TunErrorCode.invalidArgument, `bad fd ${fd} for TUN device ${name}`);
    }
    return new KernelTun(name, fd);
  }

  /**
   * Reads one packet into buf (pass MAX_PACKET bytes, or at least the MTU:
   * the kernel drops what does not fit). Returns 0 when none is waiting.
   */
  read(buf: Uint8Array): number {
    const fd = this.#fd;
    if (fd < 0) throw this.closedError("read");
    // A packet longer than buf comes back cut to buf.length (measured).
    const n = this.#c.read(fd, buf, buf.length);
    if (n >= 0) return n;
    const errno = this.#c.errno();
    if (errno === Errno.EAGAIN || errno === Errno.EINTR) return 0;
    throw new TunError(TunErrorCode.readFailed, `read ${this.name}`, errno);
  }

  write(buf: Uint8Array, len: number): boolean {
    const fd = this.#fd;
    if (fd < 0) throw this.closedError("write");
    // The kernel reads len bytes at the view's address: never past its end.
    if (!(len >= 0 && len <= buf.length)) {
      throw new TunError(
        TunErrorCode.invalidArgument,
        `write ${this.name}: length ${len} outside a buffer of ${buf.length} bytes`,
      );
    }
    if (this.#c.write(fd, buf, len) >= 0) return true;
    const errno = this.#c.errno();
    if (errno === Errno.EAGAIN) return false;
    // EINVAL: not an IPv4/IPv6 packet (the first nibble decides); EIO: device down.
    throw new TunError(TunErrorCode.writeFailed, `write ${len} bytes to ${this.name}`, errno);
  }

  /** Closes the fd, which removes the device. Idempotent. */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    if (this.#c.close(fd) < 0) {
      throw new TunError(
        TunErrorCode.closeFailed,
        `close ${this.name} (fd ${fd})`,
        this.#c.errno(),
      );
    }
  }

  private closedError(what: string): TunError {
    return new TunError(TunErrorCode.closed, `${what} ${this.name}: device is closed`);
  }
}

/**
 * poll(2) over a fixed set of fds with one preallocated `struct pollfd`
 * array, so waiting and asking which fds are ready allocates nothing. The
 * pollfd fields are read through Int32Array/Int16Array views of one buffer,
 * which use the machine's byte order as the C struct does. A negative fd
 * (a MemoryTun's -1) is ignored by the kernel and never ready.
 */
export class Poller {
  readonly count: number;
  readonly #bytes: Uint8Array;
  readonly #i32: Int32Array;
  readonly #i16: Int16Array;
  readonly #c: Libc;

  constructor(fds: ArrayLike<number>, events: number = Sys.POLLIN) {
    this.count = fds.length;
    const ab = new ArrayBuffer(Math.max(1, fds.length) * Sys.POLLFD_SIZE);
    this.#bytes = new Uint8Array(ab);
    this.#i32 = new Int32Array(ab);
    this.#i16 = new Int16Array(ab);
    for (let i = 0; i < fds.length; i++) {
      this.#i32[2 * i] = fds[i]!;
      this.#i16[4 * i + 2] = events;
    }
    this.#c = libc();
  }

  /**
   * Waits up to timeoutMs (-1: without limit) for an event; returns how many
   * fds have one, 0 on timeout or when a signal interrupted the wait.
   */
  wait(timeoutMs: number): number {
    const n = this.#c.poll(this.#bytes, this.count, timeoutMs);
    if (n >= 0) return n;
    const errno = this.#c.errno();
    if (errno === Errno.EINTR) return 0;
    throw new TunError(TunErrorCode.pollFailed, `poll ${this.count} fds`, errno);
  }

  /** The revents of the i-th fd after the last wait(). */
  revents(i: number): number {
    return this.#i16[4 * i + 3] ?? 0;
  }

  /** The i-th fd has a packet to read. */
  readable(i: number): boolean {
    return ((this.#i16[4 * i + 3] ?? 0) & Sys.POLLIN) !== 0;
  }

  /** The i-th fd reported POLLERR, POLLHUP or POLLNVAL (closed or broken). */
  failed(i: number): boolean {
    return ((this.#i16[4 * i + 3] ?? 0) & (Sys.POLLERR | Sys.POLLHUP | Sys.POLLNVAL)) !== 0;
  }
}
