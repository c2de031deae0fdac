import type { Command } from "commander";
import { type DemoResult, demo } from "../api/demo.js";
import {
  addDecoderOptions,
  type DecoderFlags,
  decoderFlagError,
  decoderOf,
} from "./decoder-flags.js";
import { asCliError } from "./errors.js";
import { helpWidth } from "./help-text.js";
import type { Io } from "./io.js";
import { addProfileOptions, type ProfileFlags, profileList, settingsOf } from "./profile-flags.js";

interface DemoFlags extends ProfileFlags, DecoderFlags {
  json?: boolean;
}

export function registerDemo(program: Command, io: Io): void {
  const cmd = program.command("demo");
  addProfileOptions(cmd);
  addDecoderOptions(cmd);
  cmd
    .summary("set up, run real clients from several addresses, show what the server saw, tear down")
    .description(
      "One command end to end: starts a gateway instance, a server in the server namespace that reports the client as an application learns it (a PROXY header, else the decoder's getsockopt answer 2049/2048, else getpeername / recvfrom), runs TCP and UDP clients from several IPv4 and IPv6 addresses (NAT64 included) through the VIPs, prints client -> seen -> PASS/FAIL, and removes everything. A row passes when the server saw the real client. Without a TOA/UOA decoder in the server's kernel, TOA and UOA rows fail: the server sees the gateway's local address, which is exactly what the decoder is for.",
    )
    .option("--json", "print {ok, profile, decoder, results: [...]} instead of the table")
    .addHelpText(
      "after",
      `\n${profileList(helpWidth(io))}\n\nExamples:\n  toasim demo\n  toasim demo --profile proxy-v2 --json\n  toasim demo --decoder none`,
    )
    .action(async (f: DemoFlags) => {
      const progress = (s: string) => {
        if (!f.json && process.stderr.isTTY) io.err(`${s}\n`);
      };
      const decoder = decoderOf(f);
      let r: DemoResult;
      try {
        r = await demo({
          // Text values: the API reads them as a flag's words.
          ...(f.profile !== undefined ? { profile: f.profile as never } : {}),
          settings: settingsOf(f) as never,
          ...(Object.keys(decoder).length > 0 ? { decoder: decoder as never } : {}),
          onProgress: progress,
          onNote: (n) => {
            if (!f.json) io.err(`toasim demo: ${n}\n`);
          },
        });
      } catch (e) {
        throw asCliError(decoderFlagError(e));
      }
      printDemo(io, r, f.json === true);
      process.exitCode = r.ok ? 0 : 1;
    });
}

function printDemo(io: Io, r: DemoResult, json: boolean): void {
  if (json) {
    io.out(`${JSON.stringify(r)}\n`);
    return;
  }
  io.out(`toasim demo: profile ${r.profile}, decoder ${r.decoder}\n`);
  io.out(
    `  ${"proto".padEnd(5)} ${"family".padEnd(6)} ${"client sent".padEnd(28)} ${"server saw".padEnd(34)} result\n`,
  );
  for (const row of r.results) {
    const s = row.seen;
    const seen =
      "error" in s
        ? `(${s.error})`
        : `${endpoint(s.proxy?.addr ?? s.sockopt?.addr ?? s.peer, s.proxy?.port ?? s.sockopt?.port ?? s.peerPort)} ${s.via}`;
    io.out(
      `  ${row.proto.padEnd(5)} ${row.family.padEnd(6)} ${row.client.padEnd(28)} ${seen.padEnd(34)} ${row.pass ? "PASS" : "FAIL"}\n`,
    );
  }
  const failed = r.results.filter((x) => !x.pass).length;
  io.out(r.ok ? "all rows PASS\n" : `${failed} of ${r.results.length} rows FAIL\n`);
  if (!r.ok && r.decoder === "none" && r.profile !== "proxy-v1" && r.profile !== "proxy-v2")
    io.out(
      "  (no TOA/UOA decoder in the server's kernel: the server sees the gateway's local address)\n",
    );
}

function endpoint(addr: string, port: number): string {
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}
