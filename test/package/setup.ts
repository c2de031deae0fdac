import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";

/**
 * The packaging tier's one expensive step, done once per run: the repo
 * packed as npm would publish it, and that tarball installed into an empty
 * project outside the checkout, where every test of the tier then works as
 * a user would. `npm pack --ignore-scripts`: the tarball holds the dist/
 * that `npm test` has just built (a prepack build here would rebuild dist/
 * under the other tiers' feet).
 */

const ROOT = resolve(import.meta.dirname, "../..");

export interface PackedProject {
  /** Why the tier cannot run here, or null. */
  readonly missing: string | null;
  /** The tarball, the empty project it is installed in, and its package folder there. */
  readonly tarball: string;
  readonly project: string;
  readonly installed: string;
  /** What npm pack reported: sizes in bytes and the files. */
  readonly size: number;
  readonly unpackedSize: number;
  readonly files: readonly string[];
}

declare module "vitest" {
  export interface ProvidedContext {
    packed: PackedProject;
  }
}

function missing(): string | null {
  if (process.platform !== "linux") return "not Linux";
  try {
    execFileSync("npm", ["--version"], { stdio: "ignore" });
  } catch {
    return "npm not found";
  }
  try {
    readFileSync(join(ROOT, "dist/index.js"));
  } catch {
    return "dist/ is missing (npm run build)";
  }
  return null;
}

export default function setup(project: TestProject): () => void {
  const why = missing();
  const empty = { tarball: "", project: "", installed: "", size: 0, unpackedSize: 0, files: [] };
  if (why !== null) {
    project.provide("packed", { missing: why, ...empty });
    return () => {};
  }
  const work = mkdtempSync(join(tmpdir(), "toasim-package-"));
  const out = execFileSync(
    "npm",
    ["pack", "--ignore-scripts", "--json", "--pack-destination", work],
    { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  const info = (
    JSON.parse(out) as {
      filename: string;
      size: number;
      unpackedSize: number;
      files: { path: string }[];
    }[]
  )[0]!;
  const tarball = join(work, info.filename);
  const projectDir = join(work, "project");
  mkdirSync(projectDir);
  writeFileSync(
    join(projectDir, "package.json"),
    `${JSON.stringify({ name: "toasim-user", version: "1.0.0", private: true, type: "module" }, null, 2)}\n`,
  );
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", tarball], {
    cwd: projectDir,
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 300_000,
  });
  project.provide("packed", {
    missing: null,
    tarball,
    project: projectDir,
    installed: join(projectDir, "node_modules/toasim"),
    size: info.size,
    unpackedSize: info.unpackedSize,
    files: info.files.map((f) => f.path),
  });
  return () => rmSync(work, { recursive: true, force: true });
}
