import { join, resolve } from "node:path";

const FIXTURES = resolve(import.meta.dirname, "../fixtures");

/** A helper script under test/fixtures/python/, as a path to hand to python3. */
export const pythonFixture = (name: string): string => join(FIXTURES, "python", name);
