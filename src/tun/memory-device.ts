import type { TunDevice } from "./device.js";
import { TunError, TunErrorCode } from "./errors.js";

export interface MemoryTunOptions {
  /**
   * How many written packets `written` may hold before write() returns
   * false, as a kernel TUN does when its queue is full. Unlimited when absent.
   */
  readonly capacity?: number;
}

/**
 * The in-memory TunDevice (wireguard-go's test double): the gateway's unit
 * tests inject packets and inspect what it wrote, without root. Packets are
 * copied both ways, so a caller reusing its buffer (as the gateway does)
 * cannot change what was queued or recorded. Allocation here is fine: it is
 * never on a real hot path.
 */
export class MemoryTun implements TunDevice {
  readonly fd = -1;
  /** Copies of the packets written, oldest first; tests may empty it to make room. */
  readonly written: Uint8Array[] = [];
  readonly #queue: Uint8Array[] = [];
  readonly #capacity: number;
  #closed = false;

  constructor(
    readonly name = "mem0",
    opts: MemoryTunOptions = {},
  ) {
    const cap = opts.capacity ?? Number.POSITIVE_INFINITY;
    if (!(cap >= 0)) {
      throw new TunError(TunErrorCode.invalidArgument, `MemoryTun ${name}: capacity ${cap}`);
    }
    this.#capacity = cap;
  }

  /** Queues a copy of `packet` for a later read(). */
  inject(packet: Uint8Array): void {
    if (this.#closed) throw this.closedError("inject into");
    // read() returns 0 for "nothing waiting"; a real TUN never yields an empty packet.
    if (packet.length === 0) {
      throw new TunError(TunErrorCode.invalidArgument, `inject into ${this.name}: empty packet`);
    }
    this.#queue.push(packet.slice());
  }

  /** Packets injected and not read yet. */
  get pending(): number {
    return this.#queue.length;
  }

  /**
   * Reads the oldest injected packet. One longer than buf is cut to
   * buf.length, the rest lost, as a read from a kernel TUN behaves.
   */
  read(buf: Uint8Array): number {
    if (this.#closed) throw this.closedError("read");
    const p = this.#queue.shift();
    if (p === undefined) return 0;
    const n = Math.min(p.length, buf.length);
    buf.set(n === p.length ? p : p.subarray(0, n));
    return n;
  }

  write(buf: Uint8Array, len: number): boolean {
    if (this.#closed) throw this.closedError("write");
    if (!(len >= 0 && len <= buf.length)) {
      throw new TunError(
        TunErrorCode.invalidArgument,
        `write ${this.name}: length ${len} outside a buffer of ${buf.length} bytes`,
      );
    }
    if (this.written.length >= this.#capacity) return false;
    this.written.push(buf.slice(0, len));
    return true;
  }

  /** Returns the written packets and forgets them (frees capacity). */
  drain(): Uint8Array[] {
    return this.written.splice(0, this.written.length);
  }

  close(): void {
    this.#closed = true;
    this.#queue.length = 0;
  }

  private closedError(what: string): TunError {
    return new TunError(TunErrorCode.closed, `${what} ${this.name}: device is closed`);
  }
}
