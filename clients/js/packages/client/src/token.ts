/**
 * The user a token is for, read without verifying it: the cache and the tab leader are keyed
 * by user, and both are needed before the server's `hello` names the user. The server checks
 * the token; this only picks which local copy to look at.
 */

/** The JWT payload's `sub`, or null if the token is not a JWT with a string `sub`. */
export function tokenSubject(token: string): string | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
    const payload: unknown = JSON.parse(new TextDecoder().decode(bytes));
    const sub = payload && typeof payload === "object" ? (payload as { sub?: unknown }).sub : undefined;
    return typeof sub === "string" && sub !== "" ? sub : null;
  } catch {
    return null;
  }
}
