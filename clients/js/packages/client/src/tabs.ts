/**
 * One WebSocket for all tabs of an origin (`shareAcrossTabs`). The tabs of one url + user +
 * library ask the Web Locks API for the same lock; the one holding it (while it lives) is the
 * leader and holds the socket. Everything else goes over a BroadcastChannel of the same name:
 *
 * - leader → all: `leader` when it takes over, `state` (snapshot when it changed, status,
 *   lastSyncedAt, role, presence) after every change, `result` (the answer to a follower's mutation).
 * - follower → leader: `ask` (the current state, when it starts), `mutate` (a frame; the
 *   follower keeps it pending and sends it again, same `mutation_id`, to the next leader),
 *   `reconnect` (its `reconnect()` was called).
 *
 * This module only elects and carries messages; `client.ts` decides what they mean.
 */

import { uuid } from "./ids.js";
import type { MutationResult } from "./session.js";
import type { BroadcastChannelConstructor, LockManagerLike, SyncStatus } from "./types.js";
import type { LibrarySnapshot, MutateFrame, PresenceSession, Role } from "./wire.js";

export type TabMessage =
  | { t: "leader"; from: string }
  | { t: "ask"; from: string }
  | {
      t: "state";
      from: string;
      /** The leader's snapshot, when it changed since the last `state` (or when asked). */
      snapshot?: LibrarySnapshot;
      /** Replace what is held even if not newer (the leader replaced its own: reset, other library). */
      force?: boolean;
      version: number | null;
      libraryId: string | null;
      status: SyncStatus;
      /** The leader's copy is its IndexedDB one, not yet confirmed by the server. */
      cached: boolean;
      /** The leader's library is a large one whose digest it is still checking (absent from older builds). */
      unchecked?: boolean;
      lastSyncedAt: number | null;
      /** The user's role in the library (`hello` / `access`), null before or after access ended. */
      role: Role | null;
      /** The leader's session (`hello.session_id`): this browser's entry in `presence`. */
      sessionId: string | null;
      /** The leader's latest `presence` (its session is this browser's one). */
      presence: PresenceSession[];
    }
  | { t: "mutate"; from: string; frame: MutateFrame }
  /** A follower's `reconnect()`: the leader reconnects its socket. */
  | { t: "reconnect"; from: string }
  | { t: "result"; from: string; to: string; mutationId: string; result: MutationResult };

/** A message without its sender, as `post` takes it. */
export type Outgoing = TabMessage extends infer M ? (M extends TabMessage ? Omit<M, "from"> : never) : never;

export interface TabHandlers {
  /** This tab took the lock: it is the leader until it closes. */
  leader(): void;
  message(message: TabMessage): void;
}

export class Tabs {
  /** This tab's id in messages. */
  readonly id = uuid();
  leading = false;
  private readonly channel: InstanceType<BroadcastChannelConstructor>;
  private readonly abort = new AbortController();
  private release: (() => void) | null = null;
  private closed = false;

  constructor(
    private readonly name: string,
    private readonly locks: LockManagerLike,
    BroadcastChannel: BroadcastChannelConstructor,
    private readonly handlers: TabHandlers,
  ) {
    this.channel = new BroadcastChannel(name);
    this.channel.onmessage = (event: MessageEvent) => {
      const message = event.data as TabMessage;
      if (this.closed || !message || typeof message !== "object" || message.from === this.id) return;
      this.handlers.message(message);
    };
  }

  /** Joins: asks for the lock (granted now or when the leader goes). */
  start(): void {
    this.locks
      .request(this.name, { signal: this.abort.signal }, () => {
        if (this.closed) return Promise.resolve();
        this.leading = true;
        this.handlers.leader();
        // Held as long as this tab lives (the browser frees it when the tab goes) or until close().
        return new Promise<void>((resolve) => (this.release = resolve));
      })
      .catch(() => {
        // Aborted by close() while waiting.
      });
  }

  post(message: Outgoing): void {
    if (this.closed) return;
    this.channel.postMessage({ ...message, from: this.id });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.close();
    this.abort.abort();
    this.release?.();
  }
}

/** The Web Locks manager and BroadcastChannel of this environment, if it has both. */
export function tabSupport(
  locks: LockManagerLike | undefined,
  BroadcastChannel: BroadcastChannelConstructor | undefined,
): { locks: LockManagerLike; BroadcastChannel: BroadcastChannelConstructor } | null {
  const g = globalThis as {
    navigator?: { locks?: LockManagerLike };
    BroadcastChannel?: BroadcastChannelConstructor;
  };
  const l = locks ?? g.navigator?.locks;
  const bc = BroadcastChannel ?? g.BroadcastChannel;
  return l && bc ? { locks: l, BroadcastChannel: bc } : null;
}
