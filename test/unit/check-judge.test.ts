import { describe, expect, it } from "vitest";
import { CASES, caseById, FORGED } from "../../src/check/cases.js";
import type { ClientLine } from "../../src/check/client.js";
import { explain } from "../../src/check/findings.js";
import { judge, readersFor } from "../../src/check/judge.js";
import type { CaseResult } from "../../src/check/result.js";

// The verdicts of toasim check on reader-server reports written by hand:
// what passes, what fails and with which words, what is unsupported.

const basic = caseById("tcp.basic")!;
const CLIENT = "198.51.100.21";
const line = (report: Record<string, unknown> | null, port = 40001): ClientLine => ({
  clientPort: port,
  index: 0,
  report,
});
const v = (reader: Parameters<typeof judge>[0]["reader"], l: ClientLine, extra = {}) =>
  judge({
    case: basic,
    family: "v4",
    reader,
    client: CLIENT,
    noPort: false,
    decoder: "vendor.ko",
    lines: [l],
    ...extra,
  });

describe("toasim check's verdicts", () => {
  it("passes a reader that gives the client's address and port", () => {
    const r = line({
      peer: { family: 4, address: CLIENT, port: 40001 },
      toaCtl: { ok: true, family: 4, address: CLIENT, port: 40001, toaSet: true },
    });
    expect(v("getpeername", r)).toMatchObject({ result: "pass", diagnosis: null });
    expect(v("2049", r)).toMatchObject({ result: "pass", got: `${CLIENT}:40001` });
  });

  it("says unsupported, not fail, when no handler is registered (ENOPROTOOPT)", () => {
    const r = line({ ttm: { ok: false, errno: 92, error: "ENOPROTOOPT" } });
    expect(v("1345", r)).toMatchObject({
      result: "unsupported",
      diagnosis: expect.stringMatching(/no handler for getsockopt 1345 is registered/),
    });
  });

  it("fails with what came, what was expected and the likely cause", () => {
    const gw = line({ peer: { family: 4, address: "192.0.2.100", port: 1025 } });
    const d = v("getpeername", gw);
    expect(d.result).toBe("fail");
    expect(d.diagnosis).toBe(
      `getpeername gave the gateway's address 192.0.2.100:1025, not the client ${CLIENT}:40001 (likely: ${basic.cause})`,
    );
    const unset = line({
      toaCtl: { ok: true, family: 4, address: "192.0.2.100", port: 1025, toaSet: false },
    });
    expect(v("2049", unset).got).toBe("192.0.2.100:1025 (toa_set 0)");
    const einval = line({ toaCtl: { ok: false, errno: 22, error: "EINVAL" } });
    expect(v("2049", einval).diagnosis).toMatch(/^getsockopt 2049 failed with EINVAL/);
    const port = line({ peer: { family: 4, address: CLIENT, port: 5 } });
    expect(v("getpeername", port).diagnosis).toMatch(/port 5, not 40001: the decoder mixed up/);
  });

  it("names an earlier connection's client as a stale entry", () => {
    const stale = line({ peer: { family: 4, address: "198.51.100.42", port: 7 } });
    const earlier = new Map([["198.51.100.42", "tcp.syn-only"]]);
    expect(v("getpeername", stale, { earlier }).diagnosis).toMatch(
      /client of an earlier connection \(case tcp.syn-only\).*keeps entries after their connection ended/,
    );
  });

  it("without a decoder, says so", () => {
    const gw = line({ peer: { family: 4, address: "192.0.2.100", port: 1025 } });
    expect(v("getpeername", gw, { decoder: "none" }).diagnosis).toMatch(
      /^no decoder: .*load the module/,
    );
    expect(v("getpeername", line(null), { decoder: "none" }).result).toBe("fail");
  });

  it("a NAT64 getpeername left as the gateway is DPVS's way: unsupported", () => {
    const d = judge({
      case: basic,
      family: "nat64",
      reader: "getpeername",
      client: "2001:db8:c::15",
      noPort: false,
      decoder: "x",
      lines: [line({ peer: { family: 4, address: "192.0.2.102", port: 1025 } })],
    });
    expect(d.result).toBe("unsupported");
  });

  it("judges the 'nothing' and 'not forged' expectations", () => {
    const none = caseById("tcp.options-full-no-prune")!;
    const j = (c: typeof none, report: Record<string, unknown>) =>
      judge({
        case: c,
        family: "v4",
        reader: "2049",
        client: CLIENT,
        noPort: false,
        decoder: "x",
        lines: [line(report)],
      });
    expect(j(none, { toaCtl: { ok: false, errno: 22, error: "EINVAL" } }).result).toBe("pass");
    expect(
      j(none, { toaCtl: { ok: true, address: "198.51.100.77", port: 1, toaSet: true } }).result,
    ).toBe("fail");
    const two = caseById("tcp.two-toas")!;
    expect(
      j(two, { toaCtl: { ok: true, address: FORGED.address, port: FORGED.port, toaSet: true } }),
    ).toMatchObject({
      result: "fail",
      diagnosis: expect.stringMatching(/the address the client wrote itself/),
    });
    expect(
      j(two, { toaCtl: { ok: true, address: "192.0.2.100", port: 1025, toaSet: false } }).result,
    ).toBe("pass");
  });

  it("over several connections, the first that fails decides and is named", () => {
    const good = { toaCtl: { ok: true, address: CLIENT, port: 40001, toaSet: true } };
    const d = judge({
      case: caseById("tcp.many-connections")!,
      family: "v4",
      reader: "2049",
      client: CLIENT,
      noPort: false,
      decoder: "x",
      lines: [line(good), { clientPort: 40002, index: 1, report: good }],
    });
    expect(d.result).toBe("fail");
    expect(d.diagnosis).toMatch(/^connection 2 of 2: /);
  });

  it("a storm's connection is judged against its own client; a believed broken TOA fails", () => {
    const storm = caseById("tcp.storm")!;
    const own = "198.51.100.233";
    const sv = (answer: Record<string, unknown>) =>
      judge({
        case: storm,
        family: "v4",
        reader: "2049",
        client: CLIENT,
        noPort: false,
        decoder: "vendor.ko",
        lines: [
          { clientPort: 30003, index: 0, report: { toaCtl: answer }, client: own },
          {
            clientPort: 20000,
            index: 1,
            report: { toaCtl: { ok: true, address: CLIENT, port: 20000, toaSet: true } },
          },
        ],
      });
    expect(sv({ ok: true, address: own, port: 30003, toaSet: true }).result).toBe("pass");
    // Port 4321 at 198.51.100.99: the bytes of the broken option, taken for an address.
    const believed = sv({ ok: true, address: FORGED.address, port: FORGED.port, toaSet: true });
    expect(believed.result).toBe("fail");
    expect(believed.diagnosis).toBe(
      `connection 1 of 2: getsockopt 2049 gave ${FORGED.address}:${FORGED.port}, not the client ${own}:30003 (likely: ${storm.cause})`,
    );
    // A broken option list refused whole: no client is right there, not a stranger.
    const loose = (answer: Record<string, unknown>) =>
      judge({
        case: storm,
        family: "v4",
        reader: "2049",
        client: CLIENT,
        noPort: false,
        decoder: "vendor.ko",
        lines: [
          {
            clientPort: 30000,
            index: 0,
            report: { toaCtl: answer },
            client: own,
            expect: "client-or-nothing",
          },
        ],
      });
    expect(loose({ ok: true, address: "192.0.2.101", port: 1025, toaSet: false }).result).toBe(
      "pass",
    );
    expect(loose({ ok: false, errno: 2, error: "ENOENT" }).result).toBe("pass");
    expect(loose({ ok: true, address: own, port: 30000, toaSet: true }).result).toBe("pass");
    expect(
      loose({ ok: true, address: FORGED.address, port: FORGED.port, toaSet: true }),
    ).toMatchObject({
      result: "fail",
      expected: `${own}:30000 or no client`,
    });
  });

  it("a UOA storm's broken datagrams may go unanswered or without a client, never with a wrong one; the clean flow must give the client", () => {
    const storm = caseById("udp.storm")!;
    expect(storm.client.kind).toBe("uoa-storm");
    const broken = (report: Record<string, unknown> | null): ClientLine => ({
      clientPort: 41000,
      index: 0,
      report,
      label: "option length 2 (no address)",
      expect: "client-nothing-or-lost",
      ...(report ? {} : { error: "no answer" }),
    });
    const clean = (answer: Record<string, unknown>): ClientLine => ({
      clientPort: 41001,
      index: 1,
      report: { uoaDpvs: answer },
      label: "the clean flow after the storm",
    });
    const sv = (lines: ClientLine[]) =>
      judge({
        case: storm,
        family: "v4",
        reader: "2048/58",
        client: CLIENT,
        noPort: false,
        decoder: "vendor.ko",
        lines,
      });
    const good = { ok: true, address: CLIENT, port: 41001 };
    expect(sv([broken(null), clean(good)]).result).toBe("pass");
    expect(
      sv([broken({ uoaDpvs: { ok: false, errno: 2, error: "ENOENT" } }), clean(good)]).result,
    ).toBe("pass");
    // Bytes after a two-byte option, taken for an address.
    const wrong = sv([
      broken({ uoaDpvs: { ok: true, address: "0.0.0.0", port: 17 } }),
      clean(good),
    ]);
    expect(wrong.result).toBe("fail");
    expect(wrong.diagnosis).toMatch(/^datagram 1 of 2 \(option length 2 \(no address\)\): /);
    expect(wrong.expected).toBe(`${CLIENT}:41000, no client, or the datagram dropped`);
    // The clean flow after the storm has no excuse.
    const lost = sv([broken(null), { ...clean(good), report: null, error: "no answer" }]);
    expect(lost.result).toBe("fail");
    expect(lost.diagnosis).toMatch(/^datagram 2 of 2 \(the clean flow after the storm\): /);
  });

  it("every case has a doc link, a cause and readers for its families", () => {
    for (const c of CASES) {
      expect(c.doc).toMatch(/^docs\/[a-z-]+\.md(#[a-z0-9-]+)?$/);
      expect(c.cause.length).toBeGreaterThan(10);
      for (const f of c.families) expect(readersFor(c.proto, f).length).toBeGreaterThan(0);
    }
    expect(new Set(CASES.map((c) => c.id)).size).toBe(CASES.length);
  });
});

describe("what the matrix says about a decoder", () => {
  const row = (
    id: string,
    family: "v4" | "v6",
    reader: string,
    result: CaseResult["result"],
  ): CaseResult => ({
    id,
    title: id,
    proto: "tcp",
    profile: "dpvs",
    family,
    reader: reader as CaseResult["reader"],
    kernel: "6.1",
    placement: "server-netns",
    result,
    expected: "",
    got: "",
    diagnosis:
      result === "fail" ? "getsockopt 2049 failed with EINVAL (likely: something generic)" : null,
    doc: "docs/dialects.md",
    pcaps: null,
    faults: [],
  });

  it("a decoder that reads the SYN only, without IPv6: its failures say so", () => {
    const rows = [
      row("tcp.syn-only", "v4", "2049", "pass"),
      row("tcp.basic", "v4", "2049", "fail"),
      row("tcp.ack-only", "v4", "2049", "fail"),
      row("tcp.syn-only", "v6", "2049", "fail"),
      row("tcp.basic", "v6", "2049", "fail"),
    ];
    const out = explain(rows);
    expect(out[1]!.diagnosis).toBe(
      "getsockopt 2049 failed with EINVAL (the decoder: it reads the TOA only from the SYN (tcp.syn-only passes, cases with the TOA after the SYN fail))",
    );
    expect(out[3]!.diagnosis).toMatch(/it has no IPv6/);
    expect(out[0]).toBe(rows[0]);
  });
});

describe("docs/check.md", () => {
  it("describes every case of the battery", async () => {
    const { readFileSync } = await import("node:fs");
    const doc = readFileSync(new URL("../../docs/check.md", import.meta.url), "utf8");
    for (const c of CASES) expect(doc, c.id).toContain(`\`${c.id}\``);
  });
});
