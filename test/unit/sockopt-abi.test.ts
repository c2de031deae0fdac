import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  decodeToaCtl,
  decodeToaLookup,
  decodeTtmPeer,
  decodeUoaDpvsReply,
  decodeUoaDpvsRequest,
  decodeUoaNoaReply,
  decodeUoaNoaRequest,
  encodeToaCtl,
  encodeToaLookup,
  encodeTtmPeer,
  encodeUoaDpvsReply,
  encodeUoaDpvsRequest,
  encodeUoaNoaReply,
  encodeUoaNoaRequest,
  formatIPv6,
  Layout,
  Optname,
  parseIPv4,
  parseIPv6,
  SockoptError,
} from "../../src/sockopt/index.js";
import { commandMissing, itTier } from "../helpers/tier.js";

const GCC_TIER = "unit (gcc for the uapi layout check)";

const HEADER = fileURLToPath(new URL("../../kmod/include/uapi/toasim.h", import.meta.url));
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A host-order u16 as two bytes (af fields of ttm_peer and the DPVS form). */
function host16(v: number): number[] {
  return HOST_LE ? [v & 0xff, v >> 8] : [v >> 8, v & 0xff];
}

function bytes(...parts: (number | number[] | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === "number") out.push(p);
    else out.push(...p);
  }
  return Uint8Array.from(out);
}

const zeros = (n: number): number[] => new Array<number>(n).fill(0);
const v4 = (a: string): number[] => [...parseIPv4(a), ...zeros(12)];
const v6 = (a: string): number[] => [...parseIPv6(a)];
const be16 = (v: number): number[] => [v >> 8, v & 0xff];

function rejects(fn: () => unknown, code: string, got: number | null): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SockoptError);
    expect((e as SockoptError).code).toBe(code);
    expect((e as SockoptError).got).toBe(got);
    return;
  }
  throw new Error(`expected a SockoptError ${code}`);
}

describe("sockopt ABI layouts against byte vectors", () => {
  it("2049 toa_ctl: v4 with toa_set, v6 without", () => {
    const a = bytes(v4("198.51.100.7"), be16(40000), 2, 1);
    expect(a.length).toBe(20);
    expect(decodeToaCtl(a)).toEqual({
      family: 4,
      address: "198.51.100.7",
      port: 40000,
      toaSet: true,
    });
    expect(encodeToaCtl(decodeToaCtl(a))).toEqual(a);

    const b = bytes(v6("2001:db8:c::7"), be16(443), 10, 0);
    expect(decodeToaCtl(b)).toEqual({
      family: 6,
      address: "2001:db8:c::7",
      port: 443,
      toaSet: false,
    });
    expect(encodeToaCtl({ family: 6, address: "2001:db8:c::7", port: 443, toaSet: false })).toEqual(
      b,
    );
  });

  it("4096 toa_lookup: an in6_addr, a port, two bytes of padding", () => {
    const a = bytes(v6("2001:db8:c::9"), be16(0x1234), 0, 0);
    expect(decodeToaLookup(a)).toEqual({ family: 6, address: "2001:db8:c::9", port: 0x1234 });
    expect(encodeToaLookup({ family: 6, address: "2001:db8:c::9", port: 0x1234 })).toEqual(a);
    // Padding is not part of the answer.
    a[18] = 0xff;
    expect(decodeToaLookup(a).port).toBe(0x1234);
    rejects(
      () => encodeToaLookup({ family: 4, address: "192.0.2.1", port: 1 }),
      "INVALID_ARGUMENT",
      null,
    );
  });

  it("1345 ttm_peer: af in host order, then the port, then the address", () => {
    const a = bytes(host16(2), be16(8080), v4("203.0.113.5"));
    expect(decodeTtmPeer(a)).toEqual({ family: 4, address: "203.0.113.5", port: 8080 });
    expect(encodeTtmPeer(decodeTtmPeer(a))).toEqual(a);
    const b = bytes(host16(10), be16(1), v6("::ffff:198.51.100.1"));
    expect(decodeTtmPeer(b)).toEqual({ family: 6, address: "::ffff:198.51.100.1", port: 1 });
    // Network-order af (the unconfirmed variant) is a different number, not AF_INET.
    const swapped = bytes(HOST_LE ? [0, 2] : [2, 0], be16(1), v4("192.0.2.1"));
    rejects(() => decodeTtmPeer(swapped), "BAD_FAMILY", 512);
  });

  it("2048 noa (56 bytes, packed): request in front, reply behind", () => {
    const q = {
      source: { family: 4 as const, address: "192.0.2.100", port: 5001 },
      dest: { family: 4 as const, address: "192.0.2.10", port: 53 },
    };
    const req = bytes(v4("192.0.2.100"), v4("192.0.2.10"), be16(5001), be16(53), 2, zeros(19));
    expect(req.length).toBe(56);
    expect(encodeUoaNoaRequest(q)).toEqual(req);
    expect(decodeUoaNoaRequest(req)).toEqual(q);
    const full = bytes(
      req.subarray(0, 37),
      v6("2001:db8:c::42"),
      be16(33333),
      10, // real_af: AF_INET6
    );
    expect(full.length).toBe(56);
    expect(decodeUoaNoaReply(full)).toEqual({ family: 6, address: "2001:db8:c::42", port: 33333 });
    expect(
      encodeUoaNoaReply({ family: 6, address: "2001:db8:c::42", port: 33333 }, req.slice()),
    ).toEqual(full);
  });

  it("2048 DPVS (58 bytes, packed): host-order af, then the 4-tuple; reply af, addr, port", () => {
    const q = {
      source: { family: 6 as const, address: "2001:db8:f::100", port: 6000 },
      dest: { family: 6 as const, address: "2001:db8:5::10", port: 5353 },
    };
    const req = bytes(
      host16(10),
      v6("2001:db8:f::100"),
      v6("2001:db8:5::10"),
      be16(6000),
      be16(5353),
      zeros(20),
    );
    expect(req.length).toBe(58);
    expect(encodeUoaDpvsRequest(q)).toEqual(req);
    expect(decodeUoaDpvsRequest(req)).toEqual(q);
    const full = bytes(req.subarray(0, 38), host16(2), v4("198.51.100.9"), be16(40001));
    expect(full.length).toBe(58);
    expect(decodeUoaDpvsReply(full)).toEqual({ family: 4, address: "198.51.100.9", port: 40001 });
    expect(
      encodeUoaDpvsReply({ family: 4, address: "198.51.100.9", port: 40001 }, req.slice()),
    ).toEqual(full);
  });

  it("a zero reply (the kernel's answer before it fills anything) is a bad family, not 0.0.0.0", () => {
    rejects(() => decodeToaCtl(new Uint8Array(20)), "BAD_FAMILY", 0);
    rejects(() => decodeTtmPeer(new Uint8Array(20)), "BAD_FAMILY", 0);
    rejects(() => decodeUoaNoaReply(new Uint8Array(56)), "BAD_FAMILY", 0);
    rejects(() => decodeUoaDpvsReply(new Uint8Array(58)), "BAD_FAMILY", 0);
  });

  it("every decoder rejects a buffer one byte short, naming the length", () => {
    rejects(() => decodeToaCtl(new Uint8Array(19)), "SHORT_BUFFER", 19);
    rejects(() => decodeToaLookup(new Uint8Array(19)), "SHORT_BUFFER", 19);
    rejects(() => decodeTtmPeer(new Uint8Array(19)), "SHORT_BUFFER", 19);
    rejects(() => decodeUoaNoaReply(new Uint8Array(55)), "SHORT_BUFFER", 55);
    rejects(() => decodeUoaNoaRequest(new Uint8Array(55)), "SHORT_BUFFER", 55);
    rejects(() => decodeUoaDpvsReply(new Uint8Array(57)), "SHORT_BUFFER", 57);
    rejects(() => decodeUoaDpvsRequest(new Uint8Array(0)), "SHORT_BUFFER", 0);
  });

  it("encoders zero the whole layout of a reused buffer, and honour a view's offset", () => {
    const backing = new Uint8Array(80).fill(0xee);
    const view = backing.subarray(10, 68);
    encodeUoaDpvsRequest(
      {
        source: { family: 4, address: "192.0.2.101", port: 1 },
        dest: { family: 4, address: "192.0.2.10", port: 2 },
      },
      view,
    );
    expect([...backing.subarray(0, 10)]).toEqual(zeros(10).fill(0xee));
    expect([...backing.subarray(68)]).toEqual(zeros(12).fill(0xee));
    expect([...view.subarray(38)]).toEqual(zeros(20));
    expect(decodeUoaDpvsRequest(view).source.address).toBe("192.0.2.101");
    rejects(
      () =>
        encodeToaCtl({ family: 4, address: "1.2.3.4", port: 1, toaSet: true }, new Uint8Array(8)),
      "SHORT_BUFFER",
      8,
    );
  });

  it("encoders reject bad input with INVALID_ARGUMENT", () => {
    const dest = { family: 4 as const, address: "192.0.2.10", port: 53 };
    rejects(
      () => encodeUoaNoaRequest({ source: { family: 4, address: "192.0.2.300", port: 1 }, dest }),
      "INVALID_ARGUMENT",
      null,
    );
    rejects(
      () => encodeUoaNoaRequest({ source: { family: 4, address: "192.0.2.1", port: 70000 }, dest }),
      "INVALID_ARGUMENT",
      null,
    );
    rejects(
      () => encodeUoaNoaRequest({ source: { family: 6, address: "2001:db8::1", port: 1 }, dest }),
      "INVALID_ARGUMENT",
      null,
    );
  });
});

describe("address text as inet_ntop prints it", () => {
  it("hand vectors: compression, v4-mapped and v4-compatible tails", () => {
    const cases: [string, string][] = [
      ["0:0:0:0:0:0:0:0", "::"],
      ["0:0:0:0:0:0:0:1", "::1"],
      ["0:0:0:0:0:ffff:c000:0201", "::ffff:192.0.2.1"],
      ["0:0:0:0:0:0:c000:0201", "::192.0.2.1"],
      ["1:0:0:0:0:0:0:0", "1::"],
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
      ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["2001:DB8:5:0:0:0:0:10", "2001:db8:5::10"],
    ];
    for (const [input, want] of cases) expect(formatIPv6(parseIPv6(input))).toBe(want);
  });

  it("agrees with libuv's inet_ntop (net.SocketAddress) on random addresses", () => {
    let seed = 12345;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 3000; i++) {
      const b = new Uint8Array(16);
      // Mostly zero words, so that runs and ties are common.
      for (let w = 0; w < 8; w++) {
        const r = rnd() % 4;
        const word = r === 0 ? rnd() & 0xffff : r === 1 && w === 5 ? 0xffff : 0;
        b[2 * w] = word >> 8;
        b[2 * w + 1] = word & 0xff;
      }
      const mine = formatIPv6(b);
      const oracle = new net.SocketAddress({ address: mine, family: "ipv6" }).address;
      expect(mine).toBe(oracle);
      expect(parseIPv6(mine)).toEqual(b);
    }
  });

  it("rejects what inet_pton rejects", () => {
    for (const bad of ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "::g", "1:2:3:4:5:6:7", ":::"]) {
      rejects(() => parseIPv6(bad), "INVALID_ARGUMENT", null);
    }
    for (const bad of ["1.2.3", "256.1.1.1", "01.2.3.4", "1.2.3.4.5", ""]) {
      rejects(() => parseIPv4(bad), "INVALID_ARGUMENT", null);
    }
    expect([...parseIPv6("fe80::1%lo")]).toEqual(v6("fe80::1"));
  });
});

describe("abi.ts mirrors kmod/include/uapi/toasim.h", () => {
  const header = readFileSync(HEADER, "utf8");
  const noComments = header.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");

  it("every TOASIM_SO_* define has the same value in Optname, and no more", () => {
    const defines = Object.fromEntries(
      [...noComments.matchAll(/^#define\s+(TOASIM_SO_\w+)\s+(\d+)\s*$/gm)].map((m) => [
        m[1],
        Number(m[2]),
      ]),
    );
    expect(Object.keys(defines).length).toBeGreaterThan(0);
    expect(defines).toEqual({ ...Optname });
  });

  it("every struct has the members of its Layout, in order", () => {
    const structs = new Map<string, string[]>();
    for (const m of noComments.matchAll(/struct\s+(toasim_\w+)\s*\{([\s\S]*?)\n\}/g)) {
      // Nested unions become one member named after their closing brace.
      const body = (m[2] ?? "").replace(/union\s*\{[\s\S]*?\}/g, "union");
      const members = body
        .split(";")
        .map((s) => s.trim())
        .filter((s) => s !== "")
        .map((s) => /(\w+)\s*(\[\s*\d+\s*\])?$/.exec(s)?.[1] ?? `?${s}`);
      structs.set(m[1] ?? "", members);
    }
    const layouts = Object.values(Layout);
    expect([...structs.keys()].sort()).toEqual(layouts.map((l) => l.struct).sort());
    for (const l of layouts) expect(structs.get(l.struct)).toEqual(Object.keys(l.fields));
  });

  itTier(
    GCC_TIER,
    commandMissing("gcc"),
    "gcc agrees on sizeof and on every member's offset and size",
    () => {
      const lines: string[] = [];
      const want: string[] = [];
      for (const l of Object.values(Layout)) {
        lines.push(`  printf("%s sizeof %zu\\n", "${l.struct}", sizeof(struct ${l.struct}));`);
        want.push(`${l.struct} sizeof ${l.size}`);
        for (const [name, f] of Object.entries(l.fields)) {
          lines.push(
            `  printf("%s %s %zu %zu\\n", "${l.struct}", "${name}", offsetof(struct ${l.struct}, ${name}), sizeof(((struct ${l.struct} *)0)->${name}));`,
          );
          want.push(`${l.struct} ${name} ${f.offset} ${f.size}`);
        }
      }
      const dir = mkdtempSync(join(tmpdir(), "toasim-uapi-"));
      try {
        const src = join(dir, "layout.c");
        writeFileSync(
          src,
          `#include <stddef.h>\n#include <stdio.h>\n#include "${HEADER}"\nint main(void)\n{\n${lines.join("\n")}\n  return 0;\n}\n`,
        );
        const exe = join(dir, "layout");
        execFileSync("gcc", ["-Wall", "-Wextra", "-Werror", "-O0", "-o", exe, src]);
        const got = execFileSync(exe, { encoding: "utf8" }).trim().split("\n");
        expect(got).toEqual(want);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
