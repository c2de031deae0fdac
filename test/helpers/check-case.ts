import type { CaseResult } from "../../src/check/result.js";

/** A kernel release for hand-made check results. */
export const K1 = "6.1.0-28-amd64";

/** A passing v4 getpeername row of toasim check, with what a test changes. */
export function caseOf(over: Partial<CaseResult> & Pick<CaseResult, "id" | "result">): CaseResult {
  return {
    title: "the handshake ACK carries the TOA",
    proto: "tcp",
    profile: "dpvs",
    family: "v4",
    reader: "getpeername",
    kernel: K1,
    placement: "server-netns",
    expected: "198.51.100.7:40000",
    got: "198.51.100.7:40000",
    diagnosis: null,
    doc: "docs/dialects.md#which-packets-the-precise-rule",
    pcaps: null,
    faults: [],
    ...over,
  };
}
