import { execFileSync } from "node:child_process";

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
