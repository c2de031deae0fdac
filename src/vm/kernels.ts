import { VmError, VmErrorCode } from "./errors.js";

/**
 * The Debian kernels the VM can boot, by the name users give (`--kernel`).
 * Each resolves, through the suite's `linux-image-amd64` metapackage, to the
 * newest ABI there (6.1.0-57-amd64, 6.12.95+deb12-amd64, ...): the exact
 * version moves as the archive is updated, the series does not.
 */
export const KERNEL_SERIES = {
  "5.10": { suites: ["bullseye", "bullseye-security"], note: "Debian 11 bullseye" },
  "6.1": { suites: ["bookworm", "bookworm-security"], note: "Debian 12 bookworm" },
  "6.12": { suites: ["bookworm-backports"], note: "Debian 12 bookworm-backports" },
  sid: { suites: ["sid"], note: "Debian unstable (7.x); its headers want sid's gcc" },
} as const;

export type KernelSeries = keyof typeof KERNEL_SERIES;

export const SERIES_NAMES = Object.keys(KERNEL_SERIES) as KernelSeries[];

export function kernelSeries(name: string): KernelSeries {
  if (Object.hasOwn(KERNEL_SERIES, name)) return name as KernelSeries;
  throw new VmError(
    VmErrorCode.unknownKernel,
    `unknown kernel "${name}": choose one of ${SERIES_NAMES.join(", ")}`,
  );
}

/** The archive a suite lives in: security updates have their own. */
export function suiteArchive(suite: string): "debian" | "debian-security" {
  return suite.endsWith("-security") ? "debian-security" : "debian";
}
