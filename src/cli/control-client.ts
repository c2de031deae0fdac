import { ControlError, type ControlSession, controlRequest } from "../runtime/control-client.js";
import { CliError } from "./errors.js";

export type { ControlSession };

/** controlRequest, with an unreachable instance as a CliError (exit 1). */
export function request(
  socket: string,
  req: object,
  onLine: (msg: Record<string, unknown>) => void,
): ControlSession {
  const session = controlRequest(socket, req, onLine);
  return {
    send: session.send,
    done: session.done.catch((e: unknown) => {
      if (e instanceof ControlError) throw new CliError("RUNTIME", null, e.message, 1);
      throw e;
    }),
  };
}
