// Sign-in state: the user and their token live in sessionStorage (this tab only), and the
// client's options come from the page's URL.

export interface Session {
  user: string;
  token: string;
}

const KEY = "librarian-example-session";

export function loadSession(): Session | null {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as Partial<Session> | null;
    return saved?.user && saved.token ? { user: saved.user, token: saved.token } : null;
  } catch {
    return null;
  }
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(LIBRARY_KEY);
}

const LIBRARY_KEY = "librarian-example-library";

/** The library this tab shows (null: the user's own), kept across reloads of the tab. */
export function loadLibrary(): string | null {
  return sessionStorage.getItem(LIBRARY_KEY);
}

export function saveLibrary(library: string | null): void {
  if (library) sessionStorage.setItem(LIBRARY_KEY, library);
  else sessionStorage.removeItem(LIBRARY_KEY);
}

/** A problem document from a failed request, thrown as an Error that carries it. */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly problem: { status?: number; detail?: string; errors?: { field: string; message: string }[] } | null,
  ) {
    super(message);
  }
}

/** Dev auth: `POST /api/v1/dev/token {"user"}` → `{token}` (the route exists in dev mode only). */
export async function devSignIn(user: string): Promise<Session> {
  const response = await fetch("/api/v1/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  const body = (await response.json().catch(() => null)) as { token?: string; user?: string; detail?: string } | null;
  if (!response.ok || !body?.token) {
    const message =
      response.status === 404
        ? "This server is not in dev auth mode: sign in with your identity provider's token."
        : (body?.detail ?? `sign-in failed (HTTP ${response.status})`);
    throw new RequestError(message, body as RequestError["problem"]);
  }
  return { user: body.user ?? user, token: body.token };
}

/** Client options from the URL: `?share=1` (one socket across tabs), `?cache=1` (IndexedDB). */
export function urlOptions(search = location.search): { shareAcrossTabs: boolean; cache: boolean; patches: boolean } {
  const params = new URLSearchParams(search);
  const on = (name: string) => ["1", "true", "yes", "on"].includes(params.get(name) ?? "");
  const off = (name: string) => ["0", "false", "no", "off"].includes(params.get(name) ?? "");
  return { shareAcrossTabs: on("share"), cache: on("cache"), patches: !off("patches") };
}
