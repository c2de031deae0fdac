import { connect } from "node:net";
import type { DecoderStats } from "../decoder/decoder.js";
import type { StatName } from "../fullnat-sim/stats.js";
import type { CaptureSession, InstanceControl, ScriptProgress, ScriptRun } from "./control.js";
import type { ControlRequest } from "./control-server.js";
import { RuntimeError, RuntimeErrorCode } from "./errors.js";

/**
 * The calls of InstanceControl on an instance that runs in another process,
 * over its control socket (control-server.ts). A connection per call; the
 * long ones (capture, scripted clients) keep theirs open until done, and
 * closing it stops them.
 */
export function remoteControl(socket: string): InstanceControl {
  return {
    stats: async () => (await ask(socket, { cmd: "stats" }))["stats"] as Record<StatName, number>,
    decoderStats: async () =>
      (await ask(socket, { cmd: "decoder" }))["decoder"] as DecoderStats | null,
    setFaults: async (plain) => {
      const a = await ask(socket, { cmd: "faults", faults: plain });
      return { rules: Number(a["rules"]) };
    },
    restart: async () => {
      await ask(socket, { cmd: "restart" });
    },
    stop: async () => {
      await ask(socket, { cmd: "stop" });
    },
    capture: (side, path, count) => remoteCapture(socket, side, path, count),
    script: (plain, onProgress) => remoteScript(socket, plain, onProgress),
  };
}

interface Session {
  /** Resolves when the instance closes the connection. */
  readonly closed: Promise<void>;
  send(req: ControlRequest): void;
}

/** A connection: `req` sent, each answer line to `onLine`, a failure answer as a RuntimeError. */
function open(
  socket: string,
  req: ControlRequest,
  onLine: (m: Record<string, unknown>) => void,
): Session {
  const s = connect(socket);
  const closed = new Promise<void>((resolve, reject) => {
    let buf = "";
    let failed: RuntimeError | null = null;
    s.setEncoding("utf8");
    s.on("connect", () => s.write(`${JSON.stringify(req)}\n`));
    s.on("data", (d: string) => {
      buf += d;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const text = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (text.trim() === "") continue;
        const m = JSON.parse(text) as Record<string, unknown>;
        if (m["ok"] === false) failed = answerError(m);
        else onLine(m);
      }
    });
    s.on("error", (e) =>
      reject(
        new RuntimeError(
          RuntimeErrorCode.unreachable,
          `cannot reach the instance at ${socket}: ${e.message}`,
          { cause: e },
        ),
      ),
    );
    s.on("close", () => (failed === null ? resolve() : reject(failed)));
  });
  return {
    closed,
    send: (r) => {
      if (!s.destroyed) s.write(`${JSON.stringify(r)}\n`);
    },
  };
}

function answerError(m: Record<string, unknown>): RuntimeError {
  const code = Object.values(RuntimeErrorCode).find((c) => c === m["code"]);
  return new RuntimeError(code ?? RuntimeErrorCode.refused, String(m["error"] ?? "refused"));
}

/** One request, its last answer line. */
async function ask(socket: string, req: ControlRequest): Promise<Record<string, unknown>> {
  let last: Record<string, unknown> | null = null;
  await open(socket, req, (m) => {
    last = m;
  }).closed;
  if (last === null)
    throw new RuntimeError(RuntimeErrorCode.stopped, `the instance at ${socket} gave no answer`);
  return last;
}

function remoteCapture(
  socket: string,
  side: "client" | "server",
  path: string,
  count: number,
): Promise<CaptureSession> {
  return new Promise((resolve, reject) => {
    let packets = 0;
    let session: Session | null = null;
    const s = open(socket, { cmd: "capture", side, path, count }, (m) => {
      if (m["type"] === "capture-started") {
        resolve({
          path: String(m["path"]),
          done: s.closed.then(() => packets),
          stop: () => session?.send({ cmd: "capture-stop" }),
        });
      } else if (m["type"] === "capture-done") packets = Number(m["packets"]);
    });
    session = s;
    s.closed.catch(reject);
  });
}

function remoteScript(
  socket: string,
  spec: unknown,
  onProgress: (p: ScriptProgress) => void,
): Promise<ScriptRun> {
  return new Promise((resolve, reject) => {
    let final: ScriptProgress | null = null;
    let session: Session | null = null;
    const s = open(socket, { cmd: "script", spec }, (m) => {
      if (m["type"] === "script-started") {
        resolve({ done, stop: () => session?.send({ cmd: "script-stop" }) });
        return;
      }
      const p = {
        results: m["results"],
        active: Number(m["active"]),
        elapsedMs: Number(m["elapsedMs"]),
      } as ScriptProgress;
      if (m["type"] === "script-done") final = p;
      else onProgress(p);
    });
    session = s;
    const done = s.closed.then(() => {
      if (final === null)
        throw new RuntimeError(RuntimeErrorCode.stopped, "the scripted clients did not finish");
      return final;
    });
    done.catch(() => {});
    // A refusal (bad spec, busy) closes the connection at once with {ok: false}.
    s.closed.catch(reject);
  });
}
