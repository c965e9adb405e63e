/**
 * Waiting for conditions in tests: hang guards only, never timing assertions. A wait that
 * times out fails with what it waited for (and the last value seen), so a slow machine only
 * makes a test slower, never wrong.
 */

/** The default hang guard: generous, for a slow, noisy 2-core machine. */
export const HANG_GUARD_MS = 20_000;

/** Anything with `getState()` and `subscribe()` (a `LibraryClient`). */
export interface Observable<S> {
  getState(): S;
  subscribe(listener: () => void): () => void;
}

/**
 * Resolves with the first truthy value of `check()`, polled every 20 ms (for conditions that
 * have no event: /metrics, the database, a proxy's connections).
 */
export async function until<T>(
  check: () => T | Promise<T>,
  what: string,
  timeoutMs = HANG_GUARD_MS,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${describe(last)})`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves with the client's state once `accept(state)` holds (checked now and on every change). */
export function waitForState<S>(
  client: Observable<S>,
  accept: (state: S) => boolean,
  what: string,
  timeoutMs = HANG_GUARD_MS,
): Promise<S> {
  return new Promise((resolve, reject) => {
    let unsubscribe: () => void = () => {};
    let done = false;
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; state: ${describe(client.getState())}`));
    }, timeoutMs);
    const finish = () => {
      done = true;
      clearTimeout(timer);
      unsubscribe();
    };
    const check = () => {
      if (done) return;
      const state = client.getState();
      if (accept(state)) {
        finish();
        resolve(state);
      }
    };
    unsubscribe = client.subscribe(check);
    check();
  });
}

/** Records the client's state now and after every change (every emitted state, in order). */
export function recordStates<S>(client: Observable<S>): { states: S[]; stop(): void } {
  const states: S[] = [client.getState()];
  const stop = client.subscribe(() => {
    const state = client.getState();
    if (states[states.length - 1] !== state) states.push(state);
  });
  return { states, stop };
}

/** Rejects if `promise` has not settled within the hang guard (e.g. a close that hangs). */
export async function within<T>(promise: Promise<T>, what: string, timeoutMs = HANG_GUARD_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

function describe(value: unknown): string {
  if (value instanceof Error) return value.message;
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
  } catch {
    return String(value);
  }
}
