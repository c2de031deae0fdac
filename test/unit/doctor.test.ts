import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { FEATURE_NAMES, FEATURES } from "../../src/api/doctor.js";

// One list of Debian packages a user is told to install (toasim doctor),
// one the project's own setup installs (scripts/setup.sh): the second must
// hold the first, or CI would pass on a machine a user cannot reproduce.

const ROOT = resolve(import.meta.dirname, "../..");

describe("toasim doctor's packages", () => {
  it("are all installed by scripts/setup.sh (apt and dpkg come with Debian)", () => {
    const setup = readFileSync(join(ROOT, "scripts/setup.sh"), "utf8");
    const debs =
      /DEBS="([^"]*)"/
        .exec(setup)?.[1]
        ?.split(/\s+/)
        .filter((x) => x !== "") ?? [];
    expect(debs.length).toBeGreaterThan(10);
    const wanted = new Set<string>();
    for (const f of FEATURE_NAMES) for (const p of FEATURES[f].programs) wanted.add(p.pkg);
    const extra = [...wanted].filter(
      (p) => !debs.includes(p) && !["apt", "dpkg", "qemu-system-arm"].includes(p),
    );
    expect(extra).toEqual([]);
  });
});
