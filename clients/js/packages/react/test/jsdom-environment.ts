// Vitest's jsdom environment, with modules transformed as for Node ("ssr") instead of for the
// browser: in the browser transform, Vite rewrites `new URL(path, import.meta.url)` against
// `location` (http://localhost:3000/), which breaks the shared harness's file paths.
import { builtinEnvironments, type Environment } from "vitest/runtime";

const jsdom = builtinEnvironments.jsdom;

export default {
  ...jsdom,
  name: "jsdom-node",
  viteEnvironment: "ssr",
} satisfies Environment;
