import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import type { CheckReport } from "../../src/check/result.js";
import { ebpfUnavailable } from "../../src/decoder/availability.js";
import { runProcess } from "../../src/run-process.js";
import { describeTier } from "../helpers/tier.js";
import { CLI, e2eMissing, netnsList } from "./helpers.js";

// toasim check on this machine: the whole battery through the eBPF decoder
// (its every case passes or is unsupported with a reason), and without a
// decoder (every failure says so, nothing crashes).

const tmp = mkdtempSync(join(tmpdir(), "toasim-check-e2e-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function check(args: readonly string[], timeoutMs = 300_000) {
  const r = await runProcess([process.execPath, CLI, "check", ...args], {
    timeoutMs,
    keepAll: true,
  });
  return { ...r, report: r.stdout.startsWith("{") ? (JSON.parse(r.stdout) as CheckReport) : null };
}

describeTier(
  "e2e",
  e2eMissing([["socat", ["-V"]]]) ?? ebpfUnavailable(),
  "toasim check on this machine",
  () => {
    it("the eBPF decoder passes every case it supports, and says why for the rest", async () => {
      const out = join(tmp, "ebpf");
      const r = await check(["--json", "--out", out, "--profile", "dpvs,tencent"]);
      expect(r.stderr).not.toMatch(/unexpected error/);
      const rep = r.report!;
      expect(rep.decoder).toBe("ebpf");
      const by = (k: string) => rep.cases.filter((c) => c.result === k);
      console.log(
        `toasim check (eBPF, dpvs and tencent): ${rep.cases.length} results, ${by("pass").length} pass, ${by("unsupported").length} unsupported, in ${Math.round(rep.durationMs / 1000)} s`,
      );
      expect(by("fail")).toEqual([]);
      expect(by("error")).toEqual([]);
      // The one thing BPF cannot do: give an IPv6 client to getpeername on an IPv4 socket.
      for (const u of by("unsupported")) {
        expect(u.family).toBe("nat64");
        expect(u.reader).toBe("getpeername");
        expect(u.diagnosis).toMatch(/read 4096/);
      }
      // Every case ran, for both profiles (tencent carries on the handshake ACK alone, no data case).
      const ids = new Set(rep.cases.map((c) => c.id));
      for (const id of ["tcp.basic", "tcp.syn-only", "tcp.syn-cookies", "tcp.two-toas", "udp.ipo"])
        expect(ids).toContain(id);
      expect(
        rep.cases.some((c) => c.profile === "tencent" && c.id === "tcp.handshake-ack-lost"),
      ).toBe(false);
      expect(rep.cases.some((c) => c.profile === "dpvs" && c.id === "tcp.handshake-ack-lost")).toBe(
        true,
      );
      expect(rep.ok).toBe(true);
      expect(r.code).toBe(0);
      // Nothing failed: no pcap kept, no namespace left.
      expect(rep.cases.every((c) => c.pcaps === null)).toBe(true);
      expect(netnsList().filter((n) => n.startsWith("toasim-"))).toEqual([]);
      // The whole battery, two profiles: about 2 minutes here, longer beside the kernel tier's VMs.
    }, 300_000);

    it("without a decoder every failure says 'no decoder', the exit code is 1, and the report is written", async () => {
      const out = join(tmp, "none");
      const html = join(out, "report.html");
      const r = await check([
        "--json",
        "--decoder",
        "none",
        "--case",
        "tcp.basic,udp.basic",
        "--out",
        out,
        "--report",
        html,
      ]);
      const rep = r.report!;
      expect(rep.decoder).toBe("none");
      const fails = rep.cases.filter((c) => c.result === "fail");
      expect(fails.length).toBeGreaterThan(0);
      for (const f of fails) expect(f.diagnosis).toMatch(/^no decoder: /);
      expect(rep.cases.filter((c) => c.result === "error")).toEqual([]);
      expect(rep.ok).toBe(false);
      expect(r.code).toBe(1);
      // Failures keep their pcaps, beside the results.
      const kept = fails.find((c) => c.pcaps !== null)!;
      expect(existsSync(join(out, kept.pcaps!.server))).toBe(true);
      const page = readFileSync(html, "utf8");
      expect(page).toContain("tcp.basic");
      expect(page).toContain("no decoder");
    });

    it.each([
      [["--profile", "proxy-v2"], "--profile", /carries no TOA or UOA/],
      [["--build", "x"], "--build", /needs kernels/],
      [["--case", "tcp.nosuch"], "--case", /"tcp.nosuch" is not one of tcp.basic/],
      [["--kernel", "4.19", "--build", "x"], "--kernel", /"4.19" is not one of 5.10/],
      [["--reader", "9999"], "--reader", /"9999" is not one of getpeername/],
    ])("refuses %j naming %s, exit 2, before starting anything", async (args, flag, why) => {
      const r = await check(args, 30_000);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(flag);
      expect(r.stderr).toMatch(why);
    });
  },
);
