import { listStates, ownerAlive, type StateEntry } from "../tun/topology.js";
import { CliError } from "./errors.js";

/** The running instance a command talks to: the one given by --id, or the only one. */
export function findInstance(id: string | undefined): StateEntry {
  const live = listStates().filter((e) => ownerAlive(e.state));
  if (id !== undefined) {
    const e = live.find((x) => x.id === id);
    if (!e) {
      const ids = live.map((x) => x.id).join(", ");
      throw new CliError(
        "BAD_FLAG",
        "--id",
        `no running instance ${id}${ids ? ` (running: ${ids})` : ""}`,
      );
    }
    return e;
  }
  if (live.length === 0) {
    throw new CliError(
      "NO_INSTANCE",
      null,
      "no toasim instance is running (start one with: toasim up)",
      1,
    );
  }
  if (live.length > 1) {
    throw new CliError(
      "BAD_FLAG",
      "--id",
      `${live.length} instances are running (${live.map((x) => x.id).join(", ")}): choose one`,
    );
  }
  return live[0]!;
}
