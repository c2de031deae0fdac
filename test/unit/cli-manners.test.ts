import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { reportError } from "../../src/cli/main.js";
import { TunError, TunErrorCode } from "../../src/tun/errors.js";
import { describeTier } from "../helpers/tier.js";

// How the CLI behaves as a Unix tool: quiet when its reader goes away, one
// line for an error, a stack trace only when asked for.

const ROOT = resolve(import.meta.dirname, "../..");
const BIN = join(ROOT, "bin/toasim.js");
const built = existsSync(join(ROOT, "dist/cli/main.js"));

/** Runs the built CLI with its stdout closed before it writes (as `| head -0` would). */
function closedStdout(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    p.stdout.destroy();
    let stderr = "";
    p.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    p.on("close", (code) => resolve({ code, stderr }));
  });
}

describeTier(
  "unit",
  built ? null : "not built (npm run build)",
  "a closed stdout (toasim ... | head)",
  () => {
    it.each([
      [["scenario", "list"]],
      [["--help"]],
      [["craft", "--out", "/dev/null", "--side", "both"]],
    ])("ends %j quietly with exit code 0", async (args) => {
      const r = await closedStdout(args);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    });
  },
);

describe("errors", () => {
  const capture = () => {
    let err = "";
    return { io: { out: () => {}, err: (s: string) => (err += s) }, text: () => err };
  };

  it("an error of toasim's layers is its message on one line, exit code 1", () => {
    const c = capture();
    const code = reportError(
      new TunError(TunErrorCode.notRoot, "toasim needs root to create network namespaces"),
      "toasim up",
      c.io,
    );
    expect(code).toBe(1);
    expect(c.text()).toBe("toasim up: toasim needs root to create network namespaces\n");
  });

  it("an unexpected error is one line that says what to do; the stack only with TOASIM_DEBUG=1", () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'x')");
    const before = process.env["TOASIM_DEBUG"];
    try {
      delete process.env["TOASIM_DEBUG"];
      const quiet = capture();
      expect(reportError(bug, "toasim stats", quiet.io)).toBe(70);
      expect(quiet.text().split("\n")).toEqual([
        "toasim stats: unexpected error: Cannot read properties of undefined (reading 'x') (a bug in toasim: run again with TOASIM_DEBUG=1 to see where, and report it with that output)",
        "",
      ]);
      process.env["TOASIM_DEBUG"] = "1";
      const loud = capture();
      reportError(bug, "toasim stats", loud.io);
      expect(loud.text()).toContain("at ");
      expect(loud.text()).toContain("cli-manners.test.ts");
    } finally {
      if (before === undefined) delete process.env["TOASIM_DEBUG"];
      else process.env["TOASIM_DEBUG"] = before;
    }
  });
});
