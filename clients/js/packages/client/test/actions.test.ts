/**
 * Every action against the real server: what it resolves to, that the state already shows
 * it then (read-your-writes), how a refusal looks (the server's problem document), and that
 * nothing is shown before the server confirmed it.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LibraryError } from "../src/index.js";
import { client, live, liveClient, logsOnFailure, recordStates, settled, startServer, user, waitForState, type LibrarianServer } from "./support.js";

let server: LibrarianServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

async function rejection(promise: Promise<unknown>): Promise<LibraryError> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(LibraryError);
    return e as LibraryError;
  }
  throw new Error("expected a rejection");
}

describe("actions", () => {
  it("create, update and delete a project; each resolves once the state shows it", async () => {
    logsOnFailure(() => server);
    const { client: c } = await liveClient(server, user("projects"));
    const parent = await c.createProject({ name: "Writing", description: "all of it" });
    expect(parent).toMatchObject({ name: "Writing", description: "all of it", parent_id: null, version: 1 });
    expect(c.getState().projects).toEqual([parent]);
    const child = await c.createProject({ name: "Mail", parent_id: parent.id });
    expect(c.getState().projects.find((p) => p.id === child.id)?.parent_id).toBe(parent.id);

    const renamed = await c.updateProject(parent.id, { name: "Prose" }, { ifVersion: 1 });
    expect(renamed).toMatchObject({ id: parent.id, name: "Prose", version: 2 });
    expect(c.getState().projects.find((p) => p.id === parent.id)).toEqual(renamed);

    await expect(c.deleteProject(parent.id, { ifVersion: 2 })).resolves.toBeUndefined();
    const state = c.getState();
    expect(state.projects.map((p) => p.id)).toEqual([child.id]);
    // Deleting a project moves its children to its parent (none): nothing is lost.
    expect(state.projects[0]!.parent_id).toBeNull();
  });

  it("create, update and delete a context block", async () => {
    const { client: c, token } = await liveClient(server, user("blocks"));
    const block = await c.createContextBlock({ title: "Tone", content: "Be brief.", tags: ["style"] });
    expect(block).toMatchObject({ title: "Tone", content: "Be brief.", tags: ["style"], project_id: null, version: 1 });
    expect(c.getState().contextBlocks).toEqual([block]);
    const updated = await c.updateContextBlock(block.id, { tags: ["style", "mail"] }, { ifVersion: block.version });
    expect(updated.tags).toEqual(["style", "mail"]);
    expect(c.getState().contextBlocks[0]).toEqual(updated);
    await c.deleteContextBlock(block.id);
    expect(c.getState().contextBlocks).toEqual([]);
    expect((await server.library(token)).context_blocks).toEqual([]);
  });

  it("create, update and delete a saved prompt that references blocks", async () => {
    const { client: c } = await liveClient(server, user("prompts"));
    const a = await c.createContextBlock({ title: "A" });
    const b = await c.createContextBlock({ title: "B" });
    const prompt = await c.createSavedPrompt({ title: "Mail", content: "Dear", context_block_ids: [a.id, b.id] });
    expect(prompt.context_block_ids).toEqual([a.id, b.id]);
    expect(c.getState().savedPrompts).toEqual([prompt]);
    const updated = await c.updateSavedPrompt(prompt.id, { context_block_ids: [b.id] }, { ifVersion: 1 });
    expect(c.getState().savedPrompts[0]).toEqual(updated);
    // Deleting a block removes it from every prompt that uses it.
    await c.deleteContextBlock(b.id);
    expect(c.getState().savedPrompts[0]!.context_block_ids).toEqual([]);
    await c.deleteSavedPrompt(prompt.id, { ifVersion: c.getState().savedPrompts[0]!.version });
    expect(c.getState().savedPrompts).toEqual([]);
  });

  it("an ifVersion mismatch rejects with 412 and the current row, for every kind", async () => {
    const { client: c } = await liveClient(server, user("conflict"));
    const project = await c.createProject({ name: "P" });
    const block = await c.createContextBlock({ title: "B" });
    const prompt = await c.createSavedPrompt({ title: "S" });
    const before = await settled(c);
    // All at once (each awaited through `rejection`, so none is left unhandled meanwhile).
    const cases: Array<[Promise<LibraryError>, string]> = [
      [rejection(c.updateProject(project.id, { name: "x" }, { ifVersion: 7 })), project.id],
      [rejection(c.deleteProject(project.id, { ifVersion: 7 })), project.id],
      [rejection(c.updateContextBlock(block.id, { title: "x" }, { ifVersion: 7 })), block.id],
      [rejection(c.deleteContextBlock(block.id, { ifVersion: 7 })), block.id],
      [rejection(c.updateSavedPrompt(prompt.id, { title: "x" }, { ifVersion: 7 })), prompt.id],
      [rejection(c.deleteSavedPrompt(prompt.id, { ifVersion: 7 })), prompt.id],
    ];
    for (const [promise, id] of cases) {
      const e = await promise;
      expect(e.status).toBe(412);
      expect(e.current).toMatchObject({ id, version: 1 });
      expect(e.problem.status).toBe(412);
    }
    // Nothing was written.
    expect(c.getState()).toBe(before);
  });

  it("a rule broken rejects with 422 naming the field, and nothing is written or shown", async () => {
    const { client: c, token } = await liveClient(server, user("invalid"));
    const states = recordStates(c);
    const e = await rejection(c.createContextBlock({ title: "" }));
    expect(e.status).toBe(422);
    expect(e.code).toBe("validation");
    expect(e.fieldErrors.map((f) => f.field)).toContain("title");
    expect(e.fields.title).toBeTruthy();
    const p = await rejection(c.createProject({ name: "x".repeat(201) }));
    expect(p.fields.name).toBeTruthy();
    const missing = await rejection(c.updateSavedPrompt("01a2180b-2f3b-75e3-ad1a-6de66853339b", { title: "x" }));
    expect(missing.status).toBe(404);
    expect(states.states).toHaveLength(1);
    expect((await server.library(token)).version).toBe(0);
  });

  it("a mutation over the frame limit (1 MiB) is refused with 413 before it is sent; the session stays", async () => {
    const { client: c, token } = await liveClient(server, user("too-large"));
    const states = recordStates(c);
    const e = await rejection(c.createContextBlock({ title: "big", content: "x".repeat(1024 * 1024 + 1) }));
    expect(e.status).toBe(413);
    expect(e.code).toBe("too_large");
    const small = await c.createContextBlock({ title: "small" });
    expect(c.getState().contextBlocks).toEqual([small]);
    expect(states.states.every((s) => s.status.state === "live")).toBe(true);
    expect((await server.library(token)).version).toBe(1);
  });

  it("the frame limit is the one hello announces: a smaller server limit refuses a smaller mutation, here", async () => {
    const small = await startServer({ env: { LIBRARIAN__LIMITS__BODY_MAX_BYTES: "8192" } });
    try {
      const { client: c, token } = await liveClient(small, user("announced-limit"));
      const e = await rejection(c.createContextBlock({ title: "big", content: "x".repeat(10_000) }));
      expect(e.status).toBe(413);
      expect(e.message).toContain("8192");
      const fits = await c.createContextBlock({ title: "fits", content: "x".repeat(4_000) });
      expect(c.getState().contextBlocks).toEqual([fits]);
      expect(c.getState().status.state).toBe("live");
      expect((await small.library(token)).version).toBe(1);
    } finally {
      await small.stop();
    }
  });

  it("read-your-writes: a create shows at once in the writer, and a second client of the same user converges", async () => {
    const name = user("ryw");
    const { client: a, token } = await liveClient(server, name);
    const b = client({ url: server.url, getToken: () => token });
    await live(b);
    const states = recordStates(a);
    const block = await a.createContextBlock({ title: "Shared" });
    expect(a.getState().contextBlocks.map((x) => x.id)).toEqual([block.id]);
    // Nothing before the server confirmed it: no emitted state had the block without its server fields.
    for (const s of states.states) for (const x of s.contextBlocks) expect(x).toEqual(block);
    const seen = await waitForState(b, (s) => s.contextBlocks.some((x) => x.id === block.id), "b sees the block");
    expect(seen.contextBlocks).toEqual([block]);
    await b.updateContextBlock(block.id, { title: "Edited" });
    await waitForState(a, (s) => s.contextBlocks[0]?.title === "Edited", "a sees b's edit");
    expect(a.getState().version).toBe(b.getState().version);
  });

  it("the state starts connecting and loading, then live with the library; the same object while nothing changes", async () => {
    const token = await server.token(user("states"));
    const c = client({ url: server.url, getToken: () => token });
    const first = c.getState();
    expect(first).toMatchObject({ version: null, isLoading: true, error: null, lastSyncedAt: null });
    expect(first.status).toEqual({ state: "connecting", cached: false });
    expect(c.getState()).toBe(first);
    const states = recordStates(c);
    // Live, and the presence frames of its own arrival are in (they change the state too).
    const ready = await settled(c);
    expect(ready).toMatchObject({ version: 0, isLoading: false, error: null, projects: [], contextBlocks: [], savedPrompts: [] });
    expect(ready.status).toEqual({ state: "live", cached: false });
    expect(typeof ready.lastSyncedAt).toBe("number");
    expect(states.states.map((s) => s.status.state)).toContain("loading");
    expect(c.getState()).toBe(ready);
  });

  it("unchanged rows and lists keep their identity across snapshots; temporary blocks too", async () => {
    const { client: c } = await liveClient(server, user("identity"));
    const block = await c.createContextBlock({ title: "Kept" });
    c.addTemporaryBlock({ title: "local" });
    const before = c.getState();
    await c.createProject({ name: "New" });
    const after = c.getState();
    expect(after).not.toBe(before);
    expect(after.contextBlocks).toBe(before.contextBlocks);
    expect(after.contextBlocks[0]).toBe(before.contextBlocks.find((b) => b.id === block.id));
    expect(after.savedPrompts).toBe(before.savedPrompts);
    expect(after.temporaryBlocks).toBe(before.temporaryBlocks);
    expect(after.projects).not.toBe(before.projects);
    // The members (the snapshot's, unchanged) keep their array too.
    expect(after.members).toEqual([{ user_id: after.members[0]!.user_id, role: "owner" }]);
    expect(after.members).toBe(before.members);
  });

  it("close() rejects pending actions with code closed, and later ones too", async () => {
    const token = await server.token(user("close"));
    // Not connected yet: the mutation is pending when the client closes.
    const c = client({ url: server.url, getToken: () => token });
    const pending = rejection(c.createProject({ name: "never shown" }));
    await c.close();
    expect((await pending).code).toBe("closed");
    expect((await rejection(c.createProject({ name: "after" }))).code).toBe("closed");
  });
});
