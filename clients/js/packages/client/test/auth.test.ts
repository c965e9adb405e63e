/**
 * The token provider: called for every connection attempt, so that a session the server
 * closed with 4401 (token expired) comes back with a new token; a provider that fails stops
 * the client (status error `unauthorized`) until `reconnect()`. (The refresh on the open
 * socket, which normally keeps the 4401 from happening, is refresh.test.ts.)
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, jwtEnv, live, logsOnFailure, nowSeconds, signJwt, startProxy, startServer, testSecret, user, waitForState, type LibrarianServer, type Proxy } from "./support.js";

const secret = testSecret();
let server: LibrarianServer;
let proxy: Proxy;
beforeAll(async () => {
  // jwt mode with our own secret, so the test can mint a token that expires within seconds.
  server = await startServer({ env: jwtEnv(secret) });
  proxy = await startProxy(server.port);
});
afterAll(async () => {
  await proxy?.close();
  await server?.stop();
});

/** The server allows `exp` + 30 s: this token is good for about `seconds` more. */
function shortToken(sub: string, seconds: number): string {
  return signJwt(secret, { sub, exp: nowSeconds() - 30 + seconds });
}

describe("tokens", () => {
  it("after a 4401 (token expired: its refresh never reached the server) the provider is called again and the client is live again with the new token", async () => {
    logsOnFailure(() => server);
    const sub = user("expiring");
    const tokens: string[] = [];
    let short = true;
    const getToken = () => {
      const token = short ? shortToken(sub, 5) : signJwt(secret, { sub, exp: nowSeconds() + 3600 });
      tokens.push(token);
      return token;
    };
    // The refresh (`auth`) is lost on the way: the session runs out.
    const stop = proxy.onFrame((_conn, from, text) => (from === "client" && (JSON.parse(text) as { type: string }).type === "auth" ? "drop" : undefined));
    const c = client({ url: proxy.url, getToken });
    await live(c);
    const first = proxy.last()!;
    expect(first.url?.searchParams.get("access_token")).toBe(tokens[0]);
    short = false;
    // The server closes the session when the token expires ...
    await waitForState(c, (s) => s.error?.code === "token_expired", "the 4401 seen", 30_000);
    expect(first.closes).toContainEqual({ from: "server", code: 4401 });
    // ... and the client connects again with a fresh token from the provider.
    await live(c, "live with the new token");
    stop();
    expect(tokens.length).toBeGreaterThanOrEqual(2);
    const again = proxy.last()!;
    expect(again).not.toBe(first);
    expect(again.url?.searchParams.get("access_token")).toBe(tokens[tokens.length - 1]);
    expect(again.url?.searchParams.get("since_version")).toBe("0");
    const project = await c.createProject({ name: "after the refresh" });
    expect(c.getState().projects).toEqual([project]);
  });

  it("a token refused before the upgrade (401) is replaced by the next one the provider gives", async () => {
    const sub = user("refused-token");
    let calls = 0;
    const c = client({
      url: server.url,
      getToken: () => {
        calls += 1;
        // The first two are already expired (past the leeway): the server answers 401.
        return calls <= 2 ? shortToken(sub, -5) : signJwt(secret, { sub, exp: nowSeconds() + 3600 });
      },
    });
    await live(c);
    expect(calls).toBeGreaterThanOrEqual(3);
  });

  it("a provider that fails stops the client with `unauthorized` (no retry) until reconnect()", async () => {
    const sub = user("no-token");
    let fail = true;
    const c = client({
      url: server.url,
      getToken: async () => {
        if (fail) throw new Error("signed out");
        return signJwt(secret, { sub, exp: nowSeconds() + 3600 });
      },
    });
    const s = await waitForState(c, (x) => x.status.state === "error", "unauthorized");
    expect(s.status).toMatchObject({ state: "error", code: "unauthorized", retryAt: null });
    expect(s.error?.code).toBe("unauthorized");
    expect(s.error?.message).toContain("signed out");
    fail = false;
    c.reconnect();
    await live(c);
  });
});
