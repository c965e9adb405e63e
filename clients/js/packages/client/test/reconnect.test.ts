/**
 * Connections that break: unacknowledged mutations are resent with their mutation_id and
 * applied once; a reconnect resumes with since_version and never steps back (G9) unless the
 * server says reset; a server that dies shows as an error with its retry, then live again.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ContextBlock, LibrarySnapshot } from "../src/index.js";
import { client, live, logsOnFailure, recordStates, startProxy, startServer, user, waitForState, type LibrarianServer, type Proxy } from "./support.js";

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

const frameType = (text: string): string => (JSON.parse(text) as { type: string }).type;
/** The `mutate` frames among a connection's client frames (receipts, `seen`, go too). */
const mutateFrames = (texts: string[]) =>
  texts.map((t) => JSON.parse(t) as { type: string; mutation_id: string }).filter((f) => f.type === "mutate");

describe("reconnecting", () => {
  it("mutations in flight when the connection is cut are resent with their ids and applied exactly once", async () => {
    logsOnFailure(() => server);
    const token = await server.token(user("resend"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    const first = proxy.last()!;
    // Cut when the third ack comes back, swallowing it: that one committed but the client
    // never heard; others are in flight or still queued.
    let acks = 0;
    const stop = proxy.onFrame((conn, from, text) => {
      if (conn !== first || from !== "server" || frameType(text) !== "ack") return;
      acks += 1;
      if (acks === 3) {
        conn.cut();
        return "drop";
      }
    });
    const n = 20;
    const created = await Promise.all(Array.from({ length: n }, (_, i) => c.createContextBlock({ title: `B${i}` })));
    stop();
    expect(acks).toBeGreaterThanOrEqual(3);
    expect(proxy.connections.indexOf(first)).toBeLessThan(proxy.connections.length - 1);
    // Each applied once: n rows, n versions, every title once.
    const library = await server.library(token);
    expect(library.version).toBe(n);
    expect(library.context_blocks.map((b) => b.title).sort()).toEqual(created.map((b) => b.title).sort());
    expect(new Set(created.map((b) => b.id)).size).toBe(n);
    expect(c.getState().contextBlocks).toHaveLength(n);
    // The one whose ack was swallowed went again, with the same mutation_id.
    const sent = proxy.connections.flatMap((conn) => mutateFrames(conn.clientFrames));
    const ids = sent.map((f) => f.mutation_id);
    expect(ids.length).toBeGreaterThan(new Set(ids).size);
    expect(new Set(ids).size).toBe(n);
  });

  it("G9: a reconnect resumes with since_version = the version held; an older snapshot is ignored; a reset one replaces", async () => {
    const token = await server.token(user("g9"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    await c.createContextBlock({ title: "one" });
    await c.createContextBlock({ title: "two" });
    const held = c.getState().version!;
    expect(held).toBe(2);
    const before = proxy.last()!;
    expect(before.url?.searchParams.get("since_version")).toBeNull();
    expect(before.url?.searchParams.get("access_token")).toBe(token);

    const states = recordStates(c);
    before.cut();
    await waitForState(c, (s) => s.status.state === "error", "the loss shown");
    await waitForState(c, (s) => s.status.state === "live", "live again");
    const resumed = proxy.last()!;
    expect(resumed).not.toBe(before);
    expect(resumed.url?.searchParams.get("since_version")).toBe(String(held));
    // Nothing changed meanwhile: the server said live without a snapshot.
    expect(resumed.serverFrames.map(frameType)).not.toContain("snapshot");
    expect(c.getState().version).toBe(held);

    // A stale snapshot (as from an instance that lags) is ignored ...
    const stale: LibrarySnapshot & { type: "snapshot" } = {
      type: "snapshot",
      version: 1,
      projects: [],
      context_blocks: [],
      saved_prompts: [],
      members: [],
    };
    resumed.inject(JSON.stringify(stale));
    resumed.inject(JSON.stringify({ ...stale, version: held }));
    // ... which the next real write proves: frames are handled in order.
    const three = await c.createContextBlock({ title: "three" });
    expect(c.getState().version).toBe(held + 1);
    expect(states.states.some((s) => s.version !== null && s.version <= held - 1)).toBe(false);
    expect(states.states.every((s) => s.contextBlocks.length >= 2)).toBe(true);

    // ... unless the server says its library went back (reset: restored from a backup).
    const restored: ContextBlock = { ...three, id: "01a2180b-2f3b-75e3-ad1a-6de66853339b", title: "restored" };
    resumed.inject(JSON.stringify({ ...stale, reset: true, context_blocks: [restored] }));
    const after = await waitForState(c, (s) => s.version === 1, "the reset snapshot replaces");
    expect(after.contextBlocks).toEqual([restored]);
  });

  it("a server that dies shows as an error with its retry time, then live again after a restart; writes made meanwhile go through", async () => {
    const own = await startServer();
    logsOnFailure(() => own);
    try {
      const token = await own.token(user("restart"));
      const c = client({ url: own.url, getToken: () => token });
      await live(c);
      await c.createProject({ name: "before" });
      await own.kill();
      const down = await waitForState(c, (s) => s.status.state === "error", "the error status");
      expect(down.status).toMatchObject({ state: "error", cached: false });
      expect(down.error?.code).toMatch(/connection_lost|unreachable/);
      if (down.status.state === "error") expect(down.status.retryAt).toBeGreaterThan(0);
      expect(down.projects.map((p) => p.name)).toEqual(["before"]);
      // A write while the server is down waits for it.
      const during = c.createProject({ name: "during" });
      during.catch(() => {}); // awaited below; no unhandled rejection meanwhile if it failed
      await waitForState(c, (s) => s.status.state === "error" && s.error?.code === "unreachable", "retries that fail");
      await own.restart();
      const project = await during;
      expect(project.name).toBe("during");
      const back = await live(c, "live after the restart");
      expect(back.error).toBeNull();
      expect(back.projects.map((p) => p.name)).toEqual(["before", "during"]);
    } finally {
      await own.stop();
    }
  });

  it("a retryable reject (503, too_many_mutations) is resent after a backoff with the same id, never reported", async () => {
    const token = await server.token(user("retryable"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    const conn = proxy.last()!;
    // The first attempt never reaches the server; the client hears "not now" instead.
    let swallowed: string | null = null;
    const stop = proxy.onFrame((from, dir, text) => {
      if (dir !== "client" || swallowed || frameType(text) !== "mutate") return;
      swallowed = (JSON.parse(text) as { mutation_id: string }).mutation_id;
      from.inject(
        JSON.stringify({
          type: "reject",
          mutation_id: swallowed,
          error: { type: "urn:librarian:problem:database_unavailable", title: "Service Unavailable", status: 503, detail: "try later", code: "database_unavailable" },
        }),
      );
      return "drop";
    });
    const project = await c.createProject({ name: "eventually" });
    stop();
    expect(project.name).toBe("eventually");
    const sent = mutateFrames(conn.clientFrames).map((f) => f.mutation_id);
    expect(sent).toEqual([swallowed, swallowed]);
    expect((await server.library(token)).projects).toHaveLength(1);
  });

  it("a refused connection (proxy refusing) is retried until it is accepted", async () => {
    const token = await server.token(user("refused"));
    proxy.refuse(true);
    try {
      const c = client({ url: proxy.url, getToken: () => token });
      const s = await waitForState(c, (x) => x.status.state === "error", "unreachable");
      expect(s.error?.code).toBe("unreachable");
      expect(s.isLoading).toBe(true);
      proxy.refuse(false);
      await live(c);
    } finally {
      proxy.refuse(false);
    }
  });
});
