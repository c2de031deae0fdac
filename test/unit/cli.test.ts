import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "toasim-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = runCli;

describe("toasim craft", () => {
  it("writes a pcap that starts with the classic pcap header and raw-IP link type", async () => {
    const out = join(dir, "a.pcap");
    const r = await run("craft", "--out", out);
    expect(r.code).toBe(0);
    const b = readFileSync(out);
    expect(b.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(b.readUInt32LE(20)).toBe(101);
    expect(r.out).toMatch(/handshake ACK .* carrier/);
  });

  it("writes the same bytes twice (deterministic)", async () => {
    await run("craft", "--out", join(dir, "1.pcap"));
    await run("craft", "--out", join(dir, "2.pcap"));
    expect(readFileSync(join(dir, "1.pcap")).equals(readFileSync(join(dir, "2.pcap")))).toBe(true);
  });

  it.each([
    [["--client", "198.51.100.700:1"], "--client"],
    [["--client", "198.51.100.7"], "--client"],
    [["--vip", "[2001:db8:f::10]:80"], "--vip"],
    [["--client", "[2001:db8:c::7]:1", "--vip", "203.0.113.10:80"], "--vip"],
    [["--rs", "[2001:db8:5::10]:80"], "--rs"],
    [["--profile", "nosuch"], "--profile"],
    [["--proto", "sctp"], "--proto"],
    [["--proto", "udp", "--profile", "lvs"], "--proto"],
    [["--proto", "udp", "--uoa", "ipo", "--client", "[2001:db8:c::7]:1"], "--uoa"],
    [["--uoa", "opp"], "--uoa"],
    [["--toa-kind", "300"], "--toa-kind"],
    [["--toa-kind", "abc"], "--toa-kind"],
    [["--carry", "syn,sometimes"], "--carry"],
    [["--profile", "spp", "--toa-kind", "200", "--proto", "udp"], "--profile"],
    [["--profile", "ucloud", "--client", "[2001:db8:c::7]:1"], "--profile"],
    [["--mtu", "100"], "--mtu"],
  ])("rejects %j naming %s, exit 2, one line", async (flags, flag) => {
    const r = await run("craft", "--out", join(dir, "bad.pcap"), ...flags);
    expect(r.code).toBe(2);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toContain(flag);
  });

  it("reports unknown flags and missing values the same way", async () => {
    for (const argv of [["craft", "--bogus"], ["craft"], ["nosuchcommand"]]) {
      const r = await run(...argv);
      expect(r.code).toBe(2);
      expect(r.err.trim().split("\n")).toHaveLength(1);
    }
  });

  it("has help for the program and the command", async () => {
    const top = await run("--help");
    expect(top.code).toBe(0);
    expect(top.out).toContain("craft");
    const c = await run("craft", "--help");
    expect(c.code).toBe(0);
    expect(c.out).toContain("--profile");
    expect(c.out).toContain("aliyun-cdn");
  });

  it("fails with exit 1 and a clear message when the output cannot be written", async () => {
    const r = await run("craft", "--out", join(dir, "no/such/dir/x.pcap"));
    expect(r.code).toBe(1);
    expect(r.err).toContain("--out");
  });
});

describe("fault flags (toasim up --fault, toasim fault set)", () => {
  it("reads one rule a word, as the object a scenario file writes", async () => {
    const { faultSpecToRule: parse } = await import("../../src/fullnat-sim/fault-spec.js");
    const faultSpecToRule = (spec: string) => parse(spec, "--fault");
    expect(faultSpecToRule("to-server:handshake-ack:drop,count=1")).toEqual({
      direction: "to-server",
      class: "handshake-ack",
      action: "drop",
      count: 1,
    });
    expect(
      faultSpecToRule("both:data+toa:corrupt=tcp-option:254:2,xor=0xff,checksum=keep"),
    ).toEqual({
      direction: "both",
      class: ["data", "toa"],
      action: "corrupt",
      field: "tcp-option:254:2",
      xor: 255,
      checksum: "keep",
    });
    expect(faultSpecToRule("to-client:syn-ack:delay=250,probability=0.5")).toEqual({
      direction: "to-client",
      class: "syn-ack",
      action: "delay",
      ms: 250,
      probability: 0.5,
    });
  });

  it.each([
    [["--fault", "drop"], "--fault", /is not DIRECTION:CLASS:ACTION/],
    [["--fault", "to-server:syn:drop=3"], "--fault", /action drop takes no =ARG/],
    [["--fault", "to-server:syn:drop,count"], "--fault", /"count" is not KEY=VALUE/],
    [["--fault", "sideways:syn:drop"], "--fault", /direction: "sideways" is not one of/],
    [["--fault", "to-server:syn+ack:drop"], "--fault", /class\[1\]: "ack" is not one of/],
    [["--fault", "to-server:any:delay=0"], "--fault", /ms: 0 is not an integer from 1/],
    [["--link-mtu", "server=40"], "--link-mtu", /mtu.server: 40 is not an integer from 68/],
    [["--link-mtu", "middle=1400"], "--link-mtu", /"middle=1400" is not client=N or server=N/],
  ])("toasim up rejects %j naming %s, exit 2, one line", async (flags, flag, why) => {
    const r = await run("up", ...flags);
    expect(r.code).toBe(2);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toContain(flag);
    expect(r.err).toMatch(why);
  });

  it("toasim fault set checks its rules before looking for an instance", async () => {
    const r = await run("fault", "set", "--fault", "to-server:syn:explode");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--fault: faults.rules\[0\].action: "explode" is not one of/);
    const help = await run("up", "--help");
    expect(help.out).toContain("DIRECTION:CLASS[+CLASS...]:ACTION");
  });
});

describe("exit codes", () => {
  it("a file named on the command line that cannot be read is a usage error (2); an output that cannot be written, a failure (1)", async () => {
    const missing = join(dir, "no-such-file.json");
    const config = await run("up", "--config", missing);
    expect([config.code, config.err]).toEqual([2, expect.stringMatching(/--config: cannot read /)]);
    const faults = await run("fault", "set", "--file", missing);
    expect([faults.code, faults.err]).toEqual([2, expect.stringMatching(/--file: cannot read /)]);
    const out = await run("craft", "--out", join(dir, "no-such-folder", "x.pcap"));
    expect([out.code, out.err]).toEqual([1, expect.stringMatching(/--out: cannot write /)]);
  });

  it("are listed in the root help, each once", async () => {
    const help = (await run("--help")).out;
    const block = help.slice(help.indexOf("Exit codes:"));
    const codes = [...block.matchAll(/^ {2}(\d+) /gm)].map((m) => Number(m[1]));
    expect(codes).toEqual([0, 1, 2, 70, 124, 125]);
  });
});
