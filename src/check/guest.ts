import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { RsNetns } from "../api/options.js";
import { up } from "../api/up.js";
import { shippedPath } from "../package-files.js";
import { slabSnapshot, slabVerdict, unload } from "./health.js";
import type { CaseResult } from "./result.js";
import { checkHere, checkPlacements, type LocalCheckOptions } from "./run-local.js";

/**
 * The part of `toasim check --kernel` that runs inside the guest, where
 * `toasim vm` has loaded the module: the battery against it (no eBPF
 * decoder: the module is what is checked), then a burst of connections
 * measured by the slab counts around it, then the module unloaded; all
 * written to a JSON file in the shared folder.
 */

export interface GuestResult {
  readonly kernel: string;
  readonly cases: readonly CaseResult[];
  readonly unload: string;
  readonly unloadOk: boolean;
  readonly memory: string;
  readonly memoryOk: boolean;
}

/** Connections of the memory burst: a leak of one object each stands far above the kernel's own drift. */
const BURST = 2000;

export async function runGuestCheck(
  moduleName: string,
  out: string,
  placements: readonly RsNetns[],
  o: Omit<LocalCheckOptions, "decoder" | "decoderName" | "rsNetns">,
): Promise<GuestResult> {
  const r = await checkPlacements(placements, (rsNetns) =>
    checkHere({
      ...o,
      rsNetns,
      decoder: "none",
      decoderName: `${moduleName}.ko`,
      moduleName,
    }),
  );
  // Measured after the battery, so that what the kernel allocates once
  // (caches, modules loaded on demand) is already there.
  const before = slabSnapshot();
  // The root namespace when asked for: a module that hooks only there is busy only there.
  const rsNetns = placements.includes("root") ? "root" : "toasim";
  const burst = await connectionBurst(rsNetns);
  const unloaded = await unloadUnderLoad(moduleName, rsNetns);
  // Sockets and namespaces are freed asynchronously: give the kernel a moment.
  await new Promise((res) => setTimeout(res, 3000));
  // A leak of one object a connection is BURST; SLUB still moves by a slab (512 of kmalloc-8).
  const memory = slabVerdict(before, slabSnapshot(), BURST / 2);
  const result: GuestResult = {
    kernel: r.kernel,
    cases: r.cases,
    unload: unloaded.text,
    unloadOk: unloaded.ok,
    memory: `${burst}; ${memory.text}`,
    memoryOk: memory.ok,
  };
  writeFileSync(out, `${JSON.stringify(result)}\n`);
  return result;
}

/** Connections held open through the unload. */
const HELD = 10;

/**
 * rmmod while HELD connections through a dpvs gateway exchange data: it
 * must succeed, and the connections must go on (their sockets outlive the
 * module's entries for them), with nothing in the kernel log.
 */
async function unloadUnderLoad(
  moduleName: string,
  rsNetns: RsNetns,
): Promise<{ text: string; ok: boolean }> {
  const hold = fileURLToPath(new URL("./hold.js", import.meta.url));
  const inst = await up({ profile: "dpvs", decoder: "none", rsNetns });
  try {
    const server = inst.spawn("rs", [process.execPath, hold, "server", "192.0.2.10", "8080"]);
    await new Promise((res) => setTimeout(res, 1500));
    const client = inst.spawn("client", [
      process.execPath,
      hold,
      "client",
      "203.0.113.10",
      "80",
      String(HELD),
    ]);
    const counts = (): number[] => {
      const last = client.stdout.trim().split("\n").pop() ?? "";
      return last.startsWith("[") ? (JSON.parse(last) as number[]) : [];
    };
    for (let i = 0; i < 60 && counts().filter((n) => n > 0).length < HELD; i++)
      await new Promise((res) => setTimeout(res, 500));
    const before = counts();
    const open = before.filter((n) => n > 0).length;
    const unloaded = await unload(moduleName);
    await new Promise((res) => setTimeout(res, 3000));
    const after = counts();
    await client.stop();
    await server.stop();
    const going = after.filter((n, i) => n > (before[i] ?? 0)).length;
    if (unloaded !== "clean") return { text: unloaded, ok: false };
    if (open < HELD)
      return {
        text: `clean, but only ${open} of ${HELD} connections were open before it`,
        ok: false,
      };
    return going === HELD
      ? { text: `clean, with ${HELD} connections open and busy: all went on after it`, ok: true }
      : {
          text: `clean, but ${HELD - going} of ${HELD} open connections stopped after it`,
          ok: false,
        };
  } finally {
    await inst.stop();
  }
}

/** BURST scripted connections from 10 addresses through a dpvs gateway to the reader server. */
async function connectionBurst(rsNetns: RsNetns): Promise<string> {
  const inst = await up({ profile: "dpvs", decoder: "none", rsNetns });
  try {
    const server = inst.spawn("rs", [
      process.execPath,
      shippedPath("examples", "node/reader-server.mjs"),
      "--tcp",
      "192.0.2.10:8080",
    ]);
    await new Promise((res) => setTimeout(res, 1500));
    const p = await inst.runClients({
      target: "203.0.113.10:80",
      from: "198.51.100.128",
      sources: 10,
      connections: BURST,
      concurrency: 64,
      timeoutMs: 30_000,
    });
    await server.stop();
    const why = Object.entries(p.results.failed)
      .filter(([, n]) => n > 0)
      .map(([reason, n]) => `${n} ${reason}`);
    const failed = why.length > 0 ? ` (failed: ${why.join(", ")})` : "";
    return `${p.results.completed} of ${BURST} connections in the burst${failed}, ${p.results.matched} with the client in getpeername`;
  } finally {
    await inst.stop();
  }
}
