// What the browser tests stand on: the example app built with Vite (JS API) and served by
// `vite preview` on port 0, its proxy pointing at a real `librarian` binary that the shared
// harness started on port 0, and Debian's Chromium driven by playwright-core.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { AddressInfo } from "node:net";
import { build, preview, type InlineConfig, type PreviewServer } from "vite";
import { chromium, type Browser, type Page } from "playwright-core";
import { startServer, type LibrarianServer } from "../../../testing/index.js";

export type Server = LibrarianServer;

export const CHROMIUM = "/usr/bin/chromium";
export const haveChromium = existsSync(CHROMIUM);
export const requireChromium = process.env.LIBRARIAN_TEST_REQUIRE_BROWSER === "1";

const appRoot = fileURLToPath(new URL("..", import.meta.url));
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/**
 * The workspace packages from their sources, so that the app's tests need no earlier build of
 * them (the app itself resolves them through node_modules, i.e. their dist).
 */
const sources: InlineConfig["resolve"] = {
  alias: {
    "@librarian/client": here("../../../packages/client/src/index.ts"),
    "@librarian/react": here("../../../packages/react/src/index.ts"),
  },
};

export interface Env {
  server: Server;
  browser: Browser;
  /** The preview server's origin, e.g. http://127.0.0.1:41234 */
  appUrl: string;
  close(): Promise<void>;
}

export async function startEnv(): Promise<Env> {
  const outDir = mkdtempSync(join(tmpdir(), "librarian-react-app-"));
  const cleanups: (() => Promise<unknown> | unknown)[] = [() => rmSync(outDir, { recursive: true, force: true })];
  const close = async () => {
    for (const f of cleanups.reverse()) await Promise.resolve(f()).catch(() => {});
  };
  try {
    await build({ root: appRoot, logLevel: "warn", resolve: sources, build: { outDir, emptyOutDir: true } });

    const server = await startServer();
    cleanups.push(() => server.stop());

    // vite.config.ts reads LIBRARIAN_URL when it loads: its proxy is what is under test too.
    process.env.LIBRARIAN_URL = server.url;
    const web: PreviewServer = await preview({
      root: appRoot,
      // Proxy errors while the server is killed on purpose are expected; keep the output quiet.
      logLevel: "silent",
      build: { outDir },
      preview: { host: "127.0.0.1", port: 0, strictPort: true },
    });
    cleanups.push(() => web.close());
    const { port } = web.httpServer.address() as AddressInfo;

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-quic",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    cleanups.push(() => browser.close());
    return { server, browser, appUrl: `http://127.0.0.1:${port}`, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Generous hang guards: this machine is small and busy. Never a timing assertion. */
export const WAIT = 20_000;

export async function newPage(env: Env, context = undefined as Awaited<ReturnType<Browser["newContext"]>> | undefined) {
  const ctx = context ?? (await env.browser.newContext({ viewport: { width: 1360, height: 860 } }));
  ctx.setDefaultTimeout(WAIT);
  const page = await ctx.newPage();
  page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
  return page;
}

/** Opens the app (with `query`, e.g. "?share=1") and signs in as `user`; resolves once live. */
export async function signIn(page: Page, env: Env, user: string, query = ""): Promise<void> {
  await page.goto(`${env.appUrl}/${query}`);
  await page.getByLabel("User").fill(user);
  await page.getByRole("button", { name: "Sign in" }).click();
  await live(page);
}

export async function live(page: Page): Promise<void> {
  try {
    await page.locator('[data-testid="status-pill"][data-state="live"]').waitFor();
  } catch (error) {
    // Say where it stood instead (the pill's state and text, with its tooltip).
    const pill = page.getByTestId("status-pill");
    const shown = (await pill.count())
      ? `${await pill.getAttribute("data-state")}: ${await pill.textContent()} (${(await pill.getAttribute("title")) ?? ""})`
      : "no status pill";
    throw new Error(`the page did not get live; the pill says ${shown}`, { cause: error });
  }
}

/** `librarian_sessions_open`: WebSocket sessions open on the server, all users together. */
export async function openSessions(server: Server): Promise<number> {
  const n = await server.metric("librarian_sessions_open");
  if (n === undefined) throw new Error("no librarian_sessions_open in /metrics");
  return n;
}
