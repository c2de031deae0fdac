import { writeSync } from "node:fs";
import { TunError, TunErrorCode } from "./errors.js";
import { libc, Sys } from "./libc.js";

/** Where iproute2 bind-mounts named namespaces (`ip netns add NAME`). */
export const NETNS_DIR = "/var/run/netns";

/** Throws INVALID_ARGUMENT unless `ns` can be a file name in NETNS_DIR. */
export function checkNetnsName(ns: string): void {
  if (ns === "" || ns === "." || ns === ".." || ns.includes("/") || ns.includes("\0")) {
    throw new TunError(
      TunErrorCode.invalidArgument,
      `bad network namespace name ${JSON.stringify(ns)}`,
    );
  }
}

export function netnsPath(ns: string): string {
  checkNetnsName(ns);
  return `${NETNS_DIR}/${ns}`;
}

/**
 * Runs `fn` with the calling thread switched into the named namespace, and
 * switches back before returning or throwing.
 *
 * setns() moves only the calling thread, so the saved namespace is
 * /proc/thread-self/ns/net (/proc/self resolves to the main thread, wrong on
 * a worker). `fn` must be synchronous and short: a child process spawned
 * while switched would start inside the namespace, and what it opens (a
 * /dev/net/tun fd, a /proc/sys/net file) belongs to the namespace it was
 * opened in. If switching back fails the thread would silently keep running
 * in the wrong namespace, with every later spawn and socket there, so the
 * process aborts instead.
 */
export function inNetns<T>(ns: string, fn: () => T): T {
  const path = netnsPath(ns);
  const c = libc();
  const self = c.open("/proc/thread-self/ns/net", Sys.O_RDONLY | Sys.O_CLOEXEC);
  if (self < 0) {
    throw new TunError(TunErrorCode.netnsFailed, "open /proc/thread-self/ns/net", c.errno());
  }
  const target = c.open(path, Sys.O_RDONLY | Sys.O_CLOEXEC);
  if (target < 0) {
    const errno = c.errno();
    c.close(self);
    throw new TunError(TunErrorCode.netnsFailed, `open ${path} (netns ${ns})`, errno);
  }
  try {
    if (c.setns(target, Sys.CLONE_NEWNET) < 0) {
      throw new TunError(TunErrorCode.netnsFailed, `setns into netns ${ns}`, c.errno());
    }
    try {
      return fn();
    } finally {
      if (c.setns(self, Sys.CLONE_NEWNET) < 0) {
        writeSync(2, `toasim: cannot setns back from netns ${ns} (errno ${c.errno()}); aborting\n`);
        process.abort();
      }
    }
  } finally {
    c.close(target);
    c.close(self);
  }
}
