import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, expect, it } from "vitest";
import { ebpfUnavailable } from "../../src/decoder/availability.js";
import { describeTier } from "../helpers/tier.js";
import { CLI, e2eMissing, netnsList, ROOT, run, sh } from "./helpers.js";

/**
 * The shipped scenario library on this machine's kernel with the eBPF
 * decoder: every healthy run passes, every bug run shows its documented
 * symptom and breaks exactly the documented expectations; the pcaps of
 * both sides are read back by tshark.
 */

const missing =
  e2eMissing([
    ["socat", ["-V"]],
    ["tshark", ["-v"]],
    ["python3", ["--version"]],
    ["nft", ["--version"]],
  ]) ?? ebpfUnavailable();
const OUT = join(ROOT, "out", "scenarios-e2e");
const SCENARIOS = readdirSync(join(ROOT, "scenarios")).filter(
  (n) => n.endsWith(".json") && !n.endsWith(".schema.json"),
);

interface Result {
  variant: string;
  pass: boolean;
  error?: string;
  broken?: number[];
  pcaps?: string[];
  outcomes?: { pass: boolean; expected: string; actual: string }[];
}
interface Ran {
  name: string;
  results: Result[];
}

function frames(pcap: string, filter: string): number {
  const out = sh(
    ["tshark", "-r", pcap, "-Y", filter, "-T", "fields", "-e", "frame.number"],
    60_000,
  );
  return out.split("\n").filter((l) => l.trim() !== "").length;
}

describeTier(
  "e2e (scenarios)",
  missing,
  "the scenario library on this machine (eBPF decoder)",
  () => {
    let ran: Ran[] = [];
    let stderr = "";

    beforeAll(async () => {
      rmSync(OUT, { recursive: true, force: true });
      const r = await run(
        [process.execPath, CLI, "scenario", "run", join(ROOT, "scenarios"), "--json", "--out", OUT],
        900_000,
      );
      stderr = r.stderr;
      const line = r.stdout.trim().split("\n").pop() ?? "";
      if (!line.startsWith("{"))
        throw new Error(`toasim scenario run: exit ${r.code}\n${r.stderr.slice(-3000)}`);
      ran = (JSON.parse(line) as { scenarios: Ran[] }).scenarios;
    }, 950_000);

    it.each(SCENARIOS.map((f) => f.replace(/\.json$/, "")))("%s: every variant passes", (name) => {
      const s = ran.find((x) => x.name === name);
      expect(s, `no result for ${name}; stderr: ${stderr.slice(-2000)}`).toBeDefined();
      for (const r of s!.results) {
        const failed = (r.outcomes ?? []).filter((o) => !o.pass);
        expect(r.error, `${name} ${r.variant}`).toBeUndefined();
        expect(failed, `${name} ${r.variant}`).toEqual([]);
        expect(r.pass, `${name} ${r.variant}: broken ${JSON.stringify(r.broken)}`).toBe(true);
      }
    });

    it("every scenario with a bug variant ran it", () => {
      const withBug = ran.filter((s) => s.results.some((r) => r.variant === "bug"));
      expect(withBug.map((s) => s.name).sort()).toEqual(
        [
          "client-forged-toa",
          "conntrack-table-full",
          "handshake-ack-lost",
          "mss-not-clamped",
          "options-full",
          "udp-first-packets-lost",
        ].sort(),
      );
    });

    it("tshark reads the pcaps of both sides: the TOA reaches the server only in the healthy run", () => {
      const healthy = join(OUT, "handshake-ack-lost", "server.pcap");
      const bug = join(OUT, "handshake-ack-lost-bug", "server.pcap");
      for (const p of [healthy, bug, join(OUT, "handshake-ack-lost", "client.pcap")]) {
        expect(frames(p, "tcp"), p).toBeGreaterThan(5);
      }
      // DPVS's kind 254 on the server side; the client side never has one.
      expect(frames(healthy, "tcp.option_kind == 254")).toBeGreaterThanOrEqual(2);
      expect(frames(bug, "tcp.option_kind == 254")).toBe(0);
      expect(frames(join(OUT, "handshake-ack-lost", "client.pcap"), "tcp.option_kind == 254")).toBe(
        0,
      );
      // The handshake ACKs were dropped: the client side has them, the server side does not.
      const acks = "tcp.flags == 0x010 && tcp.len == 0 && tcp.seq == 1 && tcp.ack == 1";
      expect(frames(join(OUT, "handshake-ack-lost", "client.pcap"), acks)).toBeGreaterThanOrEqual(
        2,
      );
      expect(frames(healthy, acks)).toBe(0);
    });

    it("the MSS bug: oversize segments with a TOA never reach the server", () => {
      const bug = join(OUT, "mss-not-clamped-bug", "server.pcap");
      expect(frames(bug, "ip.len > 1500")).toBe(0);
      expect(
        frames(join(OUT, "mss-not-clamped-bug", "client.pcap"), "tcp.len == 1460"),
      ).toBeGreaterThan(1);
      expect(frames(join(OUT, "mss-not-clamped", "client.pcap"), "tcp.len > 1452")).toBe(0);
    });

    it("the conntrack bug: only the flows in the client's table reach the wire", () => {
      const ports = (pcap: string) =>
        new Set(
          sh(
            ["tshark", "-r", pcap, "-Y", "udp.dstport == 53", "-T", "fields", "-e", "udp.srcport"],
            60_000,
          )
            .split("\n")
            .filter((l) => l.trim() !== ""),
        ).size;
      // The datagrams whose sendto failed never left the client namespace.
      expect(ports(join(OUT, "conntrack-table-full", "client.pcap"))).toBe(64);
      expect(ports(join(OUT, "conntrack-table-full-bug", "client.pcap"))).toBe(16);
      expect(
        frames(join(OUT, "conntrack-table-full-bug", "client.pcap"), "udp.dstport == 53"),
      ).toBe(32);
    });

    it("leaves no namespace behind", () => {
      expect(netnsList().filter((n) => n.startsWith("toasim-"))).toEqual([]);
    });
  },
);
