import { defineConfig } from "vitest/config";

// The tests start the real `librarian` binary (see clients/js/testing): generous hang guards
// for a slow, noisy 2-core machine; waits inside tests are hang guards too, never assertions.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
    testTimeout: 90_000,
    hookTimeout: 90_000,
    pool: "forks",
    maxWorkers: 2,
    // A flaky pass would hide a real race: no retries.
    retry: 0,
  },
});
