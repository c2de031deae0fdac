import type { Reporter, RunnerTask, RunnerTestFile } from "vitest/node";

/**
 * Prints one plain closing line, "tests: N passed, N failed, N skipped",
 * which CI reads whatever the runner; vitest's own summary is decorated.
 */
export default class SummaryReporter implements Reporter {
  onFinished(files: RunnerTestFile[] = []): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const walk = (t: RunnerTask): void => {
      if (t.type === "suite" || "tasks" in t) {
        for (const c of (t as { tasks?: RunnerTask[] }).tasks ?? []) walk(c);
        if (t.type === "suite") return;
      }
      if (t.type !== "test") return;
      const state = t.result?.state;
      if (state === "pass") passed++;
      else if (state === "fail") failed++;
      else skipped++;
    };
    for (const f of files) {
      for (const t of f.tasks) walk(t);
      if (f.result?.state === "fail" && f.tasks.length === 0) failed++;
    }
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
