import { defineConfig } from "vitest/config";

// One project per test tier (ARCHITECTURE.md): unit needs nothing, oracle
// needs tshark. e2e (root, netns, TUN) and kernel (QEMU) join later.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: "oracle",
          include: ["test/oracle/**/*.test.ts"],
          testTimeout: 120_000,
        },
      },
    ],
  },
});
