import type { ChildProcess } from "node:child_process";
import { describe, expect, it } from "vitest";
import { runProcess } from "../../src/run-process.js";

// The one process runner under the VM's tools, the scenario steps and the
// tests' helpers: exit codes, the time limit, input, lines, the tail kept.

const sh = (script: string) => ["sh", "-c", script];

describe("runProcess", () => {
  it("returns the exit code and both outputs", async () => {
    const r = await runProcess(sh("echo out; echo err >&2; exit 3"));
    expect(r).toMatchObject({ code: 3, signal: null, stdout: "out\n", stderr: "err\n" });
    expect(r.spawnError).toBeNull();
    expect(r.timedOut).toBe(false);
  });

  it("kills at the time limit, with the signal asked for", async () => {
    const killed = await runProcess(sh("exec sleep 30"), { timeoutMs: 100 });
    expect(killed).toMatchObject({ code: null, signal: "SIGKILL", timedOut: true });
    const termed = await runProcess(sh("exec sleep 30"), {
      timeoutMs: 100,
      killSignal: "SIGTERM",
    });
    expect(termed).toMatchObject({ code: null, signal: "SIGTERM", timedOut: true });
  });

  it("never rejects: a program that cannot start comes back with its error", async () => {
    const r = await runProcess(["/nonexistent/toasim-no-such-tool"]);
    expect(r.spawnError?.code).toBe("ENOENT");
    expect(r.code).toBeNull();
  });

  it("writes input to stdin, reports lines as they come, and tracks the child while it runs", async () => {
    const lines: string[] = [];
    const children = new Set<ChildProcess>();
    const p = runProcess(sh("cat; printf 'tail-without-newline'"), {
      input: "a\nb\n",
      onLine: (l) => lines.push(l),
      children,
    });
    expect(children.size).toBe(1);
    const r = await p;
    expect(r.stdout).toBe("a\nb\ntail-without-newline");
    expect(lines).toEqual(["a", "b", "tail-without-newline"]);
    expect(children.size).toBe(0);
  });

  it("keeps the last 64 KiB of each stream unless asked for all", async () => {
    const big = sh("head -c 200000 /dev/zero | tr '\\0' x; echo end");
    const tail = await runProcess(big);
    expect(tail.stdout.length).toBe(64 * 1024);
    expect(tail.stdout.endsWith("xend\n")).toBe(true);
    const all = await runProcess(big, { keepAll: true });
    expect(all.stdout.length).toBe(200_004);
  });
});
