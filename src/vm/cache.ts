import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { VmError, VmErrorCode } from "./errors.js";

export { cacheDir } from "../cache-dir.js";

/**
 * An exclusive lock on one cache entry, so two runs never unpack into the
 * same folder at once. A lock whose owner is dead is taken over.
 */
export async function withLock<T>(
  dir: string,
  what: string,
  fn: () => Promise<T>,
  waitMs = 600_000,
): Promise<T> {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, ".lock");
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (!ownerAlive(path)) {
        rmSync(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new VmError(
          VmErrorCode.locked,
          `${what}: another toasim process holds ${path}; remove it if no toasim vm is running`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}

function ownerAlive(lock: string): boolean {
  let pid = 0;
  try {
    pid = Number.parseInt(readFileSync(lock, "utf8"), 10);
  } catch {
    return true; // Being written right now.
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
