import { writeFileSync } from "node:fs";
import { up } from "../api/up.js";
import { shippedPath } from "../package-files.js";
import { slabSnapshot, slabVerdict, unload } from "./health.js";
import type { CaseResult } from "./result.js";
import { checkHere, type LocalCheckOptions } from "./run-local.js";

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
  readonly memory: string;
  readonly memoryOk: boolean;
}

/** Connections of the memory burst: a leak of one object each stands far above the kernel's own drift. */
const BURST = 2000;

export async function runGuestCheck(
  moduleName: string,
  out: string,
  o: Omit<LocalCheckOptions, "decoder" | "decoderName">,
): Promise<GuestResult> {
  const r = await checkHere({
    ...o,
    decoder: "none",
    decoderName: `${moduleName}.ko`,
    moduleName,
  });
  // Measured after the battery, so that what the kernel allocates once
  // (caches, modules loaded on demand) is already there.
  const before = slabSnapshot();
  const burst = await connectionBurst();
  // Sockets and namespaces are freed asynchronously: give the kernel a moment.
  await new Promise((res) => setTimeout(res, 3000));
  const unloaded = await unload(moduleName);
  // A leak of one object a connection is BURST; SLUB still moves by a slab (512 of kmalloc-8).
  const memory = slabVerdict(before, slabSnapshot(), BURST / 2);
  const result: GuestResult = {
    kernel: r.kernel,
    cases: r.cases,
    unload: unloaded,
    memory: `${burst}; ${memory.text}`,
    memoryOk: memory.ok,
  };
  writeFileSync(out, `${JSON.stringify(result)}\n`);
  return result;
}

/** BURST scripted connections from 10 addresses through a dpvs gateway to the reader server. */
async function connectionBurst(): Promise<string> {
  const inst = await up({ profile: "dpvs", decoder: "none" });
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
    return `${p.results.completed} of ${BURST} connections in the burst, ${p.results.matched} with the client in getpeername`;
  } finally {
    await inst.stop();
  }
}
