/**
 * Shared libraries (DESIGN §9) against the real server: the REST side (libraries, members),
 * two users on one library through the same socket as their own, roles, revocation (terminal,
 * nothing after it), presence and delivery receipts (`seen`, `deliveredTo`).
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { LibrariesApi, LibraryError, LibraryList, countDelivered, type LibraryClient, type LibraryInfo } from "../src/index.js";
import {
  client,
  logsOnFailure,
  startProxy,
  startServer,
  until,
  user,
  waitForState,
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

interface Person {
  name: string;
  token: string;
  api: LibrariesApi;
}

async function person(label: string): Promise<Person> {
  const name = user(label);
  const token = await server.token(name);
  return { name, token, api: new LibrariesApi({ url: server.url, getToken: () => token }) };
}

async function rejection(promise: Promise<unknown>): Promise<LibraryError> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(LibraryError);
    return e as LibraryError;
  }
  throw new Error("expected a rejection");
}

/** A live client of `who` on `library`, through the proxy (so its frames can be read), counting its sockets. */
async function open(who: Person, library: string): Promise<{ client: LibraryClient; sockets: () => number; conn: () => ProxyConnection }> {
  let sockets = 0;
  const mine: ProxyConnection[] = [];
  const before = new Set(proxy.connections);
  class Counting extends WebSocket {
    constructor(url: string) {
      super(url);
      sockets += 1;
    }
  }
  const c = client({ url: proxy.url, getToken: () => who.token, library, WebSocket: Counting });
  await waitForState(c, (s) => s.status.state === "live", `${who.name} live on the library`);
  for (const conn of proxy.connections) if (!before.has(conn) && conn.url?.pathname === "/api/v1/ws") mine.push(conn);
  return { client: c, sockets: () => sockets, conn: () => mine[mine.length - 1]! };
}

const frames = (texts: string[]) => texts.map((t) => JSON.parse(t) as { type: string; [k: string]: unknown });

describe("shared libraries", () => {
  it("the REST side: list, create, rename, members; errors are problem documents", async () => {
    logsOnFailure(() => server);
    const alice = await person("alice");
    const bob = await person("bob");
    const own = await alice.api.list();
    expect(own).toHaveLength(1);
    expect(own[0]).toMatchObject({ owner_id: alice.name, role: "owner" });

    const team = await alice.api.create("Team prompts");
    expect(team).toMatchObject({ name: "Team prompts", owner_id: alice.name, role: "owner" });
    const renamed = await alice.api.rename(team.id, "Team");
    expect(renamed).toMatchObject({ id: team.id, name: "Team" });
    // Their own library first, then the others by name.
    expect((await alice.api.list()).map((l) => l.id)).toEqual([own[0]!.id, team.id]);

    // Bob is no member: the library does not exist for him.
    const hidden = await rejection(bob.api.members(team.id));
    expect(hidden.status).toBe(404);
    expect(hidden.code).toBe("library_not_found");

    const added = await alice.api.setMember(team.id, bob.name, "viewer");
    expect(added).toMatchObject({ created: true, member: { user_id: bob.name, role: "viewer" } });
    expect(added.libraryVersion).toBeGreaterThan(team.version);
    const changed = await alice.api.setMember(team.id, bob.name, "editor");
    expect(changed).toMatchObject({ created: false, member: { role: "editor" } });
    expect(changed.libraryVersion).toBeGreaterThan(added.libraryVersion);
    const members = await bob.api.members(team.id);
    expect(members.map((m) => [m.user_id, m.role]).sort()).toEqual(
      [
        [alice.name, "owner"],
        [bob.name, "editor"],
      ].sort(),
    );
    const listed = (await bob.api.list()).find((l) => l.id === team.id);
    expect(listed).toMatchObject({ name: "Team", owner_id: alice.name, role: "editor" } satisfies Partial<LibraryInfo>);

    // Only the owner manages members, and the owner stays the owner.
    expect((await rejection(bob.api.setMember(team.id, "carol", "viewer"))).status).toBe(403);
    const demote = await rejection(alice.api.setMember(team.id, alice.name, "viewer"));
    expect(demote.status).toBe(409);
    expect(demote.code).toBe("conflict");
    expect((await rejection(alice.api.delete(own[0]!.id))).status).toBe(409);

    // Bob leaves; then it is gone for him.
    await bob.api.removeMember(team.id, bob.name);
    expect((await bob.api.list()).some((l) => l.id === team.id)).toBe(false);
    const removed = await alice.api.delete(team.id);
    expect(removed.libraryVersion).toBeGreaterThan(changed.libraryVersion);
    expect((await rejection(alice.api.members(team.id))).status).toBe(404);
  });

  it("LibraryList: fetched while subscribed, shows a library shared meanwhile, and what it created at once", async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const list = new LibraryList({ url: server.url, getToken: () => bob.token }, { pollIntervalMs: 200 });
    const initial = list.getState();
    expect(initial).toEqual({ libraries: [], isLoading: true, error: null });
    const stop = list.subscribe(() => {});
    try {
      const first = await waitForState(list, (s) => !s.isLoading, "bob's list");
      expect(first.libraries.map((l) => l.role)).toEqual(["owner"]);
      const mine = await list.create("Bob's second");
      expect(list.getState().libraries.map((l) => l.id)).toContain(mine.id);

      const team = await alice.api.create("Alice's team");
      await alice.api.setMember(team.id, bob.name, "viewer");
      const shared = await waitForState(list, (s) => s.libraries.some((l) => l.id === team.id), "the shared library appears");
      expect(shared.libraries.find((l) => l.id === team.id)).toMatchObject({ role: "viewer", owner_id: alice.name });
      // A poll with nothing new keeps the state as it was.
      const held = list.getState();
      await list.refresh();
      expect(list.getState()).toBe(held);

      await alice.api.removeMember(team.id, bob.name);
      await waitForState(list, (s) => !s.libraries.some((l) => l.id === team.id), "and disappears");
      await list.delete(mine.id);
      expect(list.getState().libraries.map((l) => l.id)).not.toContain(mine.id);
    } finally {
      stop();
      list.close();
    }
  });

  it("owner adds an editor: the editor sees the library, writes through their socket, the owner sees it", async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const team = await alice.api.create("Team");
    const a = await open(alice, team.id);
    expect(a.client.getState()).toMatchObject({ libraryId: team.id, role: "owner", members: [{ user_id: alice.name, role: "owner" }] });

    // setMember resolves once the owner's own state lists the new member.
    await a.client.setMember(bob.name, "editor");
    expect(a.client.getState().members).toContainEqual({ user_id: bob.name, role: "editor" });
    expect(a.client.getState().lastWriteVersion).toBe(a.client.getState().version);

    expect((await bob.api.list()).map((l) => l.id)).toContain(team.id);
    const b = await open(bob, team.id);
    expect(b.client.getState()).toMatchObject({ libraryId: team.id, role: "editor" });
    expect(b.client.getState().members.map((m) => m.user_id)).toEqual([alice.name, bob.name].sort());

    const block = await b.client.createContextBlock({ title: "From Bob", content: "shared" });
    await waitForState(a.client, (s) => s.contextBlocks.some((x) => x.id === block.id), "alice sees bob's block");
    const project = await a.client.createProject({ name: "From Alice" });
    await waitForState(b.client, (s) => s.projects.some((p) => p.id === project.id), "bob sees alice's project");
    // The shared library is not bob's own: his own library has none of it.
    expect((await server.library(bob.token)).context_blocks).toEqual([]);
  });

  it("a viewer's write is rejected with 403; a role change arrives as access, live", async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const team = await alice.api.create("Read only");
    await alice.api.setMember(team.id, bob.name, "viewer");
    const b = await open(bob, team.id);
    expect(b.client.getState().role).toBe("viewer");
    const before = b.client.getState();

    const refused = await rejection(b.client.createContextBlock({ title: "nope" }));
    expect(refused.status).toBe(403);
    expect(refused.code).toBe("forbidden");
    // Nothing was written or shown (presence may change meanwhile: it is not the library).
    expect(b.client.getState().version).toBe(before.version);
    expect(b.client.getState().contextBlocks).toBe(before.contextBlocks);
    const library = await alice.api.list();
    expect(library.find((l) => l.id === team.id)?.version).toBe(before.version);

    // Promoted while connected: the role changes in the state, then the write goes through.
    await alice.api.setMember(team.id, bob.name, "editor");
    await waitForState(b.client, (s) => s.role === "editor", "bob's role becomes editor");
    expect(frames(b.conn().serverFrames).some((f) => f.type === "access" && f.role === "editor")).toBe(true);
    await b.client.createContextBlock({ title: "now yes" });
    // And demoted again.
    await alice.api.setMember(team.id, bob.name, "viewer");
    await waitForState(b.client, (s) => s.role === "viewer", "bob's role becomes viewer");
    expect((await rejection(b.client.createProject({ name: "nope again" }))).status).toBe(403);
  });

  it("removal: the removed client ends as access_revoked, gets nothing after it, rejects its unanswered writes and does not reconnect", async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const team = await alice.api.create("Revocable");
    await alice.api.setMember(team.id, bob.name, "editor");
    const a = await open(alice, team.id);
    const b = await open(bob, team.id);
    const conn = b.conn();
    // Bob's next write never reaches the server (the proxy swallows it): it is unanswered when he is removed.
    const stop = proxy.onFrame((c, from, text) => {
      if (c === conn && from === "client" && (JSON.parse(text) as { type: string }).type === "mutate") return "drop";
    });
    const pending = rejection(b.client.createContextBlock({ title: "in flight" }));
    await until(() => frames(conn.clientFrames).some((f) => f.type === "mutate"), "bob's write left his client");

    await a.client.removeMember(bob.name);
    expect(a.client.getState().members.map((m) => m.user_id)).toEqual([alice.name]);
    const revoked = await waitForState(b.client, (s) => s.status.state === "error", "bob revoked");
    stop();
    expect(revoked.status).toMatchObject({ state: "error", code: "access_revoked", retryAt: null });
    expect(revoked.error).toBeInstanceOf(LibraryError);
    expect(revoked.error?.code).toBe("access_revoked");
    expect(revoked.role).toBeNull();
    expect(revoked.presence).toEqual([]);
    const e = await pending;
    expect(e.code).toBe("access_revoked");
    expect(e.status).toBe(403);

    // The server said why, closed with 4403, and sent no snapshot after the error.
    await until(() => !conn.open, "bob's connection closed");
    const sent = frames(conn.serverFrames);
    const at = sent.findIndex((f) => f.type === "error");
    expect(sent[at]).toMatchObject({ type: "error", code: "access_revoked" });
    expect(sent.slice(at + 1).filter((f) => f.type === "snapshot")).toEqual([]);
    expect(conn.closes).toContainEqual({ from: "server", code: 4403 });
    const removalVersion = a.client.getState().version!;
    expect(sent.filter((f) => f.type === "snapshot").every((f) => (f.version as number) < removalVersion)).toBe(true);

    // Terminal: alice writes more (bob would get it if he were back), bob stays as he is.
    await a.client.createContextBlock({ title: "after bob" });
    await until(async () => (await server.sessionsOpen()) >= 1, "the server counts alice");
    expect(b.sockets()).toBe(1);
    expect(b.client.getState().status).toMatchObject({ state: "error", code: "access_revoked" });
    expect(b.client.getState().contextBlocks.some((x) => x.title === "after bob")).toBe(false);
    // And later writes are refused at once.
    expect((await rejection(b.client.createProject({ name: "too late" }))).code).toBe("access_revoked");
  });

  it("a library the user is no member of is library_not_found (terminal), not an endless retry", async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const team = await alice.api.create("Private");
    const c = client({ url: server.url, getToken: () => bob.token, library: team.id });
    const s = await waitForState(c, (x) => x.status.state === "error" && x.status.retryAt === null, "bob stopped");
    expect(s.status).toMatchObject({ state: "error", code: "library_not_found" });
    expect(s.error?.status).toBe(404);
    expect(s.isLoading).toBe(true);
  });

  it("presence lists both sessions; seen is sent; deliveredTo reaches the total after a save", async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const team = await alice.api.create("Presence");
    await alice.api.setMember(team.id, bob.name, "editor");
    const a = await open(alice, team.id);
    const b = await open(bob, team.id);

    const both = await waitForState(a.client, (s) => s.presence.length === 2, "alice sees two sessions");
    expect(both.presence.map((p) => p.user_id).sort()).toEqual([alice.name, bob.name].sort());
    for (const p of both.presence) expect(Date.parse(p.connected_at)).not.toBeNaN();
    await waitForState(b.client, (s) => s.presence.length === 2, "bob sees two sessions");

    const block = await a.client.createContextBlock({ title: "Receipt" });
    const v = a.client.getState().lastWriteVersion!;
    expect(v).toBeGreaterThan(0);
    expect(a.client.getState().contextBlocks.some((x) => x.id === block.id)).toBe(true);
    // Both sessions applied it and said so.
    const delivered = await waitForState(a.client, () => a.client.deliveredTo(v).held === 2, "on 2 of 2");
    expect(a.client.deliveredTo(v)).toEqual({ held: 2, total: 2 });
    expect(countDelivered(delivered.presence, v)).toEqual({ held: 2, total: 2 });
    expect(countDelivered(delivered.presence, v + 1)).toEqual({ held: 0, total: 2 });
    for (const who of [a, b]) {
      expect(frames(who.conn().clientFrames)).toContainEqual({ type: "seen", version: v });
    }
    // Each seen follows a snapshot (or a patch) of that version, never above what was sent.
    const snapshots = new Set(
      frames(b.conn().serverFrames)
        .filter((f) => f.type === "snapshot" || f.type === "patch")
        .map((f) => f.version),
    );
    for (const f of frames(b.conn().clientFrames).filter((f) => f.type === "seen")) expect(snapshots.has(f.version)).toBe(true);

    // Bob leaves: alice's presence drops to one.
    await b.client.close();
    await waitForState(a.client, (s) => s.presence.length === 1, "alice alone again");
    expect(a.client.deliveredTo(v)).toEqual({ held: 1, total: 1 });
  });

  it("a resume with nothing new says seen for the version held", async () => {
    const alice = await person("alice");
    const team = await alice.api.create("Resume");
    const a = await open(alice, team.id);
    const held = a.client.getState().version!;
    const first = a.conn();
    first.cut();
    await waitForState(a.client, (s) => s.status.state !== "live", "alice noticed");
    await waitForState(a.client, (s) => s.status.state === "live", "alice live again");
    const resumed = proxy.connections.filter((c) => c.url?.searchParams.get("library") === team.id).pop()!;
    expect(resumed).not.toBe(first);
    expect(resumed.url?.searchParams.get("since_version")).toBe(String(held));
    await until(() => frames(resumed.clientFrames).some((f) => f.type === "seen"), "a seen on the resumed connection");
    expect(frames(resumed.serverFrames).filter((f) => f.type === "snapshot")).toEqual([]);
    expect(frames(resumed.clientFrames).filter((f) => f.type === "seen")).toEqual([{ type: "seen", version: held }]);
  });
});

describe("shared libraries across tabs", () => {
  it("the follower tab gets the role and presence from the leader, and ends revoked with it", async () => {
    const { MemoryLocks } = await import("./locks.js");
    const alice = await person("alice");
    const bob = await person("bob");
    const team = await alice.api.create("Tabs");
    await alice.api.setMember(team.id, bob.name, "editor");
    const locks = new MemoryLocks();
    let sockets = 0;
    class Counting extends WebSocket {
      constructor(url: string) {
        super(url);
        sockets += 1;
      }
    }
    const tabs = [0, 1].map(() =>
      client({ url: server.url, getToken: () => bob.token, library: team.id, shareAcrossTabs: true, locks, WebSocket: Counting }),
    );
    for (const t of tabs) await waitForState(t, (s) => s.status.state === "live" && s.role === "editor" && s.presence.length === 1, "a tab live with its role and presence");
    expect(tabs[0]!.getState().presence).toEqual(tabs[1]!.getState().presence);
    expect(tabs[1]!.getState().libraryId).toBe(team.id);

    await alice.api.removeMember(team.id, bob.name);
    for (const t of tabs) {
      const s = await waitForState(t, (x) => x.status.state === "error", "a tab revoked");
      expect(s.status).toMatchObject({ code: "access_revoked", retryAt: null });
      expect(s.role).toBeNull();
    }
    expect(sockets).toBe(1);

    // The leader tab closes: the other one takes the lock, and does not connect to the library again.
    const lock = `librarian:${JSON.stringify([server.url, bob.name, team.id])}`;
    const leader = tabs.find((t) => (t as unknown as { session: unknown }).session !== null)!;
    const other = tabs.find((t) => t !== leader)!;
    await leader.close();
    await until(() => locks.isHeld(lock), "the other tab took the lock");
    await new Promise((r) => setTimeout(r, 0));
    expect(sockets).toBe(1);
    expect(other.getState().status).toMatchObject({ state: "error", code: "access_revoked" });
    expect((await rejection(other.createProject({ name: "no" }))).code).toBe("access_revoked");
  });
});
