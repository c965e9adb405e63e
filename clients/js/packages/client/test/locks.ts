/**
 * A tiny in-memory Web Locks manager (exclusive locks only), standing in for `navigator.locks`
 * in Node: the clients of one test share one, as the tabs of one origin share the browser's.
 */

import type { LockManagerLike } from "../src/index.js";

interface Request {
  callback: (lock: unknown) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export class MemoryLocks implements LockManagerLike {
  private readonly queues = new Map<string, Request[]>();
  private readonly held = new Set<string>();

  request(name: string, options: { signal?: AbortSignal }, callback: (lock: unknown) => Promise<unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const request: Request = { callback, resolve, reject };
      const queue = this.queues.get(name) ?? [];
      this.queues.set(name, queue);
      queue.push(request);
      options.signal?.addEventListener("abort", () => {
        const i = queue.indexOf(request);
        if (i >= 0) {
          queue.splice(i, 1);
          reject(new Error("AbortError"));
        }
      });
      this.grant(name);
    });
  }

  /** Whether anyone holds `name` now. */
  isHeld(name: string): boolean {
    return this.held.has(name);
  }

  private grant(name: string): void {
    if (this.held.has(name)) return;
    const next = this.queues.get(name)?.shift();
    if (!next) return;
    this.held.add(name);
    void Promise.resolve()
      .then(() => next.callback({ name, mode: "exclusive" }))
      .then(
        (value) => next.resolve(value),
        (error: unknown) => next.reject(error),
      )
      .finally(() => {
        this.held.delete(name);
        this.grant(name);
      });
  }
}
