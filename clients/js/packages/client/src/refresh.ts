/**
 * When to refresh a session's token over the open socket (docs/PROTOCOL.md, DESIGN §11): at
 * `expires_at - margin`, margin = min(60 s, max(1 s, a fifth of the time left when the expiry
 * was learned)). A one-hour token is refreshed a minute before it expires, a 3 s one a second
 * before; one that is already (nearly) expired at once.
 */

const MAX_MARGIN_MS = 60_000;
const MIN_MARGIN_MS = 1_000;

/** The epoch ms to refresh at, for a token expiring at `expiresAt` learned at `now`. */
export function refreshAt(expiresAt: number, now: number): number {
  const left = expiresAt - now;
  const margin = Math.min(MAX_MARGIN_MS, Math.max(MIN_MARGIN_MS, left / 5));
  return Math.max(now, Math.round(expiresAt - margin));
}

/**
 * The longest delay one `setTimeout` takes: browsers and Node fire a longer one at once
 * (a 30-day dev token would otherwise refresh in a loop). Longer waits go in steps.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** An RFC 3339 timestamp as epoch ms, or null if absent or unreadable. */
export function parseExpiry(value: unknown): number | null {
  if (typeof value !== "string") return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}
