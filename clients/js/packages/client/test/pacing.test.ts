/**
 * Pacing (DESIGN §13): never more mutations unanswered on a session than its `hello` allows;
 * the rest wait in order and all go through. Also after a reconnect: the resends are paced
 * the same way. Receipts (`seen`) of new versions spend nothing from the frame rate.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  client,
  live,
  logsOnFailure,
  startProxy,
  startServer,
  user,
  until,
  waitForState,
  type LibrarianServer,
  type Proxy,
  type ProxyConnection,
} from "./support.js";

let server: LibrarianServer;
let proxy: Proxy;
beforeAll(async () => {
  server = await startServer({ env: { LIBRARIAN__WS__MAX_INFLIGHT_MUTATIONS: "2" } });
  proxy = await startProxy(server.port);
});
afterAll(async () => {
  await proxy?.close();
  await server?.stop();
});

/** Watches the unanswered mutations per connection, as they pass the proxy. */
function watchInflight(): { max: () => number; rejects: string[]; stop: () => void } {
  const open = new Map<ProxyConnection, Set<string>>();
  const rejects: string[] = [];
  let max = 0;
  const stop = proxy.onFrame((conn, from, text) => {
    const frame = JSON.parse(text) as { type: string; mutation_id?: string; error?: { code: string } };
    const set = open.get(conn) ?? new Set<string>();
    open.set(conn, set);
    if (from === "client" && frame.type === "mutate") set.add(frame.mutation_id!);
    if (from === "server" && (frame.type === "ack" || frame.type === "reject")) set.delete(frame.mutation_id!);
    if (frame.type === "reject") rejects.push(frame.error!.code);
    max = Math.max(max, set.size);
  });
  return { max: () => max, rejects, stop };
}

describe("pacing", () => {
  it("more mutations than max_inflight_mutations: at most that many unanswered, all resolve", async () => {
    logsOnFailure(() => server);
    const token = await server.token(user("pacing"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    expect(JSON.parse(proxy.last()!.serverFrames[0]!)).toMatchObject({ type: "hello", max_inflight_mutations: 2 });
    const watch = watchInflight();
    const n = 30;
    const created = await Promise.all(Array.from({ length: n }, (_, i) => c.createContextBlock({ title: `P${i}` })));
    watch.stop();
    expect(watch.max()).toBe(2);
    expect(watch.rejects).toEqual([]);
    const library = await server.library(token);
    expect(library.version).toBe(n);
    expect(library.context_blocks.map((b) => b.title).sort()).toEqual(created.map((b) => b.title).sort());
  });

  it("the unanswered resent after a cut are paced the same way", async () => {
    const token = await server.token(user("pacing-resend"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    const first = proxy.last()!;
    const watch = watchInflight();
    let acks = 0;
    const cutter = proxy.onFrame((conn, from, text) => {
      if (conn === first && from === "server" && JSON.parse(text).type === "ack" && ++acks === 4) {
        conn.cut();
        return "drop";
      }
    });
    const n = 20;
    await Promise.all(Array.from({ length: n }, (_, i) => c.createProject({ name: `R${i}` })));
    watch.stop();
    cutter();
    expect(proxy.last()).not.toBe(first);
    expect(watch.max()).toBe(2);
    expect(watch.rejects).toEqual([]);
    const library = await server.library(token);
    expect(library.version).toBe(n);
    expect(library.projects).toHaveLength(n);
  });
});

describe("receipts and the frame rate", () => {
  let slow: LibrarianServer;
  let slowProxy: Proxy;
  beforeAll(async () => {
    slow = await startServer({ env: { LIBRARIAN__WS__MAX_FRAMES_PER_SECOND: "10" } });
    slowProxy = await startProxy(slow.port);
  });
  afterAll(async () => {
    await slowProxy?.close();
    await slow?.stop();
  });

  it("a library changing faster than the frame rate: every version acknowledged, no close, writes still go", async () => {
    logsOnFailure(() => slow);
    const token = await slow.token(user("receipts"));
    const c = client({ url: slowProxy.url, getToken: () => token });
    await live(c);
    const conn = slowProxy.last()!;
    expect(JSON.parse(conn.serverFrames[0]!)).toMatchObject({ type: "hello", max_frames_per_second: 10 });
    // Another tab writes over HTTP, each version shown here before the next: far more versions
    // in a second than the client's budget (8 frames, 8 more per second).
    const writes = 60;
    for (let i = 0; i < writes; i++) {
      const answer = await slow.request("POST", "/api/v1/context-blocks", {
        token,
        body: { title: `Busy ${i}` },
      });
      expect(answer.status).toBe(201);
      const v = Number(answer.headers.get("library-version"));
      expect(v).toBeGreaterThan(0);
      await waitForState(c, (s) => (s.version ?? 0) >= v, `v${v} shown`);
    }
    const frames = (texts: string[]) => texts.map((t) => JSON.parse(t) as { type: string; version?: number });
    const delivered = frames(conn.serverFrames)
      .filter((f) => f.type === "snapshot" || f.type === "patch")
      .map((f) => f.version!);
    expect(delivered.length).toBeGreaterThan(writes);
    // Each delivered version is acknowledged (with a budget spent per receipt, most would be
    // replaced by a newer one while waiting for it to refill, never sent).
    const unacknowledged = () => {
      const seen = new Set(frames(conn.clientFrames).filter((f) => f.type === "seen").map((f) => f.version));
      return delivered.filter((v) => !seen.has(v));
    };
    await until(() => unacknowledged().length === 0, "every delivered version acknowledged", 5_000).catch(() => undefined);
    expect(unacknowledged()).toEqual([]);
    // The session was not closed for flooding, and this client's own writes still go.
    await c.createContextBlock({ title: "Mine" });
    expect(slowProxy.last()).toBe(conn);
    await c.close();
  });
});
