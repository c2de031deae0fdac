import { readFileSync } from "node:fs";
import { constants } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { describeErrno, Errno, errnoName } from "../../src/errno.js";
import { READER_ERRNOS, readerErrnoName } from "../../src/sockopt/errors.js";

const ROOT = resolve(import.meta.dirname, "../..");
const nodeErrno = constants.errno as Record<string, number | undefined>;

describe("the one errno table", () => {
  it("agrees with Node's own table (libuv's, from the C library) on every number", () => {
    for (const [name, n] of Object.entries(Errno)) expect(nodeErrno[name], name).toBe(n);
    expect(Object.keys(Errno).length).toBeGreaterThan(30);
  });

  it("names and describes by number, and says so when a number is not in it", () => {
    expect(errnoName(105)).toBe("ENOBUFS");
    expect(describeErrno(16)).toBe("EBUSY (Device or resource busy)");
    expect(describeErrno(4095)).toBe("errno 4095");
    expect(errnoName(4095)).toBeNull();
  });

  it("the readers name the same errnos in TypeScript, C and Python; others are ERRNO_<n>", () => {
    const c = readFileSync(join(ROOT, "examples/c/reader-server.c"), "utf8");
    const fromC = [...c.matchAll(/case (E[A-Z0-9]+): return "\1";/g)].map((m) => m[1]);
    const py = readFileSync(join(ROOT, "examples/python/reader_server.py"), "utf8");
    const table = /ERRNO_NAMES = \{([^}]*)\}/.exec(py)?.[1] ?? "";
    const fromPy = [...table.matchAll(/(\d+): "(E[A-Z0-9]+)"/g)].map((m) => {
      expect(Number(m[1]), m[2]).toBe(nodeErrno[m[2]!]);
      return m[2];
    });
    const ours = [...READER_ERRNOS].sort();
    expect(fromC.sort()).toEqual(ours);
    expect(fromPy.sort()).toEqual(ours);
    expect(readerErrnoName(Errno.ENOPROTOOPT)).toBe("ENOPROTOOPT");
    // In the table, but not a reader's: the readers agree on ERRNO_17.
    expect(readerErrnoName(Errno.EEXIST)).toBe("ERRNO_17");
    expect(readerErrnoName(4095)).toBe("ERRNO_4095");
  });
});
