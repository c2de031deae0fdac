import { existsSync } from "node:fs";
import type { Command } from "commander";
import { shippedPath } from "../package-files.js";
import type { Io } from "./io.js";

/** The reader servers shipped with toasim: one per language, the same flags and output. */
const READERS = [
  {
    name: "node",
    path: "node/reader-server.mjs",
    run: (p: string) => `node ${p} --tcp 192.0.2.10:8080 --udp 192.0.2.10:5353`,
  },
  {
    name: "python",
    path: "python/reader_server.py",
    run: (p: string) => `python3 ${p} --tcp 192.0.2.10:8080 --udp 192.0.2.10:5353`,
  },
  {
    name: "c",
    path: "c/reader-server.c",
    run: (p: string) =>
      `make -C ${p.replace(/\/reader-server\.c$/, "")} && ${p.replace(/\.c$/, "")} --tcp 192.0.2.10:8080`,
  },
] as const;

export function registerExamples(program: Command, io: Io): void {
  program
    .command("examples")
    .summary("where the reader servers (Node, Python, C) and the CI recipe are")
    .description(
      "toasim ships small servers that ask the decoder for the client with every ABI (getpeername, getsockopt 2049, 4096, 1345, 2048) and print one JSON line per connection or datagram: a starting point for your own server's code, and what toasim scenario and the tests run. This prints where they are in the installed package and how to run each behind a running instance; docs/readers.md describes them. --path prints the folder alone.",
    )
    .option("--path", "print only the examples folder")
    .option("--json", "one JSON object: {dir, readers: [{name, path, run}], ci}")
    .addHelpText(
      "after",
      '\nExamples:\n  toasim examples\n  cp -r "$(toasim examples --path)/python" ./my-server',
    )
    .action((f: { path?: boolean; json?: boolean }) => {
      const dir = shippedPath("examples");
      if (f.path) {
        io.out(`${dir}\n`);
        return;
      }
      const readers = READERS.map((r) => {
        const p = shippedPath("examples", r.path);
        return {
          name: r.name,
          path: p,
          present: existsSync(p),
          run: `toasim exec rs -- ${r.run(p)}`,
        };
      });
      const ci = shippedPath("examples", "ci");
      if (f.json) {
        io.out(`${JSON.stringify({ dir, readers, ci })}\n`);
        return;
      }
      io.out(`toasim examples in ${dir}\n\n`);
      for (const r of readers) io.out(`${r.name.padEnd(7)} ${r.path}\n        ${r.run}\n`);
      io.out(`\nCI recipe (GitHub Actions and plain shell): ${ci}\n`);
      io.out(
        "Then, from the client side: toasim exec client -- sh -c 'echo hi | socat - TCP4:203.0.113.10:80'\n",
      );
    });
}
