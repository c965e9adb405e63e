/**
 * `cache: "indexeddb"` (fake-indexeddb here): a client shows the last snapshot cached for its
 * url, user and library at once, marked cached, before any connection; resumes from its
 * version; and is unmarked once the server confirmed it. A copy of another library is dropped.
 */

import { IDBFactory } from "fake-indexeddb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clearLibraryCache, type LibraryState } from "../src/index.js";
import { client, live, logsOnFailure, startProxy, startServer, user, waitForState, within, type LibrarianServer, type Proxy } from "./support.js";

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

/** Every emitted state, each with how many connections the proxy had seen when it was emitted. */
function record(c: { getState(): LibraryState; subscribe(l: () => void): () => void }) {
  const states: Array<{ state: LibraryState; connections: number }> = [{ state: c.getState(), connections: proxy.connections.length }];
  c.subscribe(() => states.push({ state: c.getState(), connections: proxy.connections.length }));
  return states;
}

describe("the IndexedDB cache", () => {
  it("a second client shows the cached library before connecting, resumes with since_version, and is live and unmarked once confirmed", async () => {
    logsOnFailure(() => server);
    const indexedDB = new IDBFactory();
    const token = await server.token(user("cache"));
    const first = client({ url: proxy.url, getToken: () => token, cache: "indexeddb", indexedDB });
    await live(first);
    await first.createContextBlock({ title: "cached block" });
    await first.createProject({ name: "cached project" });
    const synced = first.getState();
    expect(synced.status.cached).toBe(false);
    await within(first.close(), "the first client closes (with its last cache write)");

    const before = proxy.connections.length;
    const second = client({ url: proxy.url, getToken: () => token, cache: "indexeddb", indexedDB });
    const states = record(second);
    expect(states[0]!.state.isLoading).toBe(true);
    const ready = await live(second);
    // The first state with a library is the cached one, shown before the client connected.
    const shown = states.find((s) => !s.state.isLoading)!;
    expect(shown.connections).toBe(before);
    expect(shown.state.status.cached).toBe(true);
    expect(shown.state.version).toBe(synced.version);
    expect(shown.state.contextBlocks).toEqual(synced.contextBlocks);
    expect(shown.state.projects).toEqual(synced.projects);
    expect(shown.state.lastSyncedAt).toBe(synced.lastSyncedAt);
    // It resumed from the cached version; the server had nothing newer to send.
    const conn = proxy.last()!;
    expect(conn.url?.searchParams.get("since_version")).toBe(String(synced.version));
    expect(conn.serverFrames.map((t) => JSON.parse(t).type)).not.toContain("snapshot");
    expect(ready.status).toEqual({ state: "live", cached: false });
    expect(ready.version).toBe(synced.version);
    expect(ready.lastSyncedAt!).toBeGreaterThanOrEqual(synced.lastSyncedAt!);
    // Every state between was still the cached copy: nothing went missing meanwhile.
    for (const s of states.slice(states.indexOf(shown))) expect(s.state.contextBlocks).toEqual(synced.contextBlocks);
  });

  it("a cached copy older than the server's is shown, then replaced by the newer snapshot", async () => {
    const indexedDB = new IDBFactory();
    const token = await server.token(user("cache-older"));
    const first = client({ url: server.url, getToken: () => token, cache: "indexeddb", indexedDB });
    await live(first);
    await first.createProject({ name: "old" });
    await first.close();
    // Someone else writes while this user's tab is closed.
    await server.request("POST", "/api/v1/projects", { token, body: { name: "new" } });
    const second = client({ url: server.url, getToken: () => token, cache: "indexeddb", indexedDB });
    const cached = await waitForState(second, (s) => !s.isLoading, "the cached copy");
    expect(cached.status.cached).toBe(true);
    expect(cached.projects.map((p) => p.name)).toEqual(["old"]);
    const fresh = await waitForState(second, (s) => s.version === 2 && s.status.state === "live", "the newer snapshot");
    expect(fresh.status.cached).toBe(false);
    expect(fresh.projects.map((p) => p.name)).toEqual(["old", "new"]);
  });

  it("a copy of another library (the server's data was replaced) is dropped on hello and the library loaded whole", async () => {
    const own = await startServer();
    try {
      const ownProxy = await startProxy(own.port);
      const indexedDB = new IDBFactory();
      const name = user("cache-other");
      const token = await own.token(name);
      const first = client({ url: ownProxy.url, getToken: () => token, cache: "indexeddb", indexedDB });
      await live(first);
      await first.createProject({ name: "from the old data" });
      await first.createProject({ name: "also old" });
      await first.close();
      // A new server on the same port with a fresh data directory: same url, same user, another library.
      await own.stop();
      const fresh = await startServer({ port: own.port });
      try {
        const newToken = await fresh.token(name);
        const second = client({ url: ownProxy.url, getToken: () => newToken, cache: "indexeddb", indexedDB });
        const states = record(second);
        const ready = await waitForState(second, (s) => s.status.state === "live" && s.version === 0, "the new library, live");
        expect(ready.projects).toEqual([]);
        expect(ready.status.cached).toBe(false);
        // The cached copy was shown, then dropped: never mixed with the new library.
        expect(states.some((s) => s.state.status.cached)).toBe(true);
        const last = ownProxy.last()!;
        expect(last.url?.searchParams.get("since_version")).toBeNull();
        await second.close();
        // What is cached now is the new library.
        const third = client({ url: ownProxy.url, getToken: () => newToken, cache: "indexeddb", indexedDB });
        const shown = await waitForState(third, (s) => !s.isLoading, "the new cached copy");
        expect(shown.version).toBe(0);
        expect(shown.projects).toEqual([]);
      } finally {
        await fresh.stop();
        await ownProxy.close();
      }
    } finally {
      await own.stop();
    }
  });

  it("clearCache() deletes what was cached: the next client shows nothing before the server answers", async () => {
    const indexedDB = new IDBFactory();
    const token = await server.token(user("cache-clear"));
    const first = client({ url: server.url, getToken: () => token, cache: "indexeddb", indexedDB });
    await live(first);
    await first.createProject({ name: "gone after sign-out" });
    await first.clearCache();
    await first.close();
    const second = client({ url: server.url, getToken: () => token, cache: "indexeddb", indexedDB });
    const shown = await waitForState(second, (s) => !s.isLoading, "a library");
    expect(shown.status.cached).toBe(false);
    await second.close();
    await clearLibraryCache(indexedDB);
  });

  it("without the cache option nothing is stored", async () => {
    const indexedDB = new IDBFactory();
    const token = await server.token(user("cache-off"));
    const first = client({ url: server.url, getToken: () => token, indexedDB });
    await live(first);
    await first.createProject({ name: "not cached" });
    await first.close();
    expect(await indexedDB.databases()).toEqual([]);
  });
});
