/**
 * toasim's programmatic API: everything the CLI does, as typed calls for
 * test suites. `toasim/sockopt` holds the readers a server uses to ask its
 * decoder for the client (getpeername, the getsockopt ABIs).
 *
 *   import { up } from "toasim";
 *   const gw = await up({ profile: "dpvs" });
 *   try {
 *     const server = gw.spawn("rs", ["python3", "-m", "http.server", "8080"]);
 *     await server.waitForOutput("Serving");
 *     const r = await gw.exec("client", ["curl", "-s", "http://203.0.113.10/"]);
 *   } finally {
 *     await gw.stop();
 *   }
 */

export {
  type CarrierMark,
  CRAFT_DEFAULTS,
  type CraftedPacketInfo,
  type CraftOptions,
  type CraftResult,
  craft,
  writePcap,
} from "./api/craft.js";
export { type DemoOptions, type DemoResult, type DemoRow, demo } from "./api/demo.js";
export {
  type DoctorReport,
  doctor,
  FEATURE_NAMES,
  type FeatureName,
  type FeatureReport,
  installPackages,
} from "./api/doctor.js";
export { ToasimError, ToasimErrorCode } from "./api/errors.js";
export {
  type Capture,
  type CaptureOptions,
  type ExecOptions,
  type ExecResult,
  type GatewayStats,
  Instance,
  type InstanceDescription,
  type ProcessOptions,
  type Side,
  type SpawnOptions,
} from "./api/instance.js";
export {
  CARRY_NAMES,
  type CarryName,
  type DecoderMode,
  type DecoderOptions,
  type FaultsSpec,
  type GatewaySettings,
  type RsNetns,
  SETTING_NAMES,
  type ServiceInfo,
  type ServiceSpec,
  type TimeoutOptions,
  type UpOptions,
} from "./api/options.js";
export { type ExitStatus, NsProcess, type WaitOptions } from "./api/process.js";
export {
  checkScenario,
  listScenarios,
  runScenario,
  type Scenario,
  type ScenarioInfo,
  type ScenarioRun,
  type ScenarioRunOptions,
  scenarioFiles,
  scenarioLibrary,
  scenarioPassed,
  type VariantOutcome,
  type VariantResult,
} from "./api/scenarios.js";
export {
  attach,
  type DownResult,
  down,
  instances,
  LocalInstance,
  type UpHooks,
  up,
} from "./api/up.js";
export type { ScriptResults } from "./craft/scripted-clients.js";
export type { DecoderStats } from "./decoder/decoder.js";
export { DecoderError, DecoderErrorCode } from "./decoder/errors.js";
export { GatewayError } from "./fullnat-sim/errors.js";
export { PROFILE_NAMES, type ProfileName } from "./fullnat-sim/profiles.js";
export type { StatName } from "./fullnat-sim/stats.js";
export { CodecError, CodecErrorCode } from "./option-codec/errors.js";
export { packageVersion } from "./package-files.js";
export type { ScriptProgress } from "./runtime/control.js";
export { RuntimeError, RuntimeErrorCode } from "./runtime/errors.js";
export { ScenarioError } from "./scenario/errors.js";
export { TunError, TunErrorCode } from "./tun/errors.js";
export { VmError, VmErrorCode } from "./vm/errors.js";
