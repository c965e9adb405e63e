/**
 * The shared test harness of the JS clients (Vitest in Node, Playwright in Chromium): the real
 * `librarian` binary, a proxy to break and watch connections, waits with hang guards, and
 * self-signed tokens. See README.md.
 */

export * from "./server.js";
export * from "./proxy.js";
export * from "./wait.js";
export * from "./jwt.js";
