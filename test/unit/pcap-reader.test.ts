import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TunError } from "../../src/tun/errors.js";
import { readPcap } from "../../src/tun/pcap-reader.js";
import { PcapWriter } from "../../src/tun/pcap-writer.js";

const dir = mkdtempSync(join(tmpdir(), "toasim-pcapr-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("readPcap", () => {
  it("reads back what PcapWriter wrote: every packet, its bytes and time", () => {
    const path = join(dir, "a.pcap");
    const w = new PcapWriter(path);
    const packets = [0, 1, 20, 1500, 65535].map((n, i) =>
      new Uint8Array(n).map((_, j) => (j * 31 + i) & 0xff),
    );
    packets.forEach((p, i) => {
      w.write(p, p.length, 1_700_000_000_000_000 + i * 1234);
    });
    w.close();
    const got = readPcap(path);
    expect(got.map((p) => p.data.length)).toEqual(packets.map((p) => p.length));
    got.forEach((p, i) => {
      expect(Buffer.from(p.data).equals(Buffer.from(packets[i]!))).toBe(true);
      expect(p.timeUs).toBe(1_700_000_000_000_000 + i * 1234);
    });
  });

  it.each([
    ["empty", Buffer.alloc(0)],
    ["no magic", Buffer.alloc(24, 7)],
    [
      "Ethernet link type",
      (() => {
        const b = Buffer.alloc(24);
        b.writeUInt32LE(0xa1b2c3d4, 0);
        b.writeUInt32LE(1, 20);
        return b;
      })(),
    ],
    [
      "a record running past the end",
      (() => {
        const b = Buffer.alloc(24 + 16 + 4);
        b.writeUInt32LE(0xa1b2c3d4, 0);
        b.writeUInt32LE(101, 20);
        b.writeUInt32LE(100, 24 + 8);
        return b;
      })(),
    ],
  ])("refuses %s with a TunError", (_what, bytes) => {
    const path = join(dir, "bad.pcap");
    writeFileSync(path, bytes);
    expect(() => readPcap(path)).toThrow(TunError);
  });
});
