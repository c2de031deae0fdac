import { execFileSync } from "node:child_process";
import { describe, it } from "vitest";

/**
 * A tier that cannot run fails under CI (CI=true) and skips with a one-line
 * reason elsewhere. Returns the reason to skip, or null to run.
 */
export function tierUnavailable(tier: string, missing: string | null): string | null {
  if (missing === null) return null;
  if (process.env["CI"] === "true") {
    throw new Error(`${tier} tier cannot run under CI: ${missing}`);
  }
  const reason = `${tier} tier skipped: ${missing}`;
  console.warn(reason);
  return reason;
}

export function commandMissing(cmd: string, args: string[] = ["--version"]): string | null {
  try {
    execFileSync(cmd, args, { stdio: "ignore" });
    return null;
  } catch {
    return `${cmd} not found (run: npm run setup, as root)`;
  }
}

const underCi = (): boolean => process.env["CI"] === "true";

/**
 * describe() for a block that needs what `missing` names (null: all there).
 * Under CI a missing prerequisite is never a skip: the block becomes one
 * failing test that says what is missing. Elsewhere the block is skipped,
 * with the reason printed once.
 */
export function describeTier(
  tier: string,
  missing: string | null,
  name: string,
  body: () => void,
): void {
  if (missing === null) {
    describe(name, body);
  } else if (underCi()) {
    describe(name, () => {
      it(`${tier} tier can run here`, () => {
        throw new Error(`${tier} tier cannot run under CI: ${missing}`);
      });
    });
  } else {
    console.warn(`${tier} tier skipped: ${missing}`);
    describe.skip(name, body);
  }
}

/** it() with the same rule as describeTier, for one test inside a tier that runs. */
export function itTier(
  tier: string,
  missing: string | null,
  name: string,
  fn: () => void | Promise<void>,
  timeout?: number,
): void {
  if (missing === null) it(name, fn, timeout);
  else if (underCi()) {
    it(name, () => {
      throw new Error(`${tier} cannot run under CI: ${missing}`);
    });
  } else {
    console.warn(`${tier} skipped: ${missing}`);
    it.skip(name, fn);
  }
}
