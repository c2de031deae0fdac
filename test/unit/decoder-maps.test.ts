import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { parseTrusted } from "../../src/decoder/decoder.js";
import { DecoderError } from "../../src/decoder/errors.js";
import {
  CFG_SIZE,
  DEFAULT_SETTINGS,
  encodeCfg,
  FLOW_EXPIRES_OFFSET,
  FLOW_KEY_SIZE,
  FLOW_SIZE,
  lpmKey,
  STAT_NAMES,
  statsRows,
} from "../../src/decoder/maps.js";
import { commandMissing, describeTier } from "../helpers/tier.js";

// The loader writes and reads the BPF maps by byte offset (maps.ts); the
// programs use the structs of bpf/decoder.h. gcc compiles the header and
// prints what it laid out, so the two cannot drift apart.

const HEADER = fileURLToPath(new URL("../../src/decoder/bpf/decoder.h", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "toasim-decmaps-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const gcc = commandMissing("gcc");

describeTier("unit (gcc for the decoder map layouts)", gcc, "decoder map layouts", () => {
  it("gcc agrees with maps.ts on every size, offset and counter index", () => {
    const src = join(dir, "layout.c");
    writeFileSync(
      src,
      `#include <stdio.h>
#include <stddef.h>
#include <linux/types.h>
#include "${HEADER}"
#define P(x) printf(#x " %zu\\n", (size_t)(x))
int main(void) {
  P(sizeof(struct toasim_cfg)); P(offsetof(struct toasim_cfg, ttm_kind));
  P(offsetof(struct toasim_cfg, cdn_kind)); P(offsetof(struct toasim_cfg, ttm_af_network));
  P(offsetof(struct toasim_cfg, trust_any)); P(offsetof(struct toasim_cfg, l3_offset));
  P(offsetof(struct toasim_cfg, uoa_timeout_s)); P(offsetof(struct toasim_cfg, syn_timeout_s));
  P(sizeof(struct toasim_flow_key)); P(sizeof(struct toasim_flow));
  P(offsetof(struct toasim_flow, expires_ns)); P(sizeof(struct toasim_lpm4));
  P(sizeof(struct toasim_lpm6)); P(TOASIM_STAT_NR); P(UOA_SUCCESS); P(UOA_EXPIRED);
  P(TOA_SOCK_ALLOC); P(TOA_MALFORMED);
  return 0;
}
`,
    );
    const exe = join(dir, "layout");
    execFileSync("gcc", ["-Wall", "-Werror", "-o", exe, src]);
    const got = Object.fromEntries(
      execFileSync(exe, { encoding: "utf8" })
        .trim()
        .split("\n")
        .map((l) => {
          const i = l.lastIndexOf(" ");
          return [l.slice(0, i), Number(l.slice(i + 1))];
        }),
    );
    expect(got["sizeof(struct toasim_cfg)"]).toBe(CFG_SIZE);
    expect(got["offsetof(struct toasim_cfg, ttm_kind)"]).toBe(32);
    expect(got["offsetof(struct toasim_cfg, cdn_kind)"]).toBe(34);
    expect(got["offsetof(struct toasim_cfg, ttm_af_network)"]).toBe(36);
    expect(got["offsetof(struct toasim_cfg, trust_any)"]).toBe(37);
    expect(got["offsetof(struct toasim_cfg, l3_offset)"]).toBe(38);
    expect(got["offsetof(struct toasim_cfg, uoa_timeout_s)"]).toBe(40);
    expect(got["offsetof(struct toasim_cfg, syn_timeout_s)"]).toBe(44);
    expect(got["sizeof(struct toasim_flow_key)"]).toBe(FLOW_KEY_SIZE);
    expect(got["sizeof(struct toasim_flow)"]).toBe(FLOW_SIZE);
    expect(got["offsetof(struct toasim_flow, expires_ns)"]).toBe(FLOW_EXPIRES_OFFSET);
    expect(got["sizeof(struct toasim_lpm4)"]).toBe(lpmKey(32, new Uint8Array(4)).length);
    expect(got["sizeof(struct toasim_lpm6)"]).toBe(lpmKey(128, new Uint8Array(16)).length);
    expect(got["TOASIM_STAT_NR"]).toBe(STAT_NAMES.length);
    expect(got["UOA_SUCCESS"]).toBe(STAT_NAMES.indexOf("success"));
    expect(got["UOA_EXPIRED"]).toBe(STAT_NAMES.indexOf("expired"));
    expect(got["TOA_SOCK_ALLOC"]).toBe(STAT_NAMES.indexOf("sock_alloc"));
    expect(got["TOA_MALFORMED"]).toBe(STAT_NAMES.indexOf("toa_malformed"));
  });
});

describe("decoder settings", () => {
  it("encodes the kinds bitmap, kinds, flags and timeouts where decoder.h has them", () => {
    const b = encodeCfg({ ...DEFAULT_SETTINGS, trusted: "any", l3Offset: 14, uoaTimeoutSec: 7 });
    const dv = new DataView(b.buffer);
    for (const k of [200, 253, 254]) expect((b[k >> 3]! >> (k & 7)) & 1, `kind ${k}`).toBe(1);
    expect(b.slice(0, 32).reduce((n, x) => n + x.toString(2).replaceAll("0", "").length, 0)).toBe(
      3,
    );
    expect(dv.getInt16(32, true)).toBe(254);
    expect(dv.getInt16(34, true)).toBe(28);
    expect(b[37]).toBe(1);
    expect(dv.getUint16(38, true)).toBe(14);
    expect(dv.getUint32(40, true)).toBe(7);
  });

  it.each([
    [{ tcpKinds: [1] }, /not an option kind/],
    [{ tcpKinds: [256] }, /not an option kind/],
    [{ ttmKind: 0 }, /ttm kind/],
    [{ cdnKind: 300 }, /cdn kind/],
    [{ uoaTimeoutSec: 0 }, /UOA timeout/],
    [{ synTimeoutSec: 100_000 }, /SYN timeout/],
  ])("refuses %j", (bad, msg) => {
    expect(() => encodeCfg({ ...DEFAULT_SETTINGS, ...bad })).toThrow(msg);
  });

  it("parses trusted ranges into LPM keys, and refuses bad ones", () => {
    expect(parseTrusted(["192.0.2.0/24", "2001:db8:5::/64", "198.51.100.7"])).toEqual([
      { map: "trust4", prefix: 24, addr: Uint8Array.from([192, 0, 2, 0]) },
      {
        map: "trust6",
        prefix: 64,
        addr: Uint8Array.from([0x20, 1, 0xd, 0xb8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
      },
      { map: "trust4", prefix: 32, addr: Uint8Array.from([198, 51, 100, 7]) },
    ]);
    expect(parseTrusted("any")).toEqual([]);
    for (const bad of ["300.1.2.3/8", "192.0.2.0/33", "2001:db8::/129", "192.0.2.0/", "x"])
      expect(() => parseTrusted([bad]), bad).toThrow(DecoderError);
  });

  it("shows the counters in the module's two files, gauges last", () => {
    const counters = Object.fromEntries(STAT_NAMES.map((n, i) => [n, i])) as Record<
      (typeof STAT_NAMES)[number],
      number
    >;
    const rows = statsRows({ counters, sockEntries: 5, synEntries: 6, flowEntries: 7 });
    expect(Object.keys(rows.toa).at(0)).toBe("syn_recv_sock_toa");
    expect(Object.keys(rows.toa).slice(-2)).toEqual(["sock_entries", "syn_entries"]);
    expect(rows.toa).not.toHaveProperty("sock_alloc");
    expect(Object.keys(rows.uoa)).toEqual([
      "success",
      "miss",
      "invalid",
      "got",
      "none",
      "saved",
      "untrusted",
      "expired",
      "flow_entries",
    ]);
    expect(rows.uoa["flow_entries"]).toBe(7);
  });
});
