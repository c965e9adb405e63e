import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startProxy, startServer, until, type LibrarianServer, type Proxy } from "../../../testing/index.js";

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

describe("the test harness", () => {
  it("starts the real server, which mints dev tokens and serves an empty library", async () => {
    const token = await server.token("harness");
    const library = await server.library(token);
    expect(library.version).toBe(0);
    expect(await server.sessionsOpen()).toBe(0);
  });

  it("proxies a WebSocket, records its request line and frames, and injects a frame at a boundary", async () => {
    const token = await server.token("harness-ws");
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/api/v1/ws?access_token=${token}&since_version=0`);
    const got: string[] = [];
    ws.on("message", (data) => got.push(String(data)));
    await until(() => got.length >= 2, "hello and status");
    const conn = proxy.last()!;
    expect(conn.url?.searchParams.get("since_version")).toBe("0");
    expect(conn.responseStatus).toBe(101);
    expect(JSON.parse(conn.serverFrames[0]!).type).toBe("hello");
    conn.inject(JSON.stringify({ type: "injected" }));
    await until(() => got.some((t) => t.includes("injected")), "the injected frame");
    ws.send(JSON.stringify({ type: "mutate", mutation_id: "m1", op: "project.create", data: { name: "P" } }));
    await until(() => got.some((t) => JSON.parse(t).type === "ack"), "the ack");
    expect(conn.clientFrames.map((t) => JSON.parse(t).mutation_id)).toEqual(["m1"]);
    expect(await server.sessionsOpen()).toBe(1);
    const closed = new Promise((r) => ws.once("close", r));
    proxy.cut();
    await closed;
    await until(async () => (await server.sessionsOpen()) === 0, "the session closed on the server");
  });

  it("restarts on the same port and directory after kill -9, with the data kept", async () => {
    const token = await server.token("harness-restart");
    const created = await server.request("POST", "/api/v1/projects", { token, body: { name: "kept" } });
    expect(created.status).toBe(201);
    const port = server.port;
    await server.kill();
    await server.restart();
    expect(server.port).toBe(port);
    const library = await server.library(token);
    expect(library.projects.map((p) => p.name)).toEqual(["kept"]);
    expect(server.logs().filter((l) => l.message === "listening")).toHaveLength(2);
  });
});
