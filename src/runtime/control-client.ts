import { connect } from "node:net";

export interface ControlSession {
  /** Resolves when the instance closes the connection. */
  readonly done: Promise<void>;
  /** Sends one more request line on the same connection. */
  send(req: object): void;
}

/** The control socket cannot be reached (the instance is gone, or not ours). */
export class ControlError extends Error {
  override readonly name = "ControlError";
}

/**
 * Sends one request line to a running instance's control socket and calls
 * `onLine` for each JSON line of the answer until the instance closes it.
 */
export function controlRequest(
  socket: string,
  req: object,
  onLine: (msg: Record<string, unknown>) => void,
): ControlSession {
  const s = connect(socket);
  const done = new Promise<void>((resolve, reject) => {
    let buf = "";
    s.setEncoding("utf8");
    s.on("connect", () => s.write(`${JSON.stringify(req)}\n`));
    s.on("data", (d: string) => {
      buf += d;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() !== "") onLine(JSON.parse(line) as Record<string, unknown>);
      }
    });
    s.on("error", (e) =>
      reject(new ControlError(`cannot reach the instance at ${socket}: ${e.message}`)),
    );
    s.on("close", () => resolve());
  });
  return { done, send: (r) => s.write(`${JSON.stringify(r)}\n`) };
}

/** One request, its last answer line. */
export async function controlAsk(socket: string, req: object): Promise<Record<string, unknown>> {
  let last: Record<string, unknown> = {};
  await controlRequest(socket, req, (m) => {
    last = m;
  }).done;
  return last;
}
