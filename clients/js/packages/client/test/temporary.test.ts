/**
 * Temporary blocks: local only (never sent, never on the server), kept across snapshots, and
 * saved without a flicker: the state update that first shows the saved block is the one that
 * removes the temporary one.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LibraryError, type LibraryState } from "../src/index.js";
import { client, live, liveClient, logsOnFailure, recordStates, startProxy, startServer, user, waitForState, type LibrarianServer, type Proxy } from "./support.js";

let server: LibrarianServer;
let proxy: Proxy;
beforeAll(async () => {
  server = await startServer();
  proxy = await startProxy(server.port);
});
afterAll(async () => {
  await proxy?.close();
  await server?.stop();
});

describe("temporary blocks", () => {
  it("never reach the server: not in GET /library, not in any frame sent", async () => {
    logsOnFailure(() => server);
    const token = await server.token(user("temp-local"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    const t = c.addTemporaryBlock({ title: "secret-title", content: "secret-content", tags: ["x"] });
    expect(t).toMatchObject({ title: "secret-title", content: "secret-content", tags: ["x"], project_id: null, temporary: true, saving: false });
    expect(t.id).toMatch(/^temp-/);
    expect(c.getState().temporaryBlocks).toEqual([t]);
    const edited = c.updateTemporaryBlock(t.id, { content: "secret-edited" });
    expect(edited.content).toBe("secret-edited");
    // A real write after the temporary ones, so that everything before it has gone out.
    await c.createProject({ name: "real" });
    expect(c.getState().temporaryBlocks).toEqual([edited]);
    const library = await server.library(token);
    expect(JSON.stringify(library)).not.toContain("secret");
    const sent = proxy.connections.flatMap((conn) => conn.clientFrames).join("\n");
    expect(sent).toContain("real");
    expect(sent).not.toContain("secret");
    c.removeTemporaryBlock(t.id);
    expect(c.getState().temporaryBlocks).toEqual([]);
    expect(() => c.updateTemporaryBlock(t.id, { title: "gone" })).toThrow(LibraryError);
  });

  it("save: no emitted state has both the temporary and the saved block, none has neither", async () => {
    const { client: c, token } = await liveClient(server, user("temp-save"));
    const other = c.addTemporaryBlock({ title: "stays" });
    const t = c.addTemporaryBlock({ title: "Draft", content: "words", tags: ["t"] });
    const rec = recordStates(c);
    const saved = await c.saveTemporaryBlock(t.id);
    rec.stop();
    expect(saved).toMatchObject({ title: "Draft", content: "words", tags: ["t"], version: 1 });
    // When it resolves, the state shows the saved block and not the temporary one.
    const now = c.getState();
    expect(now.contextBlocks.map((b) => b.id)).toEqual([saved.id]);
    expect(now.temporaryBlocks.map((b) => b.id)).toEqual([other.id]);
    const has = (s: LibraryState) => ({
      temp: s.temporaryBlocks.some((b) => b.id === t.id),
      saved: s.contextBlocks.some((b) => b.id === saved.id),
    });
    for (const s of rec.states) {
      const h = has(s);
      expect(h.temp && h.saved, "a state with both").toBe(false);
      expect(!h.temp && !h.saved, "a state with neither").toBe(false);
      expect(s.temporaryBlocks.some((b) => b.id === other.id)).toBe(true);
    }
    // While saving, the temporary block was marked.
    expect(rec.states.some((s) => s.temporaryBlocks.find((b) => b.id === t.id)?.saving === true)).toBe(true);
    expect((await server.library(token)).context_blocks.map((b) => b.id)).toEqual([saved.id]);
  });

  it("save, for many blocks at once: still never both, never neither", async () => {
    const { client: c } = await liveClient(server, user("temp-many"));
    const temps = Array.from({ length: 10 }, (_, i) => c.addTemporaryBlock({ title: `T${i}` }));
    const rec = recordStates(c);
    const saved = await Promise.all(temps.map((t) => c.saveTemporaryBlock(t.id)));
    rec.stop();
    for (const s of rec.states) {
      temps.forEach((t, i) => {
        const temp = s.temporaryBlocks.some((b) => b.id === t.id);
        const real = s.contextBlocks.some((b) => b.id === saved[i]!.id);
        expect(temp !== real, `state v${s.version}: block ${i} temp=${temp} saved=${real}`).toBe(true);
      });
    }
    expect(c.getState().temporaryBlocks).toEqual([]);
  });

  it("a refused save leaves the temporary block, unmarked, with the server's field errors", async () => {
    const { client: c, token } = await liveClient(server, user("temp-refused"));
    const t = c.addTemporaryBlock({ title: "" });
    const rec = recordStates(c);
    const e = await c.saveTemporaryBlock(t.id).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LibraryError);
    expect((e as LibraryError).fields.title).toBeTruthy();
    expect(c.getState().temporaryBlocks).toEqual([{ ...t, saving: false }]);
    expect(rec.states.map((s) => s.temporaryBlocks[0]?.saving)).toEqual([false, true, false]);
    expect((await server.library(token)).context_blocks).toEqual([]);
    // Fixed, it saves.
    c.updateTemporaryBlock(t.id, { title: "fixed" });
    const saved = await c.saveTemporaryBlock(t.id);
    expect(c.getState().contextBlocks).toEqual([saved]);
    expect(c.getState().temporaryBlocks).toEqual([]);
  });

  it("stay across snapshots written by another client", async () => {
    const name = user("temp-across");
    const { client: a, token } = await liveClient(server, name);
    const b = client({ url: server.url, getToken: () => token });
    await live(b);
    const t = a.addTemporaryBlock({ title: "mine" });
    await b.createContextBlock({ title: "theirs" });
    await b.createProject({ name: "p" });
    const version = b.getState().version;
    await live(a);
    const s = await waitForState(a, (x) => x.version === version, "a catches up");
    expect(s.temporaryBlocks).toEqual([t]);
    expect(b.getState().temporaryBlocks).toEqual([]);
  });
});
