import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "node",
    include: ["test/**/*.test.ts"],
    // Hang guards on a small, busy machine; no test asserts on time.
    testTimeout: 90_000,
    hookTimeout: 180_000,
    fileParallelism: false,
  },
});
