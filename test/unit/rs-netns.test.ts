import { describe, expect, it } from "vitest";
import { check } from "../../src/api/check.js";
import { resolveUpInput } from "../../src/api/options.js";
import { reportHtml } from "../../src/check/report-html.js";
import { reportText } from "../../src/check/report-text.js";
import type { CheckReport } from "../../src/check/result.js";
import { upError, upOptionsOf } from "../../src/cli/up.js";
import { rootPlacementRefusal } from "../../src/tun/topology.js";
import { caseOf, K1 } from "../helpers/check-case.js";

// Where the servers live (--rs-netns): toasim's namespace, or the root
// namespace of a toasim vm guest; refused elsewhere, with the reason.

describe("the server side's namespace", () => {
  it("is toasim's by default, root when asked, and a bad word names --rs-netns", () => {
    expect(resolveUpInput(upOptionsOf({}).options).rsNetns).toBe("toasim");
    expect(resolveUpInput(upOptionsOf({ rsNetns: "root" }).options).rsNetns).toBe("root");
    const { options, fromFile, fileRules } = upOptionsOf({ rsNetns: "host" });
    let err: unknown;
    try {
      resolveUpInput(options);
    } catch (e) {
      err = upError(e, fromFile, fileRules);
    }
    expect(err).toMatchObject({ code: "BAD_FLAG", flag: "--rs-netns" });
    expect(String((err as Error).message)).toMatch(/"host" is not one of toasim, root/);
  });

  it("may be the root namespace only on a toasim vm guest's kernel command line", () => {
    expect(rootPlacementRefusal("console=ttyS0 quiet panic=-1 toasim.guest=1\n")).toBeNull();
    for (const cmdline of ["BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro", "toasim.guest=0", ""])
      expect(rootPlacementRefusal(cmdline)).toMatch(/only inside a toasim vm guest/);
  });

  it("check refuses root on a host before anything starts, and bad lists", async () => {
    // This machine's command line has no guest mark (the unit tier runs on hosts).
    expect(rootPlacementRefusal()).not.toBeNull();
    await expect(check({ rsNetns: "root" })).rejects.toMatchObject({
      code: "BAD_OPTION",
      option: "rsNetns",
      message: expect.stringMatching(/only inside a toasim vm guest.*with kernels, the guests'/),
    });
    await expect(check({ rsNetns: [] })).rejects.toMatchObject({
      option: "rsNetns",
      message: expect.stringMatching(/empty list/),
    });
    await expect(check({ rsNetns: ["toasim", "box" as "root"] })).rejects.toMatchObject({
      option: "rsNetns",
      message: expect.stringMatching(/"box" is not one of toasim, root/),
    });
  });

  it("the text matrix says where the server ran, per row when both placements ran", () => {
    const report = (placements: ("server-netns" | "root-netns")[]): CheckReport => ({
      ok: false,
      decoder: "limited_toa.ko",
      kernels: [
        {
          kernel: K1,
          built: true,
          buildError: null,
          problems: [],
          memory: null,
          unload: null,
          ok: true,
        },
      ],
      cases: placements.map((placement) =>
        caseOf({
          id: "tcp.syn-only",
          reader: "2049",
          placement,
          ...(placement === "server-netns"
            ? { result: "fail", got: "192.0.2.100:5001", diagnosis: "no answer" }
            : { result: "pass" }),
        }),
      ),
      toasimVersion: "0.0.0",
      startedAt: "",
      durationMs: 0,
    });
    const one = reportText(report(["root-netns"]));
    expect(one).toContain("  server in: the root namespace\n");
    expect(one).toMatch(/ {2}tcp\.syn-only dpvs v4 +pass/);
    const both = reportText(report(["server-netns", "root-netns"]));
    expect(both).toContain("  server in: toasim's server namespace, the root namespace\n");
    expect(both).toMatch(/ {2}tcp\.syn-only dpvs v4 server-netns +FAIL/);
    expect(both).toMatch(/ {2}tcp\.syn-only dpvs v4 root-netns +pass/);
    expect(both).toContain(
      "FAIL 6.1.0-28-amd64 tcp.syn-only dpvs v4 2049 (server-netns): no answer",
    );
    // The page: in the summary, in the cell that holds both, in the failure.
    const html = reportHtml(report(["server-netns", "root-netns"]), { pcapDir: "/nonexistent" });
    expect(html).toContain(
      "toasim&#39;s server namespace (server-netns), the root namespace (root-netns)",
    );
    expect(html).toMatch(/FAIL<\/a> <span class="got">\(server-netns\)<\/span>/);
    expect(html).toMatch(/PASS <span class="got">\(root-netns\)<\/span>/);
    expect(html).toContain("server in server-netns");
  });
});
