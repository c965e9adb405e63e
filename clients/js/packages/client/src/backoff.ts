/**
 * The one backoff, for reconnects and for deferred mutations: 100 ms doubling to 5 s, with
 * jitter (the same as librarian.js and `librarian_core::backoff::Backoff::DEFAULT`).
 */

import type { Problem } from "./wire.js";

const BASE_MS = 100;
const MAX_MS = 5000;

/** The delay before attempt `failures + 1` (1 → 50–100 ms, 2 → 100–200 ms, … capped at 2.5–5 s). */
export function retryDelay(failures: number, random: number = Math.random()): number {
  const exp = Math.min(BASE_MS * 2 ** Math.min(Math.max(failures - 1, 0), 10), MAX_MS);
  // Jitter in [0.5, 1]: clients cut off together do not come back together.
  return Math.round(exp * (0.5 + random / 2));
}

/**
 * A reject that says "not now" rather than "no": resent with the same `mutation_id` after a
 * backoff, never reported (an earlier attempt of it may have committed).
 */
export function retryable(problem: Problem): boolean {
  return problem.status === 503 || problem.code === "too_many_mutations";
}
