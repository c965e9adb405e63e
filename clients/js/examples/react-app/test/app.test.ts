// The example app in Debian's Chromium against a real `librarian` (see env.ts). Each test uses a
// user of its own; the tests share one server, one preview server and one browser.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import {
  CHROMIUM,
  WAIT,
  haveChromium,
  live,
  newPage,
  openSessions,
  requireChromium,
  signIn,
  startEnv,
  type Env,
} from "./env.js";

if (!haveChromium) {
  const message = `${CHROMIUM} not found: the browser tests of the example app are skipped`;
  if (requireChromium) throw new Error(`${message}, but LIBRARIAN_TEST_REQUIRE_BROWSER=1`);
  console.warn(`note: ${message} (install Debian's chromium package to run them)`);
}

let env: Env;
let users = 0;
const contexts: BrowserContext[] = [];
const user = (name: string) => `${name}-${process.pid}-${++users}`;

async function page(): Promise<Page> {
  const p = await newPage(env);
  contexts.push(p.context());
  return p;
}

/** Closes every page of the tests so far, and waits until the server saw their sessions end. */
async function closeAll(): Promise<void> {
  for (const c of contexts.splice(0)) await c.close();
  await expect.poll(() => openSessions(env.server), { timeout: WAIT, interval: 50 }).toBe(0);
}

const block = (p: Page, title: string) => p.locator(`[data-testid="block-item"][data-title="${title}"]`);
const prompt = (p: Page, title: string) => p.locator(`[data-testid="prompt-item"][data-title="${title}"]`);
const project = (p: Page, name: string) => p.locator(`[data-testid="project-item"][data-name="${name}"]`);
const pill = (p: Page) => p.getByTestId("status-pill");
/** The label of the library the switcher shows as chosen (its own name, without " (mine)"). */
const selectedLibrary = (p: Page) =>
  p.getByTestId("library-select").evaluate((s: HTMLSelectElement) => s.selectedOptions[0]?.textContent?.replace(/ \(mine\)$/, "") ?? "");

async function createBlock(
  p: Page,
  title: string,
  opts: { content?: string; tags?: string; project?: string; temporary?: boolean } = {},
) {
  const form = p.getByTestId("block-form");
  await form.getByLabel("Title").fill(title);
  await form.getByLabel("Content").fill(opts.content ?? "");
  await form.getByLabel("Tags").fill(opts.tags ?? "");
  if (opts.project) await form.getByLabel("Project").selectOption({ label: opts.project });
  if (opts.temporary) await form.getByLabel(/Temporary/).check();
  await form.getByRole("button", { name: opts.temporary ? "Add temporary block" : "Create block" }).click();
  if (!opts.temporary) {
    // Shown once the server confirmed it, and the form is ready for the next one.
    await block(p, title).waitFor();
    await expect.poll(() => form.getByLabel("Title").inputValue(), { timeout: WAIT }).toBe("");
  }
}

async function createProject(p: Page, name: string, parent?: string) {
  const form = p.getByTestId("project-form");
  await form.getByLabel("Name").fill(name);
  if (parent) await form.getByLabel("Inside").selectOption({ label: parent });
  await form.getByRole("button", { name: "Create project" }).click();
  await project(p, name).waitFor();
}

async function createPrompt(p: Page, title: string, blocks: string[]) {
  const form = p.getByTestId("prompt-form");
  await form.getByLabel("Title").fill(title);
  for (const b of blocks) await form.getByTestId("prompt-block-choices").getByLabel(b, { exact: true }).check();
  await form.getByRole("button", { name: "Create prompt" }).click();
  await prompt(p, title).waitFor();
}

describe.skipIf(!haveChromium)("the example app in Chromium", () => {
  beforeAll(async () => {
    env = await startEnv();
  }, 180_000);
  afterAll(async () => {
    for (const c of contexts.splice(0)) await c.close().catch(() => {});
    await env?.close();
  });

  it("two pages of one user converge on create, edit and delete", async () => {
    const name = user("converge");
    const [a, b] = [await page(), await page()];
    // B's socket: it asks for patch frames and gets them (and never needs a resync).
    const socket = { urls: [] as string[], received: [] as string[], sent: [] as string[] };
    b.on("websocket", (ws) => {
      socket.urls.push(ws.url());
      ws.on("framereceived", (f) => socket.received.push(typeof f.payload === "string" ? f.payload : ""));
      ws.on("framesent", (f) => socket.sent.push(typeof f.payload === "string" ? f.payload : ""));
    });
    await signIn(a, env, name);
    await signIn(b, env, name);

    // Create in A: B shows it.
    await createBlock(a, "Tone", { content: "Be brief.", tags: "style, voice" });
    await block(b, "Tone").waitFor();
    expect(await block(b, "Tone").locator(".tag").allTextContents()).toEqual(["style", "voice"]);

    // Edit in B: A shows the new title.
    await block(b, "Tone").getByRole("button", { name: "Edit" }).click();
    const form = b.getByTestId("block-form");
    await form.getByLabel("Title").fill("Tone of voice");
    await form.getByRole("button", { name: "Save" }).click();
    await block(a, "Tone of voice").waitFor();
    await block(a, "Tone").waitFor({ state: "detached" });

    // Projects: create, nest, rename in A; B follows.
    await createProject(a, "Writing");
    await createProject(a, "Mail", "Writing");
    await project(b, "Writing").locator('[data-testid="project-item"][data-name="Mail"]').waitFor();
    await project(a, "Mail").getByRole("button", { name: "Rename" }).first().click();
    await a.locator("form.rename").getByLabel("Name").fill("Letters");
    await a.locator("form.rename").getByRole("button", { name: "Save" }).click();
    await project(b, "Letters").waitFor();

    // Delete in A: gone in B.
    await block(a, "Tone of voice").getByRole("button", { name: "Delete" }).click();
    await block(b, "Tone of voice").waitFor({ state: "detached" });
    await project(a, "Writing").getByRole("button", { name: "Delete" }).first().click();
    // Its child moves up to the top level (nothing is lost).
    await b.locator('ul.tree > [data-testid="project-item"][data-name="Letters"]').waitFor();
    await project(b, "Writing").waitFor({ state: "detached" });

    expect(socket.urls.length).toBeGreaterThan(0);
    expect(socket.urls.every((u) => new URL(u).searchParams.get("patches") === "1")).toBe(true);
    const kinds = (texts: string[]) => texts.filter(Boolean).map((t) => (JSON.parse(t) as { type: string }).type);
    expect(kinds(socket.received)).toContain("patch");
    expect(kinds(socket.sent)).not.toContain("resync");
  });

  it("a prompt's blocks follow a block's deletion", async () => {
    const name = user("prompt");
    const [a, b] = [await page(), await page()];
    await signIn(a, env, name);
    await signIn(b, env, name);
    await createBlock(a, "Persona");
    await createBlock(a, "Format");
    await createPrompt(a, "Weekly mail", ["Persona", "Format"]);
    const blocksOf = (p: Page) => prompt(p, "Weekly mail").getByTestId("prompt-blocks");
    await expect.poll(() => blocksOf(b).textContent(), { timeout: WAIT }).toBe("Persona → Format");

    await block(b, "Persona").getByRole("button", { name: "Delete" }).click();
    await expect.poll(() => blocksOf(a).textContent(), { timeout: WAIT }).toBe("Format");
    await expect.poll(() => blocksOf(b).textContent(), { timeout: WAIT }).toBe("Format");
  });

  it("shows the server's field errors next to the field, and nothing is written", async () => {
    const name = user("fields");
    const a = await page();
    await signIn(a, env, name);
    const form = a.getByTestId("block-form");
    await form.getByLabel("Title").fill("");
    await form.getByRole("button", { name: "Create block" }).click();
    const error = form.locator('[data-testid="field-error"][data-field="title"]');
    await error.waitFor();
    expect(await error.textContent()).toMatch(/\S/);
    // The field's own wrapper holds it, and the controls are usable again.
    expect(await form.locator(".field.invalid").getByLabel("Title").count()).toBe(1);
    expect(await form.getByRole("button", { name: "Create block" }).isEnabled()).toBe(true);
    expect(await a.getByTestId("block-item").count()).toBe(0);
  });

  it("saves a temporary block: it becomes a real one", async () => {
    const name = user("temporary");
    const [a, b] = [await page(), await page()];
    await signIn(a, env, name);
    await signIn(b, env, name);
    await createBlock(a, "Draft idea", { content: "not yet", tags: "wip", temporary: true });
    const temporary = a.locator('[data-testid="temporary-item"][data-title="Draft idea"]');
    await temporary.waitFor();
    expect(await b.getByTestId("temporary-item").count()).toBe(0); // never reached the server
    expect(await block(a, "Draft idea").count()).toBe(0);

    await temporary.getByRole("button", { name: "Save" }).click();
    await block(a, "Draft idea").waitFor();
    await temporary.waitFor({ state: "detached" });
    await block(b, "Draft idea").waitFor();
    expect(await block(b, "Draft idea").locator(".tag").allTextContents()).toEqual(["wip"]);

    // And one discarded: gone, never saved.
    await createBlock(a, "Scratch", { temporary: true });
    await a.locator('[data-testid="temporary-item"][data-title="Scratch"]').getByRole("button", { name: "Discard" }).click();
    await a.getByTestId("temporary-item").first().waitFor({ state: "detached" });
    expect(await block(b, "Scratch").count()).toBe(0);
  });

  it("with ?share=1, two tabs hold one server session, and the other tab carries on when the leader closes", async () => {
    await closeAll();
    const name = user("share");
    const leader = await page();
    const context = leader.context();
    // WebSockets each tab opens to the server (Chromium's own record, no timing involved).
    const sockets = new Map<Page, number>();
    const count = (p: Page) => p.on("websocket", () => sockets.set(p, (sockets.get(p) ?? 0) + 1));
    count(leader);
    await signIn(leader, env, name, "?share=1");
    const follower = await newPage(env, context); // same browser context: same origin, one browser
    count(follower);
    await signIn(follower, env, name, "?share=1");
    await expect.poll(() => openSessions(env.server), { timeout: WAIT, interval: 50 }).toBe(1);
    expect([sockets.get(leader), sockets.get(follower) ?? 0]).toEqual([1, 0]);

    // The follower writes through the leader's socket; both show it.
    await createBlock(follower, "From the follower");
    await block(leader, "From the follower").waitFor();
    expect(await openSessions(env.server)).toBe(1);

    // The leader closes: the follower takes over with a socket of its own and stays usable.
    await leader.close();
    await expect.poll(() => sockets.get(follower) ?? 0, { timeout: WAIT }).toBe(1);
    await live(follower);
    await createBlock(follower, "After the leader left");
    // It landed on the server: a fresh page of that user (no sharing) shows it.
    const check = await page();
    await signIn(check, env, name);
    await block(check, "After the leader left").waitFor();
    await expect.poll(() => openSessions(env.server), { timeout: WAIT, interval: 50 }).toBe(2);
  });

  it("the pill shows Live, then the error and its retry while the server is down, then Live again", async () => {
    await closeAll();
    const name = user("outage");
    const a = await page();
    await signIn(a, env, name);
    await createBlock(a, "Before the outage");
    expect(await pill(a).textContent()).toMatch(/^Live/);
    expect(await a.getByTestId("last-synced").textContent()).toMatch(/last synced/);

    await env.server.kill();
    await a.locator('[data-testid="status-pill"][data-state="error"]').waitFor();
    await expect.poll(() => pill(a).textContent(), { timeout: WAIT }).toMatch(/retrying/);

    // A write while the server is down stays pending: its controls are disabled meanwhile.
    const form = a.getByTestId("block-form");
    await form.getByLabel("Title").fill("Written during the outage");
    await form.getByRole("button", { name: "Create block" }).click();
    await form.getByRole("button", { name: "Saving…" }).waitFor();
    expect(await form.getByRole("button", { name: "Saving…" }).isDisabled()).toBe(true);
    expect(await form.getByLabel("Title").isDisabled()).toBe(true);

    await env.server.restart();
    await live(a);
    expect(await pill(a).textContent()).toMatch(/^Live/);
    // The pending write went through once the server was back, and the form is usable again.
    await block(a, "Written during the outage").waitFor();
    await expect.poll(() => form.getByLabel("Title").isEnabled(), { timeout: WAIT }).toBe(true);
    await block(a, "Before the outage").waitFor();
  });

  it("shows the IndexedDB copy at once with ?cache=1, marked cached, while the server is down", async () => {
    await closeAll();
    const name = user("cache");
    const a = await page();
    await signIn(a, env, name, "?cache=1");
    await createBlock(a, "Cached block");
    await env.server.kill();
    try {
      await a.reload();
      await block(a, "Cached block").waitFor();
      await a.locator('[data-testid="status-pill"][data-cached="1"]').waitFor();
      expect(await pill(a).textContent()).toMatch(/cached/);
    } finally {
      await env.server.restart();
    }
    await live(a);
    expect(await a.locator('[data-testid="status-pill"][data-cached="1"]').count()).toBe(0);

    // Sign out clears the cache: the same session put back while the server is down shows nothing.
    const session = await a.evaluate(() => JSON.stringify(sessionStorage));
    await a.getByTestId("sign-out").click();
    await a.getByLabel("User").waitFor();
    await env.server.kill();
    try {
      await a.evaluate((saved) => {
        for (const [k, v] of Object.entries(JSON.parse(saved) as Record<string, string>)) sessionStorage.setItem(k, v);
      }, session);
      await a.reload();
      await a.locator('[data-testid="status-pill"][data-state="error"]').waitFor();
      expect(await a.getByTestId("block-item").count()).toBe(0);
      expect(await a.locator('[data-testid="status-pill"][data-cached="1"]').count()).toBe(0);
    } finally {
      await env.server.restart();
    }
    await live(a);
    await block(a, "Cached block").waitFor();
  });

  it("two users share a library: switcher, share dialog, presence, 'on 2 of 2', and revocation", async () => {
    const alice = user("alice");
    const bob = user("bob");
    const [a, b] = [await page(), await page()];
    await signIn(a, env, alice);
    await signIn(b, env, bob);

    // Alice creates a library and the page switches to it.
    await a.getByTestId("new-library").click();
    await a.getByLabel("New library name").fill("Team prompts");
    await a.getByTestId("library-form").getByRole("button", { name: "Create" }).click();
    await expect.poll(() => selectedLibrary(a), { timeout: WAIT }).toBe("Team prompts");
    await live(a);
    await a.locator('[data-testid="role"][data-role="owner"]').waitFor();

    // She shares it with Bob as an editor: the dialog lists him once the server confirmed it.
    await a.getByTestId("share").click();
    const dialog = a.getByTestId("share-dialog");
    await dialog.getByLabel("User id").fill(bob);
    await dialog.locator("select[name=role]").selectOption("editor");
    await dialog.getByRole("button", { name: "Add" }).click();
    await dialog.locator(`[data-testid="member"][data-user="${bob}"][data-role="editor"]`).waitFor();
    await dialog.getByRole("button", { name: "Close" }).click();

    // Bob's switcher shows it without a reload; he opens it.
    const option = b.getByTestId("library-select").locator("option", { hasText: "Team prompts" });
    await option.waitFor({ state: "attached" });
    await b.getByTestId("library-select").selectOption({ label: (await option.textContent())! });
    await live(b);
    await b.locator('[data-testid="role"][data-role="editor"]').waitFor();

    // Presence: both pages show both people.
    for (const p of [a, b]) {
      await p.locator(`[data-testid="presence-chip"][data-user="${alice}"]`).waitFor();
      await p.locator(`[data-testid="presence-chip"][data-user="${bob}"]`).waitFor();
    }

    // Bob's edit reaches Alice.
    await createBlock(b, "From Bob", { content: "shared" });
    await block(a, "From Bob").waitFor();

    // Alice saves: "on 2 of 2" once Bob's page applied it too.
    await createBlock(a, "From Alice");
    await block(b, "From Alice").waitFor();
    await a.locator('[data-testid="receipt"][data-held="2"][data-total="2"]').waitFor();
    expect(await a.getByTestId("receipt").textContent()).toMatch(/on 2 of 2/);

    // Alice removes Bob: his page says his access was revoked, and shows nothing more of it.
    await a.getByTestId("share").click();
    await a.getByTestId("share-dialog").locator(`[data-testid="member"][data-user="${bob}"]`).getByRole("button", { name: "Remove" }).click();
    await a.getByTestId("share-dialog").locator(`[data-testid="member"][data-user="${bob}"]`).waitFor({ state: "detached" });
    await b.locator('[data-testid="revoked"][data-code="access_revoked"]').waitFor();
    expect(await b.getByTestId("block-item").count()).toBe(0);
    await b.locator('[data-testid="status-pill"][data-state="error"]').waitFor();
    expect(await pill(b).textContent()).toMatch(/Access revoked/);
    // Alice is alone again.
    await a.locator(`[data-testid="presence-chip"][data-user="${bob}"]`).waitFor({ state: "detached" });

    // Bob goes back to his own library, which works as before.
    await b.getByTestId("back-to-own").click();
    await live(b);
    await createBlock(b, "Bob's own");
  });

  it("takes a screenshot with some content: a shared library, two people on it", async () => {
    const a = await page();
    await signIn(a, env, "ada"); // the one test with these users: their libraries start empty
    await a.getByTestId("new-library").click();
    await a.getByLabel("New library name").fill("Newsletter team");
    await a.getByTestId("library-form").getByRole("button", { name: "Create" }).click();
    await expect.poll(() => selectedLibrary(a), { timeout: WAIT }).toBe("Newsletter team");
    await live(a);
    await a.getByTestId("share").click();
    const dialog = a.getByTestId("share-dialog");
    await dialog.getByLabel("User id").fill("grace");
    await dialog.getByRole("button", { name: "Add" }).click();
    await dialog.locator('[data-testid="member"][data-user="grace"]').waitFor();
    await dialog.getByRole("button", { name: "Close" }).click();

    const g = await page();
    await signIn(g, env, "grace");
    const option = g.getByTestId("library-select").locator("option", { hasText: "Newsletter team" });
    await option.waitFor({ state: "attached" });
    await g.getByTestId("library-select").selectOption({ label: (await option.textContent())! });
    await live(g);
    await a.locator('[data-testid="presence-chip"][data-user="grace"]').waitFor();

    await createProject(a, "Newsletter");
    await createProject(a, "Weekly", "Newsletter");
    await createProject(g, "Support");
    await createBlock(a, "Brand voice", { content: "Warm, direct, no jargon. Short sentences.", tags: "style, brand" });
    await createBlock(g, "Audience", {
      content: "Small-business owners who read on their phone.",
      tags: "context",
      project: "Newsletter",
    });
    await block(a, "Audience").waitFor();
    await createBlock(a, "Output format", {
      content: "Markdown, one H2 per section, under 400 words.",
      tags: "format",
      project: "Newsletter / Weekly",
    });
    await createPrompt(a, "Refund reply", ["Brand voice"]);
    await createBlock(g, "Apology template", { content: "We are sorry for the trouble…", tags: "support", project: "Support" });
    await block(a, "Apology template").waitFor();
    await createBlock(a, "Seasonal offer", { content: "20% off until Friday", tags: "draft", temporary: true });
    await a.getByTestId("temporary-item").waitFor();
    await createPrompt(a, "Weekly digest", ["Audience", "Brand voice", "Output format"]);
    await a.locator('[data-testid="receipt"][data-held="2"][data-total="2"]').waitFor();
    const path = process.env.LIBRARIAN_SCREENSHOT;
    if (path) {
      mkdirSync(dirname(path), { recursive: true });
      await a.screenshot({ path, fullPage: true });
      console.log(`screenshot: ${path}`);
    } else {
      expect((await a.screenshot({ fullPage: true })).length).toBeGreaterThan(0);
    }
  });
});
