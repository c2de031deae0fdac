/**
 * The scenario layer's error: a file it cannot read or use (IO,
 * BAD_SCENARIO) or a run it could not carry out (RUN). A run whose
 * expectations fail is not an error: it is a result.
 */
export class ScenarioError extends Error {
  override readonly name = "ScenarioError";
  constructor(
    readonly code: "IO" | "BAD_SCENARIO" | "RUN",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
