import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * toasim reads files that ship beside its compiled code: the eBPF source,
 * the kernel module, the scenario library, the reader examples. They are
 * found from the package's root, which is the same walk up from this file
 * whether it runs from the npm package (dist/), from a checkout's build
 * (dist/ or build/src/), or inside a VM that shares the host's root.
 */

let root: string | null = null;

/** The folder holding toasim's package.json. */
export function packageRoot(): string {
  if (root !== null) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      const name = (JSON.parse(readFileSync(manifest, "utf8")) as { name?: unknown }).name;
      if (name === "toasim") {
        root = dir;
        return dir;
      }
    }
    const up = dirname(dir);
    // Not reachable from an intact package: its package.json is always above.
    if (up === dir) throw new Error(`toasim's package.json is not above ${import.meta.url}`);
    dir = up;
  }
}

/** The package's version, from its package.json alone. */
export function packageVersion(): string {
  const v = (
    JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as {
      version?: unknown;
    }
  ).version;
  return typeof v === "string" ? v : "0.0.0";
}

/** What ships beside the code, by what it is. */
export const SHIPPED = {
  bpf: "src/decoder/bpf",
  kmod: "kmod",
  scenarios: "scenarios",
  examples: "examples",
  docs: "docs",
} as const;

export function shippedPath(what: keyof typeof SHIPPED, ...rest: string[]): string {
  return join(packageRoot(), SHIPPED[what], ...rest);
}
