import type { Command } from "commander";
import {
  isProfileName,
  PROFILE_NAMES,
  PROFILES,
  type Profile,
  ProfileError,
  type ProfileSettings,
  resolveProfile,
  type ToaCarry,
} from "../fullnat-sim/profiles.js";
import { TOA_LAYOUTS } from "../option-codec/toa.js";
import { CliError } from "./errors.js";
import { choiceFlag, intFlag, listFlag } from "./parse-flags.js";

// The flags that choose a gateway profile and its unconfirmed settings,
// shared by every command that runs a gateway (craft, up, demo).

const CARRY_NAMES = {
  syn: "syn",
  "handshake-ack": "handshakeAck",
  data: "dataUntilAcked",
  fin: "fin",
  every: "every",
} as const satisfies Record<string, keyof ToaCarry>;
type CarryName = keyof typeof CARRY_NAMES;

export interface ProfileFlags {
  profile: string;
  uoa?: string;
  maxTrail?: string;
  toaKind?: string;
  toaKindV6?: string;
  toaLayout?: string;
  afOrder?: string;
  carry?: string;
  mssClamp?: string;
  prune?: string;
  stripClientToa?: string;
}

export function profileList(): string {
  return PROFILE_NAMES.map((n) => `  ${n.padEnd(11)} ${PROFILES[n].summary}`).join("\n");
}

export function addProfileOptions(cmd: Command): Command {
  return cmd
    .option("--profile <name>", `gateway profile (${PROFILE_NAMES.join(", ")})`, "dpvs")
    .option("--uoa <mode>", "UDP: UOA mode opp or ipo (profiles dpvs, noa, custom)")
    .option("--max-trail <n>", "UDP: how many first datagrams of a flow carry the UOA")
    .option(
      "--toa-kind <n>",
      "override the TOA option kind (v4 clients, and v6 unless --toa-kind-v6)",
    )
    .option("--toa-kind-v6 <n>", "override the TOA option kind for IPv6 clients")
    .option("--toa-layout <layout>", `override the TOA layout (${TOA_LAYOUTS.join(", ")})`)
    .option("--af-order <order>", "ttm_peer af byte order: host or network")
    .option(
      "--carry <list>",
      `packets that carry the TOA, comma-separated: ${Object.keys(CARRY_NAMES).join(", ")}`,
    )
    .option("--mss-clamp <on|off>", "lower the MSS in SYN-ACKs by the TOA's length (off: a bug)")
    .option("--prune <on|off>", "make room for the TOA by removing options (DPVS; off: a bug)")
    .option("--strip-client-toa <on|off>", "remove TOAs clients put in (off: a bug)");
}

function settingsFrom(f: ProfileFlags): ProfileSettings {
  const s: { -readonly [K in keyof ProfileSettings]: ProfileSettings[K] } = {};
  if (f.toaKind !== undefined) s.toaKind = intFlag("--toa-kind", f.toaKind, 2, 255);
  if (f.toaKindV6 !== undefined) s.toaKindV6 = intFlag("--toa-kind-v6", f.toaKindV6, 2, 255);
  if (f.toaLayout !== undefined) s.toaLayout = choiceFlag("--toa-layout", f.toaLayout, TOA_LAYOUTS);
  if (f.afOrder !== undefined) {
    s.afOrder = choiceFlag("--af-order", f.afOrder, ["host", "network"] as const);
  }
  if (f.carry !== undefined) {
    const names = listFlag<CarryName>("--carry", f.carry, Object.keys(CARRY_NAMES) as CarryName[]);
    s.carry = names.map((n) => CARRY_NAMES[n]);
  }
  if (f.uoa !== undefined) s.uoaMode = choiceFlag("--uoa", f.uoa, ["opp", "ipo"] as const);
  if (f.maxTrail !== undefined) s.maxTrail = intFlag("--max-trail", f.maxTrail, 0, 1_000_000);
  const onOff = (flag: string, v: string) => choiceFlag(flag, v, ["on", "off"] as const) === "on";
  if (f.mssClamp !== undefined) s.lowerMss = onOff("--mss-clamp", f.mssClamp);
  if (f.prune !== undefined) s.prune = onOff("--prune", f.prune);
  if (f.stripClientToa !== undefined)
    s.keepClientToa = !onOff("--strip-client-toa", f.stripClientToa);
  return s;
}

export function profileFrom(f: ProfileFlags): Profile {
  if (!isProfileName(f.profile)) {
    throw new CliError(
      "BAD_FLAG",
      "--profile",
      `unknown profile "${f.profile}" (one of ${PROFILE_NAMES.join(", ")})`,
    );
  }
  try {
    return resolveProfile(f.profile, settingsFrom(f));
  } catch (e) {
    if (e instanceof ProfileError) throw new CliError("BAD_COMBINATION", "--profile", e.message);
    throw e;
  }
}
