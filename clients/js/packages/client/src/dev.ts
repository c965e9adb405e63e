/** Dev auth mode only (the server's default): a token for a user name, for sign-in pages and examples. */

import { LibraryError, toProblem } from "./errors.js";

/**
 * `POST /api/v1/dev/token {"user"}` → the token. Rejects with a `LibraryError` (e.g. 404 when
 * the server runs in jwt mode, where this route does not exist).
 */
export async function devToken(url: string, user: string): Promise<string> {
  const base = url.endsWith("/") ? url : `${url}/`;
  const res = await fetch(new URL("api/v1/dev/token", base), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const problem = toProblem(body);
    throw new LibraryError({ ...problem, status: problem.status || res.status });
  }
  const token = (body as { token?: unknown } | null)?.token;
  if (typeof token !== "string") throw LibraryError.client("unauthorized", "the server sent no token");
  return token;
}
