/**
 * Pacing (DESIGN §13): never more mutations unanswered on a session than its `hello` allows;
 * the rest wait in order and all go through. Also after a reconnect: the resends are paced
 * the same way.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, live, logsOnFailure, startProxy, startServer, user, type LibrarianServer, type Proxy, type ProxyConnection } from "./support.js";

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
