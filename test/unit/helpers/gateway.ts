import type { GatewayConfig } from "../../../src/fullnat-sim/config.js";
import { Gateway } from "../../../src/fullnat-sim/gateway.js";
import {
  type ProfileName,
  type ProfileSettings,
  resolveProfile,
} from "../../../src/fullnat-sim/profiles.js";
import { defaultGatewayConfig } from "../../../src/runtime/defaults.js";

/** What a unit test changes of `toasim up`'s defaults: the profile's settings, any config field. */
export type GatewayOverrides = Partial<GatewayConfig> & { settings?: ProfileSettings };

/**
 * The gateway config the unit tests start from: `toasim up`'s defaults
 * (src/runtime/defaults.ts: services, LIP pools, ports, MTU 1500), room for
 * 1024 connections, the profile resolved with `settings`, then `overrides`.
 */
export function gatewayConfigFor(profile: ProfileName, o: GatewayOverrides = {}): GatewayConfig {
  const { settings = {}, ...fields } = o;
  return { ...defaultGatewayConfig(resolveProfile(profile, settings), 1024), ...fields };
}

export const gatewayFor = (profile: ProfileName, o: GatewayOverrides = {}): Gateway =>
  new Gateway(gatewayConfigFor(profile, o));
