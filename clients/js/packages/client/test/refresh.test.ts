/**
 * Token refresh on the open socket (issue 14, DESIGN §11): from `hello.expires_at` the client
 * calls the provider ahead of expiry and sends `auth {token}`; `auth_ok` moves the expiry. The
 * server runs in jwt mode with leeway 0 and tokens of a few seconds, so without the refresh
 * every session would close (4401) within the test.
 */

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import type { LibraryClient } from "../src/index.js";
import { MemoryLocks } from "./locks.js";
import {
  client,
  jwtEnv,
  live,
  logsOnFailure,
  nowSeconds,
  recordStates,
  signJwt,
  startProxy,
  startServer,
  testSecret,
  until,
  user,
  waitForState,
  type LibrarianServer,
  type Proxy,
  type ProxyConnection,
} from "./support.js";

/** How long the short tokens last, in seconds (whole seconds: `exp` is). */
const LIFETIME_S = 3;

const secret = testSecret();
let server: LibrarianServer;
let proxy: Proxy;
beforeAll(async () => {
  server = await startServer({ env: jwtEnv(secret, { leewayS: 0 }) });
  proxy = await startProxy(server.port);
});
afterAll(async () => {
  await proxy?.close();
  await server?.stop();
});

/** Every token the tests minted: none may show up in what the client logs. */
const minted = new Set<string>();
const mint = (token: string) => (minted.add(token), token);
const short = (sub: string) => mint(signJwt(secret, { sub, exp: nowSeconds() + LIFETIME_S }));
const long = (sub: string) => mint(signJwt(secret, { sub, exp: nowSeconds() + 3600 }));
/** A token that names a key of a JWKS (RS256, `kid`); never checked as far as its signature here. */
function keySetToken(sub: string): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return mint(`${part({ alg: "RS256", typ: "JWT", kid: "provider-key-1" })}.${part({ sub, exp: nowSeconds() + 3600 })}.c2lnbmF0dXJl`);
}

type Frame = { type: string; token?: string; code?: string; expires_at?: string };
const frames = (texts: string[]): Frame[] => texts.map((t) => JSON.parse(t) as Frame);
const sent = (conn: ProxyConnection, type: string) => frames(conn.clientFrames).filter((f) => f.type === type);
const received = (conn: ProxyConnection, type: string) => frames(conn.serverFrames).filter((f) => f.type === type);

describe("token refresh", () => {
  // Never log a token: whatever the client writes to the console is checked after each test.
  let logged: () => string[] = () => [];
  beforeEach(() => {
    const spies = (["log", "info", "warn", "error", "debug"] as const).map((m) => vi.spyOn(console, m));
    logged = () => spies.flatMap((spy) => spy.mock.calls.flatMap((args) => args.map((a) => (a instanceof Error ? `${a.message} ${a.stack}` : String(a)))));
  });
  afterEach(() => {
    const texts = logged();
    vi.restoreAllMocks();
    for (const token of minted) for (const text of texts) expect(text.includes(token), "a token in the console").toBe(false);
  });

  it("keeps one session open past several token lifetimes, calling the provider for each refresh (a failing call is retried)", async () => {
    logsOnFailure(() => server);
    const sub = user("refresh");
    const given: string[] = [];
    let calls = 0;
    const start = proxy.connections.length;
    const c = client({
      url: proxy.url,
      getToken: () => {
        calls += 1;
        // The first refresh fails: it is retried on the same socket.
        if (calls === 2) throw new Error("provider hiccup");
        const token = short(sub);
        given.push(token);
        return token;
      },
    });
    await live(c);
    const conn = proxy.last()!;
    const hello = received(conn, "hello")[0]!;
    const firstExpiry = Date.parse(hello.expires_at!);
    expect(firstExpiry).toBeGreaterThan(Date.now() - 1000);

    // A lifetime past the first token's expiry (two since the connect), on the same socket.
    await until(() => Date.now() > firstExpiry + LIFETIME_S * 1000 && received(conn, "auth_ok").length >= 2, "refreshes past two lifetimes", 30_000);
    expect(proxy.connections.slice(start)).toEqual([conn]);
    expect(conn.open).toBe(true);
    expect(conn.closes).toEqual([]);
    expect(c.getState().status.state).toBe("live");
    expect(await server.sessionsOpen()).toBe(1);

    // Each `auth` carries a token the provider just gave (never the connect's), each one new;
    // every auth_ok moves the expiry on.
    const auths = sent(conn, "auth").map((f) => f.token!);
    expect(auths.length).toBeGreaterThanOrEqual(2);
    expect(new Set(auths).size).toBe(auths.length);
    expect(conn.url?.searchParams.get("access_token")).toBe(given[0]);
    for (const token of auths) expect(given.slice(1)).toContain(token);
    expect(calls).toBeGreaterThanOrEqual(auths.length + 2); // the connect, the failed call, one per auth
    const expiries = received(conn, "auth_ok").map((f) => Date.parse(f.expires_at!));
    expect(expiries[0]).toBeGreaterThan(firstExpiry);
    expect([...expiries].sort((a, b) => a - b)).toEqual(expiries);

    // The session still works: a write lands and shows.
    const project = await c.createProject({ name: "after the refreshes" });
    expect(c.getState().projects).toEqual([project]);
    expect((await server.library(long(sub))).projects).toEqual([project]);
    expect(proxy.last()).toBe(conn);
  });

  it("a provider that switches to another user's token: refused (invalid_token, 4401), then the client stops (unauthorized) and nothing of the first user's reaches the other's library", async () => {
    logsOnFailure(() => server);
    const alice = user("alice");
    const bob = user("bob");
    // Bob's library has something of his.
    const b = client({ url: server.url, getToken: () => long(bob) });
    await live(b);
    const bobs = await b.createProject({ name: "Bob's" });
    await b.close();

    let who = alice;
    const c = client({ url: proxy.url, getToken: () => (who === alice ? short(alice) : long(bob)) });
    await live(c);
    const alices = await c.createProject({ name: "Alice's" });
    const first = proxy.last()!;
    const states = recordStates(c);
    who = bob; // signed in as someone else; the next refresh brings his token
    const s = await waitForState(c, (x) => x.error?.code === "unauthorized", "stopped as unauthorized", 30_000);
    expect(s.status).toMatchObject({ state: "error", code: "unauthorized", retryAt: null });
    expect(sent(first, "auth")).toHaveLength(1);
    expect(received(first, "error").map((f) => f.code)).toEqual(["invalid_token"]);
    expect(first.closes).toContainEqual({ from: "server", code: 4401 });
    // Alice's state stays Alice's: Bob's rows were never shown.
    expect(states.states.every((x) => !x.projects.some((p) => p.id === bobs.id))).toBe(true);
    // A write made now waits (it is Alice's); nothing reaches Bob's library.
    const pending = c.createProject({ name: "Alice's second" });
    await new Promise((r) => setTimeout(r, 300));
    expect((await server.library(long(bob))).projects).toEqual([bobs]);
    // Alice signs in again: the client carries on, and her write lands in her library.
    who = alice;
    c.reconnect();
    const second = await pending;
    expect((await server.library(long(alice))).projects).toEqual([alices, second]);
    expect((await server.library(long(bob))).projects).toEqual([bobs]);
  });

  it("a provider that fails at every refresh is retried while the session lives; at expiry (4401) the reconnect finds it failing: `unauthorized`", async () => {
    logsOnFailure(() => server);
    const sub = user("failing-refresh");
    let calls = 0;
    let failing = false;
    const c = client({
      url: proxy.url,
      getToken: async () => {
        calls += 1;
        if (failing) throw new Error("signed out");
        return short(sub);
      },
    });
    await live(c);
    const conn = proxy.last()!;
    failing = true;
    const states = recordStates(c);
    const s = await waitForState(c, (x) => x.error?.code === "unauthorized", "unauthorized", 30_000);
    expect(s.status).toMatchObject({ state: "error", code: "unauthorized", retryAt: null });
    // The session lived until the server closed it at expiry; nothing was sent in between.
    expect(conn.closes).toContainEqual({ from: "server", code: 4401 });
    expect(sent(conn, "auth")).toEqual([]);
    const errors = states.states.filter((x) => x.status.state === "error").map((x) => x.error?.code);
    expect(errors[0]).toBe("token_expired");
    // The connect, at least two refresh attempts, the reconnect's.
    expect(calls).toBeGreaterThanOrEqual(4);
    // Nothing retries on its own now; once the provider works, reconnect() does.
    const before = calls;
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toBe(before);
    failing = false;
    c.reconnect();
    await live(c, "live after reconnect()");
  });

  it("a refreshed token the server cannot check now (auth_unavailable, 1013: its key set is unreachable) reconnects with the backoff", async () => {
    // A server whose JWKS endpoint is down (nothing listens on the proxy's refused port): an
    // HS256 token is still checked with the secret, one for a key of the key set cannot be.
    const down = await startProxy(1);
    down.refuse(true);
    const own = await startServer({ env: { ...jwtEnv(secret, { leewayS: 0 }), LIBRARIAN__AUTH__JWKS_URL: `${down.url}/jwks.json` } });
    logsOnFailure(() => own);
    const ownProxy = await startProxy(own.port);
    try {
      const sub = user("jwks-down");
      let calls = 0;
      const c = client({
        url: ownProxy.url,
        getToken: () => {
          calls += 1;
          // The first refresh brings a token of the provider's key set (RS256, `kid`).
          return calls === 2 ? keySetToken(sub) : calls === 1 ? short(sub) : long(sub);
        },
      });
      await live(c);
      const first = ownProxy.last()!;
      const states = recordStates(c);
      const down1 = await waitForState(c, (x) => x.status.state === "error", "the session closed", 30_000);
      expect(down1.status).toMatchObject({ state: "error", code: "auth_unavailable" });
      if (down1.status.state === "error") expect(down1.status.retryAt).toBeGreaterThan(0);
      await live(c, "live again");
      expect(received(first, "error").map((f) => f.code)).toEqual(["auth_unavailable"]);
      expect(first.closes).toContainEqual({ from: "server", code: 1013 });
      expect(states.states.some((x) => x.error?.code === "unauthorized")).toBe(false);
      expect(ownProxy.last()).not.toBe(first);
      expect(calls).toBeGreaterThanOrEqual(3);
    } finally {
      await ownProxy.close();
      await own.stop();
      await down.close();
    }
  });

  it("a client clock far ahead of the server's (every token looks expired) refreshes with the backoff, not in a loop", async () => {
    logsOnFailure(() => server);
    const sub = user("clock-ahead");
    const realNow = Date.now.bind(Date);
    const real = () => Math.floor(realNow() / 1000);
    // Tokens good for a minute, each one distinct (a provider minting a new one per call).
    let n = 0;
    const fresh = () => mint(signJwt(secret, { sub, exp: real() + 60, jti: String(++n) }));
    const start = proxy.connections.length;
    vi.spyOn(Date, "now").mockImplementation(() => realNow() + 2 * 3600_000);
    const c = client({ url: proxy.url, getToken: fresh });
    await live(c);
    const conn = proxy.last()!;
    await until(() => received(conn, "auth_ok").length >= 2, "two refreshes");
    const from = realNow();
    await new Promise((r) => setTimeout(r, 3000));
    // The backoff (100 ms doubling, jittered) allows at most 7 in these 3.5 s or so; refreshing
    // whenever a token's expiry moves would send several a second.
    const auths = sent(conn, "auth").length;
    expect(auths).toBeLessThan(10);
    expect(realNow() - from).toBeGreaterThanOrEqual(3000);
    expect(proxy.connections.slice(start)).toEqual([conn]);
    expect(conn.open).toBe(true);
    expect(c.getState().status.state).toBe("live");
  });

  it("with shareAcrossTabs only the leader refreshes, with its own provider; the follower stays live through it", async () => {
    logsOnFailure(() => server);
    const sub = user("tabs-refresh");
    const locks = new MemoryLocks();
    const tab = () => {
      const t = { calls: 0, sockets: 0, client: null as unknown as LibraryClient };
      class CountingWebSocket extends WebSocket {
        constructor(url: string) {
          super(url);
          t.sockets += 1;
        }
      }
      t.client = client({
        url: proxy.url,
        shareAcrossTabs: true,
        locks,
        WebSocket: CountingWebSocket,
        getToken: () => {
          t.calls += 1;
          return short(sub);
        },
      });
      return t;
    };
    const a = tab();
    await live(a.client, "a live");
    const b = tab();
    await live(b.client, "b live (relayed)");
    const [leader, follower] = a.sockets === 1 ? [a, b] : [b, a];
    const conn = proxy.last()!;
    await until(() => received(conn, "auth_ok").length >= 2, "two refreshes", 30_000);
    // The follower asked once, for the user (its lock's name); the leader at the connect and per refresh.
    expect(follower.calls).toBe(1);
    expect(follower.sockets).toBe(0);
    expect(leader.calls).toBeGreaterThanOrEqual(1 + sent(conn, "auth").length);
    expect(conn.open).toBe(true);
    const project = await follower.client.createProject({ name: "through the refreshed leader" });
    await waitForState(leader.client, (x) => x.projects.some((p) => p.id === project.id), "the leader shows it");
    expect(follower.client.getState().status.state).toBe("live");
    expect(proxy.last()).toBe(conn);
  });
});
