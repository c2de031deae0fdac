import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { packageVersion } from "../../src/package-files.js";

// package.json holds the version; what ships beside the code says the same.

const ROOT = resolve(import.meta.dirname, "../..");
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");

describe("the version", () => {
  const version = (JSON.parse(read("package.json")) as { version: string }).version;

  it("is package.json's for the code (toasim --version)", () => {
    expect(packageVersion()).toBe(version);
  });

  it("is package.json's for the kernel module and its dkms.conf (scripts/sync-version.mjs)", () => {
    expect(read("kmod/main.c")).toContain("MODULE_VERSION(TOASIM_VERSION);");
    expect(read("kmod/version.h")).toContain(`#define TOASIM_VERSION "${version}"`);
    expect(read("kmod/dkms.conf")).toContain(`PACKAGE_VERSION="${version}"`);
  });
});
