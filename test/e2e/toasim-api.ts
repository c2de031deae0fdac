import { existsSync } from "node:fs";

/**
 * toasim's programmatic API as the e2e tests drive it: the built package
 * (dist/index.js, typed by its dist/index.d.ts), the same build the CLI
 * tests run through bin/toasim.js.
 *
 * Not src/index.ts: up() imported from the sources cannot start its packet
 * worker. src/runtime/instance.ts starts it as
 * `new Worker(new URL("./worker.js", import.meta.url))`, which from the
 * sources names src/runtime/worker.js, a file that does not exist (there is
 * only worker.ts, and vitest compiles TypeScript for its own thread, not
 * for a worker thread Node starts); up() then rejects with Node's plain
 * Error MODULE_NOT_FOUND.
 *
 * Loaded only when dist/ is built, so that a checkout without a build can
 * still collect the e2e files and skip them (e2eMissing says why).
 */

type Api = typeof import("../../dist/index.js");

export const API_ENTRY = new URL("../../dist/index.js", import.meta.url);

const loaded: Api | null = existsSync(API_ENTRY) ? await import("../../dist/index.js") : null;

/** Why the API cannot be loaded (dist/ not built), or null. */
export const apiMissing: string | null =
  loaded === null ? "dist/ is not built (npm run build)" : null;

/**
 * The API: `toasim.up(...)`, `toasim.attach(...)`, `toasim.ToasimError`.
 * Any use without a build throws, saying so.
 */
export const toasim: Api =
  loaded ??
  (new Proxy({} as Api, {
    get(_, name) {
      throw new Error(`toasim.${String(name)}: ${apiMissing}`);
    },
  }) as Api);

export type {
  Capture,
  ExecResult,
  GatewayStats,
  Instance,
  LocalInstance,
  NsProcess,
  UpOptions,
} from "../../dist/index.js";
