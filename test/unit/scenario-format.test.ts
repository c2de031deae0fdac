import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ScenarioError } from "../../src/scenario/errors.js";
import { parseScenario, readScenario } from "../../src/scenario/format.js";
import { conntrackRules } from "../../src/scenario/run.js";
import { runCli } from "./helpers/cli.js";

const DIR = resolve(import.meta.dirname, "../../scenarios");
const FILES = readdirSync(DIR).filter((n) => n.endsWith(".json") && !n.endsWith(".schema.json"));

const base = {
  name: "x",
  symptom: "s",
  profile: "dpvs",
  steps: [{ tcp: { to: "203.0.113.10:80" } }],
  expect: [{ step: 0, peer: "client" }],
};

function err(o: unknown): string {
  try {
    parseScenario(o, "f.json");
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError);
    expect((e as ScenarioError).code).toBe("BAD_SCENARIO");
    return (e as Error).message;
  }
  throw new Error("accepted");
}

describe("scenario files", () => {
  it("ships at least nine scenarios, each with a symptom, every one readable", () => {
    expect(FILES.length).toBeGreaterThanOrEqual(9);
    for (const f of FILES) {
      const s = readScenario(join(DIR, f));
      expect(`${s.name}.json`).toBe(f);
      expect(s.symptom.length).toBeGreaterThan(80);
      expect(s.fix.length).toBeGreaterThan(40);
      if (s.bug) expect(s.bug.expect.length).toBeGreaterThan(0);
    }
  });

  it("toasim scenario check accepts them all, gateway settings and faults included", async () => {
    const r = await runCli("scenario", "check", DIR);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out.trim().split("\n")).toHaveLength(FILES.length);
  });

  it("names the path of what is wrong", () => {
    expect(err([])).toBe("f.json: must be an object");
    expect(err({ ...base, colour: 1 })).toMatch(
      /^f\.json\.colour: unknown key \(known: \$schema, name/,
    );
    expect(err({ ...base, name: "Bad Name" })).toBe(
      "f.json: name: lower-case letters, digits and dashes",
    );
    expect(err({ ...base, symptom: undefined })).toBe(
      "f.json: symptom: must be a non-empty string",
    );
    expect(err({ ...base, profile: "nope" })).toMatch(
      /^f\.json\.profile: "nope" is not one of dpvs, lvs/,
    );
    expect(err({ ...base, steps: [] })).toBe("f.json: steps: must be a non-empty list");
    expect(err({ ...base, steps: [{ walk: 1 }] })).toBe(
      "f.json: steps[0]: needs one of tcp, udp, scripted, faults, restart, sleep",
    );
    expect(err({ ...base, steps: [{ tcp: { to: "203.0.113.10:80", pauseMs: -1 } }] })).toBe(
      "f.json: steps[0].tcp.pauseMs: -1 is not an integer from 0 to 60000",
    );
    expect(err({ ...base, expect: [{ step: 3, peer: "client" }] })).toBe(
      "f.json.expect[0].step: 3 is not an integer from 0 to 0",
    );
    expect(err({ ...base, steps: [{ sleep: 10 }], expect: [{ step: 0, peer: "client" }] })).toBe(
      "f.json.expect[0].step: step 0 is a sleep step; peer checks tcp and udp steps",
    );
    expect(err({ ...base, expect: [{ counter: "kernel.x", min: 1 }] })).toBe(
      'f.json.expect[0].counter: "kernel.x" is not gateway.NAME, toa.NAME or uoa.NAME',
    );
    expect(err({ ...base, expect: [{ wish: 1 }] })).toBe(
      "f.json.expect[0]: needs one of peer, report, reports, scripted, sendErrors, counter",
    );
    expect(err({ ...base, bug: { expect: [{ step: 0, peer: "gateway" }], breaks: [4] } })).toBe(
      "f.json: bug.breaks: must list indexes of expect (0 to 0)",
    );
    expect(err({ ...base, rs: { sysctl: { "kernel.panic": "1" } } })).toBe(
      "f.json.rs.sysctl.kernel.panic: only net.* settings of the server namespace",
    );
  });

  it("reads the client's conntrack table, UDP flows and sendto errors, naming what is wrong", () => {
    const udp = { ...base, steps: [{ udp: { to: "203.0.113.10:53", flows: 64, count: 2 } }] };
    const s = parseScenario(
      {
        ...udp,
        client: { conntrack: { table: 16, notrack: [53] } },
        expect: [{ step: 0, sendErrors: "EPERM", equals: 0 }],
        bug: {
          client: { conntrack: { table: 16 } },
          expect: [{ step: 0, sendErrors: "EPERM", min: 1 }],
        },
      },
      "f.json",
    );
    expect(s.steps[0]).toMatchObject({ kind: "udp", flows: 64, count: 2 });
    expect(s.healthy.conntrack).toEqual({ table: 16, notrack: [53] });
    expect(s.bug?.conntrack).toEqual({ table: 16, notrack: [] });
    expect(s.healthy.expect[0]).toMatchObject({ kind: "send-errors", errno: "EPERM", max: 0 });
    // Left out of the bug variant, the client is the healthy run's.
    const inherited = parseScenario(
      { ...udp, client: { conntrack: { table: 4 } }, bug: { expect: base.expect } },
      "f.json",
    );
    expect(inherited.bug?.conntrack).toEqual({ table: 4, notrack: [] });
    expect(parseScenario(base, "f.json").healthy.conntrack).toBeNull();
    expect(err({ ...udp, client: { conntrack: {} } })).toBe(
      "f.json.client.conntrack.table: is required (how many flows the table holds)",
    );
    expect(err({ ...udp, client: { conntrack: { table: 0 } } })).toBe(
      "f.json.client.conntrack.table: 0 is not an integer from 1 to 1000000",
    );
    expect(err({ ...udp, client: { conntrack: { table: 4, notrack: [0] } } })).toBe(
      "f.json.client.conntrack.notrack: must be a list of ports (1 to 65535)",
    );
    expect(err({ ...udp, client: { nat: true } })).toBe(
      "f.json.client.nat: unknown key (known: conntrack)",
    );
    expect(err({ ...udp, steps: [{ udp: { to: "203.0.113.10:53", flows: 0 } }] })).toBe(
      "f.json: steps[0].udp.flows: 0 is not an integer from 1 to 1000",
    );
    expect(err({ ...base, expect: [{ step: 0, sendErrors: "EPERM" }] })).toBe(
      "f.json.expect[0].step: step 0 is not a udp step",
    );
    expect(err({ ...udp, expect: [{ step: 0, sendErrors: "perm" }] })).toBe(
      'f.json.expect[0].sendErrors: "perm" is not an errno name',
    );
  });

  it("writes the client's table as nftables rules: a limit on new entries, NOTRACK before it", () => {
    const full = conntrackRules({ table: 16, notrack: [] });
    expect(full).toContain("type filter hook output priority filter;");
    expect(full).toContain("ct state new ct status ! confirmed ct count over 16 drop");
    expect(full).not.toContain("notrack");
    const cured = conntrackRules({ table: 16, notrack: [53, 5353] });
    expect(cured).toContain("type filter hook output priority raw;");
    expect(cured).toContain("th dport { 53, 5353 } notrack");
    expect(cured).toContain("type filter hook prerouting priority raw;");
    expect(cured).toContain("th sport { 53, 5353 } notrack");
  });

  it("a bug variant takes what it leaves out from the healthy run", () => {
    const s = parseScenario(
      {
        ...base,
        settings: { carry: "syn" },
        bug: { profile: "tencent", expect: [{ step: 0, peer: "gateway" }] },
      },
      "f.json",
    );
    expect(s.bug?.profile).toBe("tencent");
    expect(s.bug?.settings).toEqual({ carry: "syn" });
    expect(s.bug?.decoder).toBe("yes");
    expect(s.bug?.breaks).toEqual([]);
  });

  it("toasim scenario check names bad settings and faults with the file", async () => {
    const d = mkdtempSync(join(tmpdir(), "toasim-sc-"));
    try {
      writeFileSync(
        join(d, "a.json"),
        JSON.stringify({ ...base, settings: { carry: "sometimes" } }),
      );
      writeFileSync(
        join(d, "b.json"),
        JSON.stringify({ ...base, faults: { rules: [{ action: "zap" }] } }),
      );
      writeFileSync(join(d, "c.json"), JSON.stringify({ ...base, settings: { colour: "red" } }));
      writeFileSync(join(d, "d.json"), "{");
      const a = await runCli("scenario", "check", join(d, "a.json"));
      expect(a.code).toBe(2);
      // The path of the bad value inside the file, not a flag the user never typed.
      expect(a.err).toMatch(
        /a\.json: settings.carry\[0\]: "sometimes" is not one of syn, handshake-ack/,
      );
      const b = await runCli("scenario", "check", join(d, "b.json"));
      expect(b.err).toMatch(/b\.json: faults.rules\[0\].action: "zap" is not one of drop/);
      const c = await runCli("scenario", "check", join(d, "c.json"));
      expect(c.err).toMatch(/c\.json: settings.colour: unknown \(known: uoa, maxTrail/);
      const dd = await runCli("scenario", "check", join(d, "d.json"));
      expect(dd.err).toMatch(/d\.json: not JSON/);
      const none = await runCli("scenario", "run", join(d, "nosuch.json"));
      expect(none.code).toBe(2);
      expect(none.err).toMatch(/nosuch\.json: no such file or folder/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
