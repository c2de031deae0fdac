import type { Command } from "commander";
import { CARRY_NAMES, SETTING_NAMES } from "../api/options.js";
import { PROFILE_NAMES, PROFILES } from "../fullnat-sim/profiles.js";
import { TOA_LAYOUTS } from "../option-codec/toa.js";
import { helpList } from "./help-text.js";

// The flags that choose a gateway profile and its settings, shared by every
// command that runs a gateway (craft, up, demo). Their values go to the API
// as given (text); it checks them and names the option, which the CLI turns
// back into the flag (errors.ts).

export type ProfileFlags = { profile?: string } & {
  [K in (typeof SETTING_NAMES)[number]]?: string;
};

/** "Profiles:" and what each sends, wrapped to `width`. */
export function profileList(width: number): string {
  return helpList(
    "Profiles",
    PROFILE_NAMES.map((n) => [n, PROFILES[n].summary] as const),
    width,
  );
}

export function addProfileOptions(cmd: Command): Command {
  return cmd
    .option("--profile <name>", `gateway profile (default dpvs): ${PROFILE_NAMES.join(", ")}`)
    .option("--uoa <mode>", "UDP: UOA mode opp or ipo (profiles dpvs, noa, custom)")
    .option("--max-trail <n>", "UDP: how many first datagrams of a flow carry the UOA")
    .option("--toa-kind <n>", "the TOA option kind (v4 clients, and v6 unless --toa-kind-v6)")
    .option("--toa-kind-v6 <n>", "the TOA option kind for IPv6 clients")
    .option("--toa-layout <layout>", `the TOA layout: ${TOA_LAYOUTS.join(", ")}`)
    .option("--af-order <order>", "ttm_peer af byte order: host or network")
    .option(
      "--carry <list>",
      `packets that carry the TOA, comma-separated: ${Object.keys(CARRY_NAMES).join(", ")}`,
    )
    .option("--mss-clamp <on|off>", "lower the MSS in SYN-ACKs by the TOA's length (off: a bug)")
    .option("--prune <on|off>", "make room for the TOA by removing options (DPVS; off: a bug)")
    .option("--strip-client-toa <on|off>", "remove TOAs clients put in (off: a bug)");
}

/** The settings flags that were given, as text. */
export function settingsOf(f: ProfileFlags): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of SETTING_NAMES) {
    const v = f[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
