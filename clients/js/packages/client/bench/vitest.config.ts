// `npm run bench -w @librarian/client`: the patch-frame measurement (prints numbers, asserts nothing).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: { include: ["bench/**/*.bench.ts"], environment: "node", testTimeout: 900_000, pool: "forks" },
});
