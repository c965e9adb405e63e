/**
 * `shareAcrossTabs` in Node: the "tabs" are clients sharing an in-memory Web Locks manager and
 * Node's own BroadcastChannel. One holds the WebSocket (the server sees one session); the
 * others get its snapshots and statuses and send their mutations through it; when the leader
 * closes, another takes over and resumes with since_version.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { LibraryClient } from "../src/index.js";
import { MemoryLocks } from "./locks.js";
import { client, live, logsOnFailure, startProxy, startServer, until, user, waitForState, type LibrarianServer, type Proxy } from "./support.js";

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

/** A "tab": a sharing client that counts the sockets it opened (the leader opens one). */
function tab(token: string, locks: MemoryLocks): { client: LibraryClient; sockets: () => number } {
  let sockets = 0;
  class CountingWebSocket extends WebSocket {
    constructor(url: string) {
      super(url);
      sockets += 1;
    }
  }
  const c = client({ url: proxy.url, getToken: () => token, shareAcrossTabs: true, locks, WebSocket: CountingWebSocket });
  return { client: c, sockets: () => sockets };
}

describe("sharing one socket across tabs", () => {
  it("two tabs hold one server session; the follower's writes go through the leader; temporary blocks stay per tab", async () => {
    logsOnFailure(() => server);
    const token = await server.token(user("tabs"));
    const locks = new MemoryLocks();
    const a = tab(token, locks);
    await live(a.client, "a live");
    const b = tab(token, locks);
    await live(b.client, "b live (relayed)");
    expect(a.sockets() + b.sockets()).toBe(1);
    const [leader, follower] = a.sockets() === 1 ? [a, b] : [b, a];
    await until(async () => (await server.sessionsOpen()) === 1, "one session on the server");

    const block = await follower.client.createContextBlock({ title: "from the follower" });
    // Read-your-writes in the follower too: it shows it when the action resolves.
    expect(follower.client.getState().contextBlocks).toEqual([block]);
    await waitForState(leader.client, (s) => s.contextBlocks.some((x) => x.id === block.id), "the leader shows it");
    const project = await leader.client.createProject({ name: "from the leader" });
    await waitForState(follower.client, (s) => s.projects.some((p) => p.id === project.id), "the follower shows it");
    // A refusal reaches the follower as the server's problem document.
    const refused = await follower.client.createContextBlock({ title: "" }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ status: 422, code: "validation" });

    const t = follower.client.addTemporaryBlock({ title: "only here" });
    expect(follower.client.getState().temporaryBlocks).toEqual([t]);
    expect(leader.client.getState().temporaryBlocks).toEqual([]);
    const saved = await follower.client.saveTemporaryBlock(t.id);
    expect(follower.client.getState().temporaryBlocks).toEqual([]);
    await waitForState(leader.client, (s) => s.contextBlocks.some((x) => x.id === saved.id), "the leader shows the saved block");
    expect(proxy.openConnections()).toHaveLength(1);
    expect(await server.sessionsOpen()).toBe(1);
  });

  it("when the leader closes, the other tab takes over, resumes with since_version and stays live; its pending writes go through once", async () => {
    const token = await server.token(user("tabs-handover"));
    const locks = new MemoryLocks();
    const a = tab(token, locks);
    await live(a.client);
    const b = tab(token, locks);
    await live(b.client);
    const [leader, follower] = a.sockets() === 1 ? [a, b] : [b, a];
    await follower.client.createProject({ name: "before" });
    const held = follower.client.getState().version!;
    const first = proxy.last()!;

    // Writes issued by the follower just before the leader goes: some reach the old leader,
    // some are answered by it, the rest wait for the next one; all must land exactly once.
    const writes = Promise.all(Array.from({ length: 8 }, (_, i) => follower.client.createContextBlock({ title: `H${i}` })));
    const mutates = () => first.clientFrames.filter((t) => (JSON.parse(t) as { type: string }).type === "mutate").length;
    await until(() => mutates() >= 2, "the old leader sent some of them");
    await leader.client.close();
    const done = await writes;
    expect(follower.sockets()).toBe(1);
    const s = await live(follower.client, "the new leader live");
    expect(s.contextBlocks.map((x) => x.id).sort()).toEqual(done.map((x) => x.id).sort());
    const library = await server.library(token);
    expect(library.context_blocks).toHaveLength(8);
    expect(library.version).toBe(held + 8);

    const resumed = proxy.last()!;
    expect(resumed).not.toBe(first);
    const since = Number(resumed.url?.searchParams.get("since_version"));
    expect(since).toBeGreaterThanOrEqual(held);
    await until(async () => (await server.sessionsOpen()) === 1, "one session again");

    // A tab opened now follows the new leader and gets the state from it.
    const c = tab(token, locks);
    const joined = await waitForState(c.client, (x) => x.status.state === "live" && x.version === library.version, "a new tab gets the state");
    expect(c.sockets()).toBe(0);
    expect(joined.contextBlocks).toHaveLength(8);
    const last = await c.client.createProject({ name: "third tab" });
    await waitForState(follower.client, (x) => x.projects.some((p) => p.id === last.id), "the leader shows it");
    expect(await server.sessionsOpen()).toBe(1);
  });

  it("without Web Locks each client keeps its own socket", async () => {
    const token = await server.token(user("tabs-fallback"));
    const g = globalThis as { navigator?: { locks?: unknown } };
    expect(g.navigator?.locks).toBeUndefined();
    const a = client({ url: server.url, getToken: () => token, shareAcrossTabs: true });
    const b = client({ url: server.url, getToken: () => token, shareAcrossTabs: true });
    await live(a);
    await live(b);
    await until(async () => (await server.sessionsOpen()) >= 2, "two sessions");
  });
});
