import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { expect, it } from "vitest";
import { describeTier } from "../helpers/tier.js";
import { netnsList } from "./helpers.js";

// A program that uses the API and is ended by a signal it does not handle
// (Ctrl-C in a test runner), or that exits with an instance still up,
// leaves nothing behind.

const ROOT = resolve(import.meta.dirname, "../..");
const DIST = join(ROOT, "dist/index.js");

function missing(): string | null {
  if (process.geteuid?.() !== 0) return "not root (network namespaces and TUN need root)";
  if (!existsSync("/dev/net/tun")) return "/dev/net/tun is missing";
  if (!existsSync(DIST)) return "not built (npm run build)";
  return null;
}

/** Starts an instance in a child process; resolves with its id once up, and how it ended. */
function child(
  after: string,
): Promise<{ id: string; ended: Promise<{ code: number | null; signal: string | null }> }> {
  const script = `
    import { up } from ${JSON.stringify(DIST)};
    const gw = await up({ decoder: "none" });
    console.log(gw.id);
    ${after}
  `;
  const p = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const ended = new Promise<{ code: number | null; signal: string | null }>((r) =>
    p.on("close", (code, signal) => r({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    p.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const id = /^([0-9a-f]+)\n/.exec(out)?.[1];
      if (id !== undefined) resolve({ id, ended });
    });
    void ended.then(() => reject(new Error(`the child ended before it was up: ${err}`)));
    setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`the child was not up within 30 s: ${err}`));
    }, 30_000).unref();
  });
}

const ours = (id: string) => netnsList().filter((n) => n.startsWith(`toasim-${id}-`));

describeTier("e2e", missing(), "an API user's process that ends with an instance up", () => {
  it.each(["SIGINT", "SIGTERM", "SIGHUP"] as const)(
    "ended by %s it does not handle: the instance is removed, and the signal still ends it",
    async (sig) => {
      const c = await child("setInterval(() => {}, 1000);");
      expect(ours(c.id)).toHaveLength(2);
      process.kill((await pidOf(c.id)) ?? 0, sig);
      const how = await c.ended;
      expect(how.signal).toBe(sig);
      expect(ours(c.id)).toEqual([]);
      expect(existsSync(`/run/toasim/${c.id}.json`)).toBe(false);
    },
  );

  it("a signal it handles itself is left to it: the instance stays until it stops it", async () => {
    const c = await child(`
      process.on("SIGTERM", async () => { console.log("stopping"); await gw.stop(); process.exit(3); });
      setInterval(() => {}, 1000);`);
    process.kill((await pidOf(c.id)) ?? 0, "SIGTERM");
    const how = await c.ended;
    expect(how.code).toBe(3);
    expect(ours(c.id)).toEqual([]);
  });

  it("exiting with the instance up removes it", async () => {
    const c = await child("setTimeout(() => process.exit(0), 200);");
    const how = await c.ended;
    expect(how.code).toBe(0);
    expect(ours(c.id)).toEqual([]);
  });
});

/** The owner's pid, from the instance's state file. */
async function pidOf(id: string): Promise<number | null> {
  const { readFileSync } = await import("node:fs");
  try {
    return (JSON.parse(readFileSync(`/run/toasim/${id}.json`, "utf8")) as { pid: number }).pid;
  } catch {
    return null;
  }
}
