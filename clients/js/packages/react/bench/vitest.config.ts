// `npm run bench -w @librarian/react`: the selector measurement (prints numbers, asserts nothing).
import { defineConfig } from "vitest/config";
import base from "../vitest.config.js";

export default defineConfig({
  resolve: base.resolve,
  test: { environment: "./test/jsdom-environment.ts", include: ["bench/**/*.bench.tsx"], testTimeout: 600_000 },
});
