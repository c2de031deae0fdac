import { describe, expect, it } from "vitest";
import { resolveUpInput } from "../../src/api/options.js";
import { upError, upOptionsOf } from "../../src/cli/up.js";

// toasim up --timeout and the API's timeouts: seconds by state, into the
// gateway's milliseconds; a bad one names its state and its flag.

describe("idle timeouts of an instance", () => {
  it("reads the flag's words and the API's object alike, keeping the other defaults", () => {
    const fromFlag = resolveUpInput(upOptionsOf({ timeout: ["udp=2", "established=60"] }).options);
    expect(fromFlag.config.timeouts).toEqual({
      tcpSyn: 30_000,
      tcpEstablished: 60_000,
      tcpFin: 120_000,
      tcpClose: 10_000,
      udp: 2000,
    });
    const fromApi = resolveUpInput({ timeouts: { udp: 2, established: 60 } });
    expect(fromApi.config.timeouts).toEqual(fromFlag.config.timeouts);
  });

  it.each([
    [["udp=0"], /timeouts\.udp: 0 is outside 1\.\.86400/],
    [["udp=soon"], /timeouts\.udp: "soon" is not a number/],
    [["tcp=5"], /timeouts\.tcp: unknown state \(known: syn, established, fin, close, udp\)/],
    [["udp"], /"udp" is not STATE=SECONDS/],
  ])("refuses --timeout %j, naming --timeout", (words, why) => {
    const { options, fromFile, fileRules } = upOptionsOf({ timeout: words });
    let err: unknown;
    try {
      resolveUpInput(options);
    } catch (e) {
      err = upError(e, fromFile, fileRules);
    }
    expect(err).toMatchObject({ code: "BAD_FLAG", flag: "--timeout" });
    expect(String((err as Error).message)).toMatch(why);
  });
});
