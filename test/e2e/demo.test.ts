import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { describeTier } from "../helpers/tier.js";

const BIN = join(import.meta.dirname, "../../bin/toasim.js");

function missing(): string | null {
  if (process.getuid?.() !== 0) return "not root";
  if (!existsSync("/dev/net/tun")) return "no /dev/net/tun";
  if (!existsSync(join(import.meta.dirname, "../../dist/runtime/worker.js")))
    return "not built (npm run build)";
  return null;
}

const e2eMissing = missing();

interface DemoResult {
  ok: boolean;
  decoder: string;
  results: {
    proto: string;
    family: string;
    client: string;
    seen: { peer?: string; proxy?: unknown };
    pass: boolean;
  }[];
}

function demo(args: string[]): { code: number; out: DemoResult } {
  try {
    const out = execFileSync(process.execPath, [BIN, "demo", "--json", ...args], {
      encoding: "utf8",
      timeout: 90_000,
    });
    return { code: 0, out: JSON.parse(out) as DemoResult };
  } catch (e) {
    const err = e as { status: number; stdout: string };
    return { code: err.status, out: JSON.parse(err.stdout) as DemoResult };
  }
}

function namespaces(): string {
  return execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
}

describeTier("e2e", e2eMissing, "toasim demo", () => {
  it("proxy-v2: every TCP and UDP row passes for v4, v6 and NAT64 clients, and nothing is left", () => {
    const before = namespaces();
    const { code, out } = demo(["--profile", "proxy-v2"]);
    expect(code).toBe(0);
    expect(out.ok).toBe(true);
    const kinds = new Set(out.results.map((r) => `${r.proto}/${r.family}`));
    expect([...kinds].sort()).toEqual([
      "tcp/nat64",
      "tcp/v4",
      "tcp/v6",
      "udp/nat64",
      "udp/v4",
      "udp/v6",
    ]);
    expect(out.results.every((r) => r.pass)).toBe(true);
    expect(namespaces()).toBe(before);
  });

  it("dpvs without a decoder: the server sees the gateway's LIPs, and the rows say FAIL (exit 1)", () => {
    const { code, out } = demo(["--profile", "dpvs", "--decoder", "none"]);
    expect(code).toBe(1);
    expect(out.ok).toBe(false);
    expect(out.decoder).toBe("none");
    expect(out.results.length).toBe(12);
    for (const r of out.results) {
      expect(r.pass).toBe(false);
      expect(r.seen.peer).toMatch(/^(192\.0\.2\.1[0-3]\d|2001:db8:5::1[0-3][0-9a-f])$/);
    }
  });
});
