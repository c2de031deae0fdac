import { homedir } from "node:os";
import { join } from "node:path";

/**
 * Where toasim keeps what it downloads and builds (kernels, module builds,
 * the compiled eBPF decoder): TOASIM_CACHE, else /var/cache/toasim for root
 * and ~/.cache/toasim for others. Nothing is ever installed into the host
 * system.
 */
export function cacheDir(): string {
  const env = process.env["TOASIM_CACHE"];
  if (env !== undefined && env !== "") return env;
  if (process.getuid?.() === 0) return "/var/cache/toasim";
  return join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "toasim");
}
