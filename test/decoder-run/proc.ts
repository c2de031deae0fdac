import { type ChildProcess, spawn } from "node:child_process";
import { runProcess } from "../../src/run-process.js";

// Child processes for the scripts that run inside the test VM (compiled by
// `npm run build`, run with node from the shared host root). Every wait has
// a time limit; nothing here throws past a stop().

export interface Done {
  code: number | null;
  stdout: string;
  stderr: string;
}

export async function run(argv: readonly string[], ms = 20_000, input?: string): Promise<Done> {
  const r = await runProcess(argv, { timeoutMs: ms, input: input ?? "", keepAll: true });
  if (r.spawnError !== null)
    return { code: null, stdout: r.stdout, stderr: r.stderr + r.spawnError.message };
  return {
    code: r.code,
    stdout: r.stdout,
    stderr: r.timedOut ? `${r.stderr}[killed after ${ms} ms]` : r.stderr,
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A long-running child in a process group of its own, so that stop() ends
 * what it started too (a shell pipeline's members would otherwise keep its
 * output pipes open, and it would never be seen to close); its output is
 * kept.
 */
export class Bg {
  readonly proc: ChildProcess;
  out = "";
  err = "";
  exited = false;
  private readonly exitP: Promise<void>;

  constructor(readonly argv: readonly string[]) {
    this.proc = spawn(argv[0]!, argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    this.proc.stdout!.on("data", (d: Buffer) => {
      this.out += d.toString();
    });
    this.proc.stderr!.on("data", (d: Buffer) => {
      this.err += d.toString();
    });
    this.exitP = new Promise((r) => {
      this.proc.on("close", () => {
        this.exited = true;
        r();
      });
      this.proc.on("error", (e) => {
        this.err += e.message;
        this.exited = true;
        r();
      });
    });
  }

  async until(pred: () => boolean, ms: number, what: string): Promise<void> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (this.exited) throw new Error(`${this.argv.join(" ")} exited before ${what}: ${this.err}`);
      if (Date.now() > end) throw new Error(`no ${what} within ${ms} ms: ${this.err}`);
      await sleep(50);
    }
  }

  private signal(sig: NodeJS.Signals): void {
    const pid = this.proc.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // The group is gone already.
    }
  }

  async stop(sig: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.exited) return;
    this.signal(sig);
    const t = sleep(8000).then(() => false);
    if (!(await Promise.race([this.exitP.then(() => true), t]))) {
      this.signal("SIGKILL");
      await Promise.race([this.exitP, sleep(5000)]);
      this.exited = true;
    }
  }
}
