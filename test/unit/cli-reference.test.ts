import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { program } from "../../src/cli/main.js";

// docs/cli.md is every command's --help, as the CLI prints it: this test
// fails when they differ (UPDATE_DOCS=1, or `npm run docs:cli`, rewrites
// the file), and checks that help is wrapped once, to the width asked for.

const ROOT = resolve(import.meta.dirname, "../..");
const REFERENCE = join(ROOT, "docs/cli.md");
const WIDTH = 100;

/** Every command under `cmd`, depth first, with its full name. */
function walk(cmd: Command, prefix: string[] = []): { name: string; cmd: Command }[] {
  const name = [...prefix, cmd.name()];
  const out = [{ name: name.join(" "), cmd }];
  for (const c of cmd.commands) if (c.name() !== "help") out.push(...walk(c, name));
  return out;
}

function helpAt(columns: number): { name: string; text: string }[] {
  let buf = "";
  const root = program({ out: (s) => (buf += s), err: () => {}, columns });
  return walk(root).map(({ name, cmd }) => {
    buf = "";
    cmd.outputHelp();
    return { name, text: buf };
  });
}

function reference(): string {
  const parts = [
    "# The toasim CLI",
    "",
    "Every command's `--help`, as `toasim` prints it in a terminal 100 columns wide. Generated",
    "from the commands themselves (`npm run docs:cli`); a unit test fails when this page and the",
    "help differ. [The README](../README.md) has the tour, the other pages of [docs/](README.md)",
    "the details.",
    "",
  ];
  const all = helpAt(WIDTH);
  parts.push("Commands:", "");
  for (const { name } of all.slice(1)) parts.push(`- [\`${name}\`](#${name.replace(/ /g, "-")})`);
  parts.push("");
  for (const { name, text } of all) {
    parts.push(`## ${name}`, "", "```text", text.trimEnd(), "```", "");
  }
  return parts.join("\n");
}

describe("the CLI reference (docs/cli.md)", () => {
  it("is every command's help, as printed", () => {
    const want = reference();
    if (process.env["UPDATE_DOCS"] === "1") writeFileSync(REFERENCE, want);
    const have = readFileSync(REFERENCE, "utf8");
    expect(have, "docs/cli.md is stale: run npm run docs:cli").toBe(want);
  });

  it("covers every command, each with examples", () => {
    const all = helpAt(WIDTH);
    expect(all.map((x) => x.name)).toEqual(
      expect.arrayContaining([
        "toasim up",
        "toasim exec",
        "toasim demo",
        "toasim craft",
        "toasim doctor",
        "toasim examples",
        "toasim vm",
        "toasim scenario run",
        "toasim fault set",
        "toasim decoder load",
        "toasim client run",
      ]),
    );
    for (const { name, text } of all) {
      // Groups (toasim scenario, fault, decoder, client) list their commands instead.
      if (/\nCommands:\n/.test(text)) continue;
      expect(text, name).toMatch(/\nExamples?:\n {2}\S/);
    }
  });
});

describe("help text is wrapped once, to the terminal", () => {
  it("has no hard-wrapped prose: on a very wide terminal every paragraph is one line", () => {
    for (const { name, text } of helpAt(1000)) {
      const lines = text.split("\n");
      lines.forEach((line, i) => {
        const prev = lines[i - 1] ?? "";
        // A line of prose that follows another line of prose was wrapped by hand.
        const prose = (l: string) =>
          /^[A-Za-z(]/.test(l) && !/:$/.test(l) && !l.startsWith("Usage:");
        expect(prose(line) && prose(prev), `${name}: "${prev}" / "${line}"`).toBe(false);
      });
    }
  });

  it("fits 80 columns, but for example command lines", () => {
    for (const { name, text } of helpAt(80)) {
      let inExamples = false;
      for (const line of text.split("\n")) {
        if (/^Examples?:$/.test(line)) inExamples = true;
        else if (/^\S/.test(line)) inExamples = false;
        if (!inExamples) expect(line.length, `${name}: ${line}`).toBeLessThanOrEqual(80);
      }
    }
  });
});
