/**
 * What the client's tests share: clients on `ws` that are closed after each test, unique user
 * names, and the harness (real server, proxy, waits).
 */

import { afterEach, onTestFailed } from "vitest";
import WebSocket from "ws";
import { LibraryClient, type LibraryClientOptions, type LibraryState } from "../src/index.js";
import { waitForState, type LibrarianServer } from "../../../testing/index.js";

export * from "../../../testing/index.js";

const open = new Set<LibraryClient>();

afterEach(async () => {
  const all = [...open];
  open.clear();
  await Promise.all(all.map((c) => c.close()));
});

/** A client on `ws`, closed after the test. */
export function client(options: Omit<LibraryClientOptions, "WebSocket"> & Partial<Pick<LibraryClientOptions, "WebSocket">>): LibraryClient {
  const c = new LibraryClient({ WebSocket, ...options });
  open.add(c);
  return c;
}

let n = 0;
/** A user name no other test uses (each test gets a library of its own). */
export function user(label: string): string {
  n += 1;
  return `${label}-${process.pid}-${n}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Prints the server's logs if the current test fails. */
export function logsOnFailure(server: () => LibrarianServer | undefined): void {
  onTestFailed(() => server()?.printLogs());
}

export function live(client: LibraryClient, what = "live"): Promise<LibraryState> {
  return waitForState(client, (s) => s.status.state === "live", what);
}

/**
 * Live, and quiet: the server's presence lists this client's session as holding the version
 * shown (its `seen` went round). Until then a `presence` frame may still change the state, so
 * a test that checks that nothing changes waits for this first.
 */
export function settled(client: LibraryClient, what = "live and settled"): Promise<LibraryState> {
  return waitForState(
    client,
    (s) =>
      s.status.state === "live" &&
      s.sessionId !== null &&
      s.presence.some((p) => p.session_id === s.sessionId && p.seen_version === s.version),
    what,
  );
}

/** A new, signed-in, live (and settled, see `settled`) client of `server` (or of `url`, e.g. a proxy) for `name`. */
export async function liveClient(
  server: LibrarianServer,
  name: string,
  extra: Partial<LibraryClientOptions> = {},
): Promise<{ client: LibraryClient; token: string }> {
  const token = await server.token(name);
  const c = client({ url: server.url, getToken: () => token, ...extra });
  await settled(c, `${name} live`);
  return { client: c, token };
}
