import { closeSync, openSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ADDRESS_PLAN } from "../../src/runtime/defaults.js";
import { KernelTun, Poller } from "../../src/tun/device.js";
import { TunError } from "../../src/tun/errors.js";
import { MemoryTun } from "../../src/tun/memory-device.js";
import { createTopology, newInstanceId } from "../../src/tun/topology.js";
import { thrown } from "./helpers/errors.js";

const tunError = (f: () => unknown): TunError => thrown(TunError, f);

const pkt = (...b: number[]): Uint8Array => new Uint8Array(b);

describe("MemoryTun", () => {
  it("reads injected packets in order, then 0 when none is waiting", () => {
    const t = new MemoryTun("tun-c");
    const buf = new Uint8Array(64);
    expect(t.read(buf)).toBe(0);
    t.inject(pkt(0x45, 1, 2));
    t.inject(pkt(0x60, 9));
    expect(t.pending).toBe(2);
    expect(t.read(buf)).toBe(3);
    expect([...buf.subarray(0, 3)]).toEqual([0x45, 1, 2]);
    expect(t.read(buf)).toBe(2);
    expect([...buf.subarray(0, 2)]).toEqual([0x60, 9]);
    expect(t.read(buf)).toBe(0);
    expect(t.fd).toBe(-1);
    expect(t.name).toBe("tun-c");
  });

  it("copies on inject and on write, so reused buffers change nothing queued", () => {
    const t = new MemoryTun();
    const src = pkt(1, 2, 3);
    t.inject(src);
    src[0] = 99;
    const out = new Uint8Array(8);
    t.read(out);
    expect(out[0]).toBe(1);

    const w = pkt(7, 8, 9, 10);
    expect(t.write(w, 3)).toBe(true);
    w[0] = 0;
    expect(t.written).toEqual([pkt(7, 8, 9)]);
  });

  it("cuts a packet longer than the read buffer, as a kernel TUN does", () => {
    const t = new MemoryTun();
    t.inject(pkt(1, 2, 3, 4, 5));
    const small = new Uint8Array(3);
    expect(t.read(small)).toBe(3);
    expect([...small]).toEqual([1, 2, 3]);
    expect(t.read(small)).toBe(0);
  });

  it("returns false from write when full, until the written packets are drained", () => {
    const t = new MemoryTun("tun-r", { capacity: 2 });
    const p = pkt(0x45, 0);
    expect(t.write(p, 2)).toBe(true);
    expect(t.write(p, 2)).toBe(true);
    expect(t.write(p, 2)).toBe(false);
    expect(t.drain()).toHaveLength(2);
    expect(t.written).toHaveLength(0);
    expect(t.write(p, 1)).toBe(true);
    expect(new MemoryTun("x", { capacity: 0 }).write(p, 2)).toBe(false);
  });

  it("refuses a length outside the buffer and use after close", () => {
    const t = new MemoryTun("tun-c");
    expect(tunError(() => t.write(pkt(1, 2), 3)).code).toBe("INVALID_ARGUMENT");
    expect(tunError(() => t.write(pkt(1, 2), -1)).code).toBe("INVALID_ARGUMENT");
    t.close();
    t.close();
    const e = tunError(() => t.read(new Uint8Array(4)));
    expect(e.code).toBe("CLOSED");
    expect(e.message).toBe("read tun-c: device is closed");
    expect(tunError(() => t.write(pkt(1), 1)).code).toBe("CLOSED");
    expect(tunError(() => t.inject(pkt(1))).code).toBe("CLOSED");
  });
});

describe("TunError", () => {
  it("names the call, the object, the errno and its text", () => {
    const e = new TunError("OPEN_FAILED", "open /dev/net/tun in netns toasim-ab12-c", 2);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("TunError");
    expect(e.code).toBe("OPEN_FAILED");
    expect(e.errno).toBe(2);
    expect(e.message).toBe(
      "open /dev/net/tun in netns toasim-ab12-c: ENOENT (No such file or directory)",
    );
  });

  it("adds a hint after the errno, and works without an errno", () => {
    const e = new TunError("NO_TUN_SUPPORT", "open /dev/net/tun", 19, { hint: "modprobe tun" });
    expect(e.message).toBe("open /dev/net/tun: ENODEV (No such device); modprobe tun");
    const n = new TunError("NOT_ROOT", "toasim needs root to create network namespaces");
    expect(n.errno).toBeNull();
    expect(n.message).toBe("toasim needs root to create network namespaces");
    const cause = new Error("inner");
    expect(new TunError("COMMAND_FAILED", "ip", null, { cause }).cause).toBe(cause);
  });
});

// These need koffi but no privileges.
describe("KernelTun and Poller without root", () => {
  it("checks arguments before any system call", () => {
    const e = tunError(() => KernelTun.open("a-name-of-16-byte"));
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(tunError(() => KernelTun.fromFd("tun-c", -1)).code).toBe("INVALID_ARGUMENT");
    expect(tunError(() => createTopology({ id: "bad id", plan: ADDRESS_PLAN })).code).toBe(
      "INVALID_ARGUMENT",
    );
    expect(
      tunError(() => createTopology({ id: newInstanceId(), plan: ADDRESS_PLAN, mtu: 1000 })).code,
    ).toBe("INVALID_ARGUMENT");
    expect(newInstanceId()).toMatch(/^[0-9a-f]{6}$/);
  });

  it("polls fds into a preallocated pollfd array and ignores fd -1", () => {
    const fd = openSync("/dev/null", "r");
    try {
      const p = new Poller([new MemoryTun().fd, fd]);
      expect(p.wait(0)).toBe(1);
      expect(p.readable(0)).toBe(false);
      expect(p.readable(1)).toBe(true);
      expect(p.failed(1)).toBe(false);
      // A KernelTun over /dev/null: end of file reads as "nothing waiting".
      const t = KernelTun.fromFd("null", fd);
      expect(t.read(new Uint8Array(16))).toBe(0);
      expect(tunError(() => t.write(new Uint8Array(2), 3)).code).toBe("INVALID_ARGUMENT");
    } finally {
      closeSync(fd);
    }
  });

  it("reports a bad fd with its errno, and use after close with CLOSED", () => {
    // A number far above any open fd: closing a real one and reusing its
    // number could hit an fd the test runner opened meanwhile.
    const t = KernelTun.fromFd("gone", 999_999);
    const e = tunError(() => t.read(new Uint8Array(16)));
    expect(e.code).toBe("READ_FAILED");
    expect(e.errno).toBe(9);
    expect(e.message).toBe("read gone: EBADF (Bad file descriptor)");
    expect(tunError(() => t.write(new Uint8Array(20), 20)).code).toBe("WRITE_FAILED");
    expect(tunError(() => t.close()).code).toBe("CLOSE_FAILED");
    expect(t.fd).toBe(-1);
    expect(tunError(() => t.read(new Uint8Array(16))).code).toBe("CLOSED");
    t.close();
  });
});
