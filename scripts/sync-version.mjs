#!/usr/bin/env node
// package.json holds the version; this writes it where the kernel module
// needs it as text: kmod/version.h (MODULE_VERSION) and kmod/dkms.conf
// (dkms names the source folder after it). `npm version` runs it, and
// test/unit/versions.test.ts fails when the two fall behind.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) {
  console.error(`sync-version: package.json's version "${version}" is not x.y.z[-pre]`);
  process.exit(1);
}

const header = join(root, "kmod/version.h");
writeFileSync(
  header,
  [
    "/* SPDX-License-Identifier: GPL-2.0 */",
    "/* Written from package.json by scripts/sync-version.mjs: do not edit. */",
    "#ifndef TOASIM_VERSION_H",
    "#define TOASIM_VERSION_H",
    "",
    `#define TOASIM_VERSION "${version}"`,
    "",
    "#endif",
    "",
  ].join("\n"),
);

const dkms = join(root, "kmod/dkms.conf");
const conf = readFileSync(dkms, "utf8");
const next = conf.replace(/^PACKAGE_VERSION=.*$/m, `PACKAGE_VERSION="${version}"`);
if (next === conf && !conf.includes(`PACKAGE_VERSION="${version}"`)) {
  console.error("sync-version: kmod/dkms.conf has no PACKAGE_VERSION line");
  process.exit(1);
}
writeFileSync(dkms, next);
console.log(`sync-version: kmod/version.h and kmod/dkms.conf say ${version}`);
