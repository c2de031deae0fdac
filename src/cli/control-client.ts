import { connect } from "node:net";
import { CliError } from "./errors.js";

export interface ControlSession {
  /** Resolves when the instance closes the connection. */
  readonly done: Promise<void>;
  /** Sends one more request line on the same connection. */
  send(req: object): void;
}

/**
 * Sends one request line to a running instance's control socket and calls
 * `onLine` for each JSON line of the answer until the instance closes it.
 */
export function request(
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
      reject(
        new CliError("RUNTIME", null, `cannot reach the instance at ${socket}: ${e.message}`, 1),
      ),
    );
    s.on("close", () => resolve());
  });
  return { done, send: (r) => s.write(`${JSON.stringify(r)}\n`) };
}
