/**
 * Patch frames against the real server (DESIGN §10): the client asks for them, applies each
 * one, and holds byte for byte what `GET /library` answers; a resume gets a patch; a frame
 * changed in transit (content or digest) or one that cannot apply leads to a `resync` and the
 * server's whole library, never to a wrong library shown as fresh. The proxy shows the frames.
 */

import { IDBFactory } from "fake-indexeddb";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { LibraryClient, LibrarySnapshot, LibraryState } from "../src/index.js";
import { SnapshotCache, cacheKey } from "../src/cache.js";
import { canonicalJson, digestOf } from "../src/patch.js";
import { MemoryLocks } from "./locks.js";
import {
  client,
  live,
  logsOnFailure,
  recordStates,
  startProxy,
  startServer,
  until,
  user,
  waitForState,
  within,
  type LibrarianServer,
  type Proxy,
  type ProxyConnection,
} from "./support.js";

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

type Frame = { type: string; [k: string]: unknown };
const parse = (text: string) => JSON.parse(text) as Frame;
const frames = (texts: string[]) => texts.map(parse);
const types = (texts: string[]) => frames(texts).map((f) => f.type);
/** The library frames (`snapshot`, `patch`) a connection got, in order. */
const libraryFrames = (conn: ProxyConnection) => frames(conn.serverFrames).filter((f) => f.type === "snapshot" || f.type === "patch");

/** The library a state shows, as the wire has it. */
function held(s: LibraryState): LibrarySnapshot {
  return { version: s.version!, projects: s.projects, context_blocks: s.contextBlocks, saved_prompts: s.savedPrompts, members: s.members };
}

/** `GET /library`'s bytes and `Library-Digest`. */
async function serverLibrary(token: string): Promise<{ text: string; digest: string | null; version: number }> {
  const res = await fetch(new URL("/api/v1/library", server.url), { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  expect(res.status).toBe(200);
  return { text, digest: res.headers.get("library-digest"), version: (JSON.parse(text) as { version: number }).version };
}

/** Waits until `c` shows the server's current version, then checks it holds exactly the server's bytes. */
async function sameAsServer(c: LibraryClient, token: string, what: string): Promise<LibraryState> {
  const lib = await serverLibrary(token);
  const s = await waitForState(c, (x) => x.version === lib.version && x.status.state === "live", `${what}: at v${lib.version}`);
  expect(canonicalJson(held(s))).toBe(lib.text);
  expect(digestOf(held(s))).toBe(lib.digest);
  return s;
}

/** A write over HTTP, as another device of the same user would make it. */
async function httpCreate(token: string, path: string, body: unknown): Promise<{ id: string }> {
  const res = await server.request<{ data: { id: string } }>("POST", `/api/v1/${path}`, { token, body });
  expect(res.status).toBe(201);
  return res.body.data;
}

describe("patch frames", () => {
  it("a client on patches holds byte for byte what GET /library answers, through creates, updates, moves and deletes", async () => {
    logsOnFailure(() => server);
    const token = await server.token(user("patches"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    const conn = proxy.last()!;
    expect(conn.url?.searchParams.get("patches")).toBe("1");
    expect(frames(conn.serverFrames)[0]).toMatchObject({ type: "hello", patches: true });

    const parent = await c.createProject({ name: "Parent" });
    const child = await c.createProject({ name: "Child", parent_id: parent.id });
    const b1 = await c.createContextBlock({ title: "B1", project_id: child.id, tags: ["x", "y"] });
    const b2 = await c.createContextBlock({ title: 'B2 é "q"\n\t\u0001', content: "😀 \u2028 </script>" });
    const prompt = await c.createSavedPrompt({ title: "P", context_block_ids: [b1.id, b2.id], project_id: parent.id });
    await sameAsServer(c, token, "after the creates");

    await c.updateContextBlock(b1.id, { content: "changed", tags: [] });
    await c.updateProject(child.id, { name: "Child 2" });
    await sameAsServer(c, token, "after the updates");

    // A project delete moves its children to the top (the child project, the prompt).
    await c.deleteProject(parent.id);
    let s = await sameAsServer(c, token, "after the project delete");
    expect(s.projects.find((p) => p.id === child.id)?.parent_id).toBeNull();
    expect(s.savedPrompts.find((p) => p.id === prompt.id)?.project_id).toBeNull();
    // A block delete takes it out of the prompts that used it.
    await c.deleteContextBlock(b2.id);
    s = await sameAsServer(c, token, "after the block delete");
    expect(s.savedPrompts.find((p) => p.id === prompt.id)?.context_block_ids).toEqual([b1.id]);

    // A burst from another device: patches may span several versions (latest wins).
    await Promise.all(Array.from({ length: 12 }, (_, i) => httpCreate(token, "context-blocks", { title: `burst ${i}` })));
    await sameAsServer(c, token, "after a burst of HTTP writes");
    await c.deleteSavedPrompt(prompt.id);
    await c.updateContextBlock(b1.id, { project_id: null });
    await c.deleteProject(child.id);
    await sameAsServer(c, token, "at the end");

    // One whole snapshot (the first), patches after it; no resync was needed.
    const got = libraryFrames(conn);
    expect(got[0]?.type).toBe("snapshot");
    expect(got.slice(1).length).toBeGreaterThan(5);
    expect(got.slice(1).every((f) => f.type === "patch")).toBe(true);
    expect(types(conn.clientFrames)).not.toContain("resync");
    // Each patch starts where the last frame ended, and a receipt followed it.
    for (let i = 1; i < got.length; i++) expect(got[i]!.from_version).toBe(got[i - 1]!.version);
    const seen = frames(conn.clientFrames).filter((f) => f.type === "seen").map((f) => f.version);
    expect(seen).toContain(got[got.length - 1]!.version);
  });

  it("patches: false asks for none and gets whole snapshots, holding the same library", async () => {
    const token = await server.token(user("nopatches"));
    const c = client({ url: proxy.url, getToken: () => token, patches: false });
    await live(c);
    const conn = proxy.last()!;
    expect(conn.url?.searchParams.get("patches")).toBeNull();
    const block = await c.createContextBlock({ title: "one" });
    await c.updateContextBlock(block.id, { title: "two" });
    await sameAsServer(c, token, "without patches");
    const got = libraryFrames(conn);
    expect(got.length).toBeGreaterThanOrEqual(3);
    expect(got.every((f) => f.type === "snapshot")).toBe(true);
    // Snapshots carry the digest too, and it matched.
    expect(got.every((f) => typeof f.digest === "string")).toBe(true);
    expect(types(conn.clientFrames)).not.toContain("resync");
  });

  it("a resume with since_version gets a patch from there, not the whole library", async () => {
    logsOnFailure(() => server);
    const token = await server.token(user("resume"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    const kept = await c.createContextBlock({ title: "kept" });
    const gone = await c.createContextBlock({ title: "deleted while away" });
    const version = c.getState().version!;
    const first = proxy.last()!;

    proxy.refuse(true);
    first.cut();
    await waitForState(c, (s) => s.status.state === "error", "the loss shown");
    // Meanwhile, another device writes.
    await httpCreate(token, "context-blocks", { title: "written while away" });
    expect((await server.request("PATCH", `/api/v1/context-blocks/${kept.id}`, { token, body: { title: "renamed while away" } })).status).toBe(200);
    expect((await server.request("DELETE", `/api/v1/context-blocks/${gone.id}`, { token })).status).toBe(200);
    proxy.refuse(false);

    const s = await sameAsServer(c, token, "resumed");
    expect(s.contextBlocks.map((b) => b.title).sort()).toEqual(["renamed while away", "written while away"]);
    const resumed = proxy.connections.filter((x) => x.responseStatus === 101).at(-1)!;
    expect(resumed).not.toBe(first);
    expect(resumed.url?.searchParams.get("since_version")).toBe(String(version));
    expect(resumed.url?.searchParams.get("patches")).toBe("1");
    const got = libraryFrames(resumed);
    expect(got[0]).toMatchObject({ type: "patch", from_version: version });
    expect(got.map((f) => f.type)).not.toContain("snapshot");
    expect(types(resumed.clientFrames)).not.toContain("resync");
  });

  it("a cached library resumes with a patch, and is cached again once patched", async () => {
    logsOnFailure(() => server);
    const indexedDB = new IDBFactory();
    const token = await server.token(user("cachepatch"));
    const first = client({ url: proxy.url, getToken: () => token, cache: "indexeddb", indexedDB });
    await live(first);
    await first.createProject({ name: "cached" });
    const version = first.getState().version!;
    await within(first.close(), "the first client closes (with its cache write)");
    await httpCreate(token, "projects", { name: "new while closed" });

    const second = client({ url: proxy.url, getToken: () => token, cache: "indexeddb", indexedDB });
    await sameAsServer(second, token, "the second client");
    const conn = proxy.last()!;
    expect(conn.url?.searchParams.get("since_version")).toBe(String(version));
    expect(libraryFrames(conn)[0]).toMatchObject({ type: "patch", from_version: version });
    expect(types(conn.clientFrames)).not.toContain("resync");
    await within(second.close(), "the second client closes");

    // The patched library was cached: a third client shows it at once, and the server has nothing newer.
    const third = client({ url: proxy.url, getToken: () => token, cache: "indexeddb", indexedDB });
    const cached = await waitForState(third, (s) => s.version !== null, "the cached copy");
    expect(cached.projects.map((p) => p.name).sort()).toEqual(["cached", "new while closed"]);
    await sameAsServer(third, token, "the third client");
  });

  it("a patch changed in transit is never shown: resync, syncing meanwhile, then the server's snapshot", async () => {
    logsOnFailure(() => server);
    const token = await server.token(user("tamper"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    const block = await c.createContextBlock({ title: "original" });
    const conn = proxy.last()!;
    let tampered = 0;
    const stop = proxy.onFrame((on, dir, text) => {
      if (on !== conn || dir !== "server" || tampered > 0) return;
      const f = parse(text) as Frame & { context_blocks?: { upsert: Array<{ title: string }> } };
      const row = f.type === "patch" ? f.context_blocks?.upsert.find((b) => b.title === "renamed") : undefined;
      if (!row) return;
      // Same digest, other content: what the client builds no longer hashes to it.
      row.title = "tampered";
      tampered += 1;
      conn.inject(JSON.stringify(f));
      return "drop";
    });
    const states = recordStates(c);
    const renamed = await c.updateContextBlock(block.id, { title: "renamed" });
    stop();
    expect(tampered).toBe(1);
    expect(renamed.title).toBe("renamed");
    const s = await sameAsServer(c, token, "after the resync");
    expect(s.contextBlocks.map((b) => b.title)).toEqual(["renamed"]);
    states.stop();
    // Never shown; `syncing` while the whole library came.
    expect(states.states.some((x) => x.contextBlocks.some((b) => b.title === "tampered"))).toBe(false);
    expect(states.states.some((x) => x.status.state === "syncing")).toBe(true);
    expect(types(conn.clientFrames)).toContain("resync");
    const after = libraryFrames(conn);
    const snapshot = after.findIndex((f, i) => i > 0 && f.type === "snapshot");
    expect(snapshot).toBeGreaterThan(0);
    expect(after[snapshot]!.version).toBe(s.version);
  });

  it("a wrong digest leads to a resync, and patches go on from the snapshot that answered it", async () => {
    logsOnFailure(() => server);
    const token = await server.token(user("digest"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    const conn = proxy.last()!;
    let tampered = 0;
    const stop = proxy.onFrame((on, dir, text) => {
      if (on !== conn || dir !== "server" || tampered > 0) return;
      const f = parse(text);
      if (f.type !== "patch") return;
      f.digest = `sha256:${"0".repeat(64)}`;
      tampered += 1;
      conn.inject(JSON.stringify(f));
      return "drop";
    });
    await c.createContextBlock({ title: "one" });
    await until(() => types(conn.clientFrames).includes("resync"), "the resync sent");
    stop();
    await sameAsServer(c, token, "after the resync");
    await c.createContextBlock({ title: "two" });
    await sameAsServer(c, token, "patched again");
    const got = libraryFrames(conn);
    const answer = got.findIndex((f, i) => i > 0 && f.type === "snapshot");
    expect(answer).toBeGreaterThan(0);
    expect(got.slice(answer + 1).some((f) => f.type === "patch")).toBe(true);
    expect(types(conn.clientFrames).filter((t) => t === "resync")).toHaveLength(1);
  });

  for (const large of [false, true]) {
    it(`a resync lost with its connection: the next one resumes from the library shown (${large ? "large: shown, so it asks again" : "small: never shown, a patch from there"})`, async () => {
      logsOnFailure(() => server);
      const token = await server.token(user("resyncagain"));
      const c = client({ url: proxy.url, getToken: () => token, ...(large ? { verify: { syncMaxBytes: 0, idleMs: 20, maxWaitMs: 200 } } : {}) });
      await live(c);
      const block = await c.createContextBlock({ title: "original" });
      const before = c.getState().version!;
      const first = proxy.last()!;
      let tampered = false;
      let cut = false;
      const stop = proxy.onFrame((on, dir, text) => {
        if (on !== first) return;
        const f = parse(text) as Frame & { context_blocks?: { upsert: Array<{ title: string }> } };
        if (dir === "server" && !tampered && f.type === "patch") {
          const row = f.context_blocks?.upsert.find((b) => b.title === "renamed");
          if (!row) return;
          row.title = "tampered";
          tampered = true;
          on.inject(JSON.stringify(f));
          return "drop";
        }
        if (dir === "client" && f.type === "resync" && !cut) {
          // The resync never reaches the server: the connection drops with it.
          cut = true;
          on.cut();
          return "drop";
        }
      });
      const states = recordStates(c);
      await c.updateContextBlock(block.id, { title: "renamed" });
      await until(() => cut, "the resync sent, and lost");
      stop();
      const s = await sameAsServer(c, token, "on the next connection");
      states.stop();
      expect(s.contextBlocks.map((b) => b.title)).toEqual(["renamed"]);
      expect(states.states.some((x) => x.contextBlocks.some((b) => b.title === "tampered"))).toBe(large);
      const next = proxy.connections.filter((x) => x.responseStatus === 101).at(-1)!;
      expect(next).not.toBe(first);
      if (large) {
        // It showed the tampered library at the new version: it resumes from there and asks again.
        expect(next.url?.searchParams.get("since_version")).toBe(String(s.version));
        expect(types(next.clientFrames)).toContain("resync");
        expect(libraryFrames(next).some((f) => f.type === "snapshot" && f.version === s.version)).toBe(true);
      } else {
        // It still showed the library before: right at its version, so the resume brings a patch.
        expect(next.url?.searchParams.get("since_version")).toBe(String(before));
        expect(types(next.clientFrames)).not.toContain("resync");
        expect(libraryFrames(next)[0]).toMatchObject({ type: "patch", from_version: before });
      }
    });
  }

  it("when even the snapshot answering a resync does not match, the client warns, takes it, and goes on without patches", async () => {
    logsOnFailure(() => server);
    const token = await server.token(user("distrust"));
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      // Every digest on the first connection is wrong, as if this client's canonical form were not the server's.
      const n = proxy.connections.length;
      const stop = proxy.onFrame((on, dir, text) => {
        if (on !== proxy.connections[n] || dir !== "server") return;
        const f = parse(text);
        if (f.type !== "snapshot" && f.type !== "patch") return;
        f.digest = `sha256:${"1".repeat(64)}`;
        on.inject(JSON.stringify(f));
        return "drop";
      });
      const c = client({ url: proxy.url, getToken: () => token });
      const sockets = () => proxy.connections.slice(n).filter((x) => x.responseStatus === 101);
      await until(() => sockets().length >= 2, "a new connection");
      stop();
      const first = proxy.connections[n]!;
      expect(first.url?.searchParams.get("patches")).toBe("1");
      expect(types(first.clientFrames)).toContain("resync");
      const second = sockets().at(-1)!;
      expect(second.url?.searchParams.get("patches")).toBeNull();
      await c.createContextBlock({ title: "after" });
      await sameAsServer(c, token, "without patches");
      expect(libraryFrames(second).every((f) => f.type === "snapshot")).toBe(true);
      expect(warn.mock.calls.filter(([m]) => String(m).includes("patch frames are turned off"))).toHaveLength(1);
    } finally {
      warn.mockRestore();
    }
  });

  it("a patch that cannot apply (another from_version, a delete of a row not held) asks for the whole library", async () => {
    logsOnFailure(() => server);
    const token = await server.token(user("cannot"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    await c.createContextBlock({ title: "one" });
    const conn = proxy.last()!;
    const v = c.getState().version!;
    const resyncs = () => types(conn.clientFrames).filter((t) => t === "resync").length;
    const snapshots = () => libraryFrames(conn).filter((f) => f.type === "snapshot").length;

    // From a version the client does not hold.
    const before = snapshots();
    conn.inject(JSON.stringify({ type: "patch", from_version: v - 1, version: v + 1, digest: "sha256:x" }));
    await until(() => resyncs() === 1 && snapshots() === before + 1, "resync, and the snapshot answering it");
    await sameAsServer(c, token, "after the first resync");

    // A delete of a row it does not hold, after a write (the server answers one resync per version).
    await c.createContextBlock({ title: "two" });
    const w = c.getState().version!;
    const states = recordStates(c);
    conn.inject(
      JSON.stringify({
        type: "patch",
        from_version: w,
        version: w + 1,
        digest: "sha256:x",
        projects: { upsert: [], delete: ["01a24260-349c-7134-8277-593fba9ee52b"] },
      }),
    );
    await until(() => resyncs() === 2 && snapshots() === before + 2, "resync, and the snapshot answering it");
    const s = await sameAsServer(c, token, "after the second resync");
    states.stop();
    expect(s.version).toBe(w);
    expect(states.states.every((x) => x.version === w)).toBe(true);
  });

  it("a large library (checked after it is shown) with a changed patch: resync, then the server's library", async () => {
    logsOnFailure(() => server);
    const name = user("large");
    const token = await server.token(name);
    // Every library counts as large here: shown at once, checked when idle.
    const indexedDB = new IDBFactory();
    const c = client({ url: proxy.url, getToken: () => token, cache: "indexeddb", indexedDB, verify: { syncMaxBytes: 0, idleMs: 20, maxWaitMs: 200 } });
    const cachedVersion = async () => (await new SnapshotCache(indexedDB, cacheKey(proxy.url, name, undefined)).read())?.snapshot.version;
    await live(c);
    const block = await c.createContextBlock({ title: "original" });
    const conn = proxy.last()!;
    let tampered = 0;
    const stop = proxy.onFrame((on, dir, text) => {
      if (on !== conn || dir !== "server" || tampered > 0) return;
      const f = parse(text) as Frame & { context_blocks?: { upsert: Array<{ title: string }> } };
      const row = f.type === "patch" ? f.context_blocks?.upsert.find((b) => b.title === "renamed") : undefined;
      if (!row) return;
      row.title = "tampered";
      tampered += 1;
      conn.inject(JSON.stringify(f));
      return "drop";
    });
    const states = recordStates(c);
    await c.updateContextBlock(block.id, { title: "renamed" });
    stop();
    await until(() => types(conn.clientFrames).includes("resync"), "the late check fails: resync");
    const s = await sameAsServer(c, token, "after the late check and its resync");
    states.stop();
    expect(s.contextBlocks.map((b) => b.title)).toEqual(["renamed"]);
    expect(types(conn.clientFrames)).toContain("resync");
    // The policy for large libraries: shown before the check, `syncing` once it failed.
    const shown = states.states.findIndex((x) => x.contextBlocks.some((b) => b.title === "tampered"));
    expect(shown).toBeGreaterThanOrEqual(0);
    expect(states.states.slice(shown).some((x) => x.status.state === "syncing")).toBe(true);
    // Unaltered patches are checked late too, and pass: the library is cached only then.
    await c.createContextBlock({ title: "more" });
    const more = await sameAsServer(c, token, "patched again");
    await until(async () => (await cachedVersion()) === more.version, "the checked library cached");
    expect(types(conn.clientFrames).filter((t) => t === "resync")).toHaveLength(1);
  });

  it("tabs: the follower ends with the leader's library; a follower that takes over resumes with a patch", async () => {
    logsOnFailure(() => server);
    const token = await server.token(user("tabpatch"));
    const locks = new MemoryLocks();
    const a = client({ url: proxy.url, getToken: () => token, shareAcrossTabs: true, locks });
    await live(a, "a live");
    const b = client({ url: proxy.url, getToken: () => token, shareAcrossTabs: true, locks });
    await live(b, "b live (relayed)");
    const project = await b.createProject({ name: "from b" });
    await a.createContextBlock({ title: "from a", project_id: project.id });
    await httpCreate(token, "saved-prompts", { title: "from elsewhere" });
    await a.deleteProject(project.id);
    const sa = await sameAsServer(a, token, "a");
    const sb = await sameAsServer(b, token, "b");
    expect(canonicalJson(held(sb))).toBe(canonicalJson(held(sa)));
    // The leader was on patches.
    const leaderConn = proxy.last()!;
    expect(libraryFrames(leaderConn).some((f) => f.type === "patch")).toBe(true);
    expect(types(leaderConn.clientFrames)).not.toContain("resync");

    // The leader goes while the server is out of reach; writes happen; the follower takes over
    // and resumes from what it was relayed.
    const version = sb.version!;
    proxy.refuse(true);
    await within(a.close(), "the leader closes");
    await httpCreate(token, "projects", { name: "while no tab led" });
    proxy.refuse(false);
    await sameAsServer(b, token, "b, leading now");
    const resumed = proxy.connections.filter((x) => x.responseStatus === 101).at(-1)!;
    expect(resumed).not.toBe(leaderConn);
    expect(resumed.url?.searchParams.get("since_version")).toBe(String(version));
    expect(libraryFrames(resumed)[0]).toMatchObject({ type: "patch", from_version: version });
    expect(types(resumed.clientFrames)).not.toContain("resync");
  });

  it("tabs and the cache: a follower shown the leader's cached copy is unmarked once the server confirms it", async () => {
    logsOnFailure(() => server);
    const indexedDB = new IDBFactory();
    const token = await server.token(user("tabcache"));
    const first = client({ url: proxy.url, getToken: () => token, cache: "indexeddb", indexedDB });
    await live(first);
    await first.createContextBlock({ title: "cached" });
    const version = first.getState().version!;
    await within(first.close(), "the first client closes (with its cache write)");

    // The server is out of reach while the tabs start: both show the cached copy.
    proxy.refuse(true);
    const locks = new MemoryLocks();
    const a = client({ url: proxy.url, getToken: () => token, cache: "indexeddb", indexedDB, shareAcrossTabs: true, locks });
    await waitForState(a, (s) => s.version === version && s.status.cached, "a shows the cached copy");
    const b = client({ url: proxy.url, getToken: () => token, cache: "indexeddb", indexedDB, shareAcrossTabs: true, locks });
    await waitForState(b, (s) => s.version === version && s.status.cached, "b shows the cached copy");
    proxy.refuse(false);
    // Nothing newer on the server: the leader's resume is `live` at the cached version, and both are unmarked.
    const [sa, sb] = await Promise.all([
      waitForState(a, (s) => s.status.state === "live" && !s.status.cached, "a confirmed"),
      waitForState(b, (s) => s.status.state === "live" && !s.status.cached, "b confirmed"),
    ]);
    expect(sa.version).toBe(version);
    expect(sb.version).toBe(version);
    expect(sb.contextBlocks).toEqual(sa.contextBlocks);
  });
});
