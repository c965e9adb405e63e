/**
 * The promises of the actions not settled yet. An action resolves only once the server
 * acknowledged it AND this client holds a snapshot at least that new (read-your-writes), so an
 * ack is kept here until a snapshot catches up with it. The frames are kept too: a tab that
 * is not the leader resends its unanswered ones to the next leader.
 */

import type { LibraryError } from "./errors.js";
import type { Entity, MutateFrame } from "./wire.js";

export interface Applied {
  version: number;
  data: Entity | null;
}

interface Waiter {
  frame: MutateFrame;
  resolve(applied: Applied): void;
  reject(error: LibraryError): void;
  acked: Applied | null;
}

export class Pending {
  /** In the order issued. */
  private readonly waiters = new Map<string, Waiter>();

  /** A promise for `frame`'s outcome. */
  add(frame: MutateFrame): Promise<Applied> {
    return new Promise((resolve, reject) => {
      this.waiters.set(frame.mutation_id, { frame, resolve, reject, acked: null });
    });
  }

  has(mutationId: string): boolean {
    return this.waiters.has(mutationId);
  }

  /** The server committed it; it resolves once `held` reaches its version. */
  ack(mutationId: string, applied: Applied, held: number | null): void {
    const w = this.waiters.get(mutationId);
    if (!w || w.acked) return;
    w.acked = applied;
    this.settle(held);
  }

  reject(mutationId: string, error: LibraryError): void {
    const w = this.waiters.get(mutationId);
    if (!w || w.acked) return;
    this.waiters.delete(mutationId);
    w.reject(error);
  }

  /** Resolves every acknowledged mutation whose version is held now. */
  settle(held: number | null): void {
    if (held === null) return;
    for (const [id, w] of this.waiters) {
      if (w.acked && w.acked.version <= held) {
        this.waiters.delete(id);
        w.resolve(w.acked);
      }
    }
  }

  /** The frames with no answer yet, in the order issued (to send, or send again). */
  unanswered(): MutateFrame[] {
    return [...this.waiters.values()].filter((w) => !w.acked).map((w) => w.frame);
  }

  /**
   * Resolves every acknowledged mutation now, held or not: they committed, and no snapshot
   * will come any more (access to the library ended). Never report a committed write as failed.
   */
  resolveAcked(): void {
    for (const [id, w] of this.waiters) {
      if (w.acked) {
        this.waiters.delete(id);
        w.resolve(w.acked);
      }
    }
  }

  rejectAll(error: LibraryError): void {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const w of all) w.reject(error);
  }
}
