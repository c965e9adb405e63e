/**
 * The browser's online/offline signal (a fake `navigator` and window events here): offline is
 * shown as such, nothing retries while offline, and `online` reconnects at once, resuming.
 */

import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { client, live, startProxy, startServer, until, user, waitForState, type LibrarianServer, type Proxy } from "./support.js";

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
afterEach(() => {
  vi.unstubAllGlobals();
});

describe("offline", () => {
  it("shows offline when the browser says so, and reconnects (with since_version) on online; writes made offline go then", async () => {
    const window = new EventTarget();
    const navigator = { onLine: true };
    vi.stubGlobal("navigator", navigator);
    vi.stubGlobal("addEventListener", window.addEventListener.bind(window));
    vi.stubGlobal("removeEventListener", window.removeEventListener.bind(window));

    const token = await server.token(user("offline"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    await c.createProject({ name: "online" });
    const held = c.getState().version;

    navigator.onLine = false;
    window.dispatchEvent(new Event("offline"));
    const off = c.getState();
    expect(off.status).toEqual({ state: "offline", cached: false });
    expect(off.projects).toHaveLength(1);
    const first = proxy.last()!;
    first.cut();
    const queued = c.createProject({ name: "made offline" });
    queued.catch(() => {}); // awaited below
    await until(() => !first.open, "the connection gone");

    navigator.onLine = true;
    window.dispatchEvent(new Event("online"));
    await queued;
    await live(c, "live after online");
    const again = proxy.last()!;
    expect(again).not.toBe(first);
    expect(again.url?.searchParams.get("since_version")).toBe(String(held));
    expect(c.getState().projects.map((p) => p.name)).toEqual(["online", "made offline"]);
  });

  it("a socket that outlives a short offline spell shows its status from before again", async () => {
    const window = new EventTarget();
    const navigator = { onLine: true };
    vi.stubGlobal("navigator", navigator);
    vi.stubGlobal("addEventListener", window.addEventListener.bind(window));
    vi.stubGlobal("removeEventListener", window.removeEventListener.bind(window));
    const token = await server.token(user("offline-blip"));
    const c = client({ url: proxy.url, getToken: () => token });
    await live(c);
    const conn = proxy.last()!;
    navigator.onLine = false;
    window.dispatchEvent(new Event("offline"));
    expect(c.getState().status.state).toBe("offline");
    navigator.onLine = true;
    window.dispatchEvent(new Event("online"));
    expect(c.getState().status).toEqual({ state: "live", cached: false });
    await c.createProject({ name: "same socket" });
    expect(proxy.last()).toBe(conn);
  });

  it("a client started offline does not connect until online", async () => {
    const window = new EventTarget();
    const navigator = { onLine: false };
    vi.stubGlobal("navigator", navigator);
    vi.stubGlobal("addEventListener", window.addEventListener.bind(window));
    vi.stubGlobal("removeEventListener", window.removeEventListener.bind(window));
    const token = await server.token(user("offline-start"));
    const before = proxy.connections.length;
    const c = client({ url: proxy.url, getToken: () => token });
    const s = await waitForState(c, (x) => x.status.state === "offline", "offline");
    expect(s.isLoading).toBe(true);
    expect(proxy.connections.length).toBe(before);
    navigator.onLine = true;
    window.dispatchEvent(new Event("online"));
    await live(c);
  });
});
