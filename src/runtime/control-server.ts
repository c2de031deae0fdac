import { rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import type { CaptureSession, InstanceControl, ScriptRun } from "./control.js";

/**
 * The control socket of a running instance: one JSON request per line, one
 * or more JSON answer lines, the same calls as InstanceControl (see
 * control-client.ts for the other end). Failures are answered as
 * {ok: false, code, error}; nothing a client sends can end the instance
 * except {"cmd": "stop"}.
 */

export type ControlRequest =
  | { cmd: "stats" }
  | { cmd: "decoder" }
  | { cmd: "capture"; side: "client" | "server"; path: string; count: number }
  | { cmd: "capture-stop" }
  /** `faults`: the plain form parseFaultConfig reads, or null for none. */
  | { cmd: "faults"; faults: unknown }
  | { cmd: "restart" }
  /** `spec`: the plain form parseScriptSpec reads; answered with progress lines until done. */
  | { cmd: "script"; spec: unknown }
  | { cmd: "script-stop" }
  | { cmd: "stop" };

export interface ControlServer {
  close(): Promise<void>;
}

export async function serveControl(path: string, inst: InstanceControl): Promise<ControlServer> {
  const clients = new Set<Socket>();
  const server = createServer((s) => {
    clients.add(s);
    s.on("close", () => clients.delete(s));
    serveClient(s, inst);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    rmSync(path, { force: true });
    server.listen(path, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        // A capture client waits for its last line: close it, or close() never returns.
        for (const c of clients) c.destroy();
        server.close(() => resolve());
      }),
  };
}

function failure(e: unknown): object {
  const code = (e as { code?: unknown }).code;
  return {
    ok: false,
    code: typeof code === "string" ? code : "REFUSED",
    error: e instanceof Error ? e.message : String(e),
  };
}

function serveClient(s: Socket, inst: InstanceControl): void {
  let input = "";
  let capture: CaptureSession | null = null;
  let script: ScriptRun | null = null;
  const line = (o: object) => {
    if (!s.destroyed) s.write(`${JSON.stringify(o)}\n`);
  };
  const last = (o: object) => {
    if (!s.destroyed) s.end(`${JSON.stringify(o)}\n`);
  };
  s.setEncoding("utf8");
  s.on("error", () => {});
  // A client that goes away stops what it started.
  s.on("close", () => {
    capture?.stop();
    script?.stop();
  });
  const handle = async (req: ControlRequest): Promise<void> => {
    switch (req.cmd) {
      case "stats":
        last({ ok: true, stats: await inst.stats() });
        return;
      case "decoder":
        last({ ok: true, decoder: await inst.decoderStats() });
        return;
      case "capture": {
        capture = await inst.capture(req.side, req.path, req.count);
        line({ ok: true, type: "capture-started", side: req.side, path: capture.path });
        const packets = await capture.done;
        capture = null;
        last({ ok: true, type: "capture-done", side: req.side, packets });
        return;
      }
      case "capture-stop":
        capture?.stop();
        return;
      case "faults":
        last({ ok: true, ...(await inst.setFaults(req.faults)) });
        return;
      case "restart":
        await inst.restart();
        last({ ok: true });
        return;
      case "script": {
        script = await inst.script(req.spec, (p) =>
          line({ ok: true, type: "script-progress", ...p }),
        );
        line({ ok: true, type: "script-started" });
        const p = await script.done;
        script = null;
        last({ ok: true, type: "script-done", ...p });
        return;
      }
      case "script-stop":
        script?.stop();
        return;
      case "stop":
        last({ ok: true });
        void inst.stop();
        return;
      default:
        last({ ok: false, code: "BAD_REQUEST", error: "unknown command" });
    }
  };
  s.on("data", (chunk: string) => {
    input += chunk;
    for (let nl = input.indexOf("\n"); nl >= 0; nl = input.indexOf("\n")) {
      const text = input.slice(0, nl);
      input = input.slice(nl + 1);
      let req: ControlRequest;
      try {
        req = JSON.parse(text) as ControlRequest;
      } catch {
        last({ ok: false, code: "BAD_REQUEST", error: "bad request" });
        return;
      }
      handle(req).catch((e: unknown) => last(failure(e)));
    }
  });
}
