import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { expect, it } from "vitest";
import { runProcess } from "../../src/run-process.js";
import { describeTier } from "../helpers/tier.js";

// toasim doctor on this machine, with programs hidden from it: a private
// mount namespace binds /dev/null over them, so only the doctor's process
// sees them missing.

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = join(ROOT, "bin/toasim.js");

function missing(): string | null {
  if (process.geteuid?.() !== 0) return "not root (unshare -m needs it)";
  if (!existsSync(join(ROOT, "dist/cli/main.js"))) return "not built (npm run build)";
  for (const p of ["/usr/bin/clang", "/usr/sbin/bpftool"])
    if (!existsSync(p)) return `${p} is not installed (npm run setup)`;
  return null;
}

function hidden(paths: readonly string[], args: readonly string[]) {
  const binds = paths.map((p) => `mount --bind /dev/null ${p}`).join(" && ");
  return runProcess(
    ["unshare", "-m", "sh", "-c", `${binds} && exec "$@"`, "sh", process.execPath, CLI, ...args],
    { timeoutMs: 30_000, keepAll: true },
  );
}

describeTier("e2e", missing(), "toasim doctor", () => {
  it("names what is missing, its Debian package, and the one command that installs it", async () => {
    const r = await hidden(
      ["/usr/bin/clang", "/usr/sbin/bpftool"],
      ["doctor", "--need", "ebpf,gateway"],
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^MISSING ebpf /m);
    expect(r.stdout).toMatch(/^ok {6}gateway /m);
    expect(r.stdout).toContain("clang (Debian package clang)");
    expect(r.stdout).toContain("bpftool (Debian package bpftool)");
    expect(r.stdout).toContain("apt-get install -y --no-install-recommends bpftool clang\n");
  });

  it("--json says the same for scripts, and the exit code follows --need", async () => {
    const r = await hidden(["/usr/bin/clang"], ["doctor", "--json", "--need", "gateway"]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; packages: string[] };
    expect(report).toMatchObject({ ok: true, packages: [] });
    const all = await hidden(["/usr/bin/clang"], ["doctor", "--json"]);
    expect(all.code).toBe(1);
    expect((JSON.parse(all.stdout) as { packages: string[] }).packages).toEqual(["clang"]);
  });

  it("refuses an unknown feature as a usage error", async () => {
    const r = await runProcess([process.execPath, CLI, "doctor", "--need", "teleport"], {
      timeoutMs: 30_000,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--need: "teleport" is not one of gateway/);
  });
});
