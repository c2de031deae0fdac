/**
 * What a running instance must undo if the process ends under it: on exit,
 * and on a signal nobody else handles. A signal whose default would end the
 * process without any `exit` handler (SIGINT, SIGTERM, SIGHUP: a test
 * runner's Ctrl-C) first removes every instance, then ends the process by
 * the same signal, as it would have ended. A program that handles the
 * signal itself (toasim up stops gracefully) is left to do so.
 */

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
const hooks = new Set<() => void>();

function runAll(): void {
  for (const h of [...hooks]) {
    try {
      h();
    } catch {
      // One failed teardown must not stop the others.
    }
  }
}

const onExit = (): void => runAll();

function onSignal(sig: NodeJS.Signals): void {
  // Someone else handles it: the process goes on, and so do the instances.
  if (process.listenerCount(sig) > 1) return;
  runAll();
  uninstall();
  process.kill(process.pid, sig);
}

const handlers = new Map(SIGNALS.map((s) => [s, () => onSignal(s)] as const));

function install(): void {
  process.on("exit", onExit);
  for (const [s, h] of handlers) process.on(s, h);
}

function uninstall(): void {
  process.off("exit", onExit);
  for (const [s, h] of handlers) process.off(s, h);
}

/** Runs `teardown` (synchronous, idempotent) if the process ends first; returns its removal. */
export function onProcessEnd(teardown: () => void): () => void {
  if (hooks.size === 0) install();
  hooks.add(teardown);
  return () => {
    hooks.delete(teardown);
    if (hooks.size === 0) uninstall();
  };
}
