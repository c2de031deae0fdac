import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { expect, it } from "vitest";
import { describeTier } from "../helpers/tier.js";

// The scenario schema (for editors) checked by a validator nobody here
// wrote: Debian's python3-jsonschema. It must be a valid 2020-12 schema,
// accept every shipped scenario, and refuse what toasim's parser refuses.

const PY = "/usr/bin/python3";
const DIR = resolve(import.meta.dirname, "../../scenarios");

function jsonschemaMissing(): string | null {
  try {
    execFileSync(PY, ["-c", "import jsonschema"], { stdio: "ignore" });
    return null;
  } catch {
    return "python3-jsonschema not installed (run: npm run setup, as root)";
  }
}

const missing = jsonschemaMissing();

const CHECK = `
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
for f in sys.argv[2:]:
    doc = json.load(open(f)) if f.endswith(".json") else json.loads(f)
    errs = sorted(e.message for e in v.iter_errors(doc))
    print(json.dumps({"file": f if f.endswith(".json") else "inline", "errors": errs}))
`;

function check(...docs: string[]): { file: string; errors: string[] }[] {
  const out = execFileSync(PY, ["-c", CHECK, join(DIR, "scenario.schema.json"), ...docs], {
    encoding: "utf8",
  });
  return out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { file: string; errors: string[] });
}

describeTier(
  "oracle (scenario schema)",
  missing,
  "scenarios/scenario.schema.json, read by python3-jsonschema",
  () => {
    it("is a valid schema that accepts every shipped scenario", () => {
      const files = readdirSync(DIR)
        .filter((n) => n.endsWith(".json") && !n.endsWith(".schema.json"))
        .map((n) => join(DIR, n));
      expect(files.length).toBeGreaterThanOrEqual(9);
      for (const r of check(...files)) expect(r.errors, r.file).toEqual([]);
    });

    it("refuses unknown keys, bad profiles, bad fault actions, bad conntrack tables and empty steps", () => {
      const base = {
        name: "x",
        symptom: "s",
        profile: "dpvs",
        steps: [{ sleep: 1 }],
        expect: [{ counter: "gateway.x" }],
      };
      const bad = [
        { ...base, colour: 1 },
        { ...base, profile: "nope" },
        { ...base, steps: [] },
        { ...base, faults: { rules: [{ action: "zap" }] } },
        { ...base, expect: [{ counter: "kernel.x" }] },
        { ...base, client: { conntrack: { notrack: [53] } } },
        { ...base, client: { conntrack: { table: 16, notrack: [0] } } },
        { ...base, expect: [{ step: 0, sendErrors: "perm" }] },
      ];
      const r = check(JSON.stringify(base), ...bad.map((b) => JSON.stringify(b)));
      expect(r[0]!.errors).toEqual([]);
      for (const x of r.slice(1)) expect(x.errors.length).toBeGreaterThan(0);
    });
  },
);
