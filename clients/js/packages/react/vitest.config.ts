import { defineConfig } from "vitest/config";
import { fileURLToPath } from "node:url";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    // The client's sources, so that the tests need no build of it first.
    alias: {
      "@librarian/client": here("../client/src/index.ts"),
    },
  },
  test: {
    environment: "./test/jsdom-environment.ts",
    include: ["test/**/*.test.{ts,tsx}"],
    // Hang guards for a real server on a busy machine, not timing assertions.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
