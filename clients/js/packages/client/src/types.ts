/** The public shapes of `LibraryClient`: its options, its state and its status. */

import type { LibraryError } from "./errors.js";
import type { ContextBlock, MemberRole, PresenceSession, Project, Role, SavedPrompt } from "./wire.js";

/** Where the client stands with the server; every state also says whether what is shown is `cached`. */
export type LibraryStatus = SyncStatus & {
  /**
   * True while what is shown is the IndexedDB copy, not yet confirmed by the server in this
   * run (by a snapshot or a `live` status).
   */
  cached: boolean;
};

/** `LibraryStatus` without `cached`: what a connection (or the tab leader) knows. */
export type SyncStatus =
  /** Connecting (the first attempt, or after `online` / `reconnect()`). */
  | { state: "connecting" }
  /** Connected; the first snapshot of this connection (or the server's `live`) is not here yet. */
  | { state: "loading" }
  /** Holding the newest version the server knows of. */
  | { state: "live" }
  /** The server is loading a newer version than the one held. */
  | { state: "syncing"; targetVersion: number }
  /**
   * Something failed and the client (or, for `database_unavailable`, the server) retries at
   * `retryAt` (epoch ms): the server's `status error`, or the connection's own failure
   * (`connection_lost`, `unreachable`, `token_expired`; `invalid_token` or `auth_unavailable`
   * after a refreshed token was refused or could not be checked). `retryAt` is null when nothing
   * retries on its own: `unauthorized` (`getToken` failed, or the token is another user's; call
   * `reconnect()`), `access_revoked` (the user was removed from the library, or it was
   * deleted: close 4403), `library_not_found` (the `library` option names one the user is no
   * member of). After those two nothing is sent or retried; pending writes were rejected.
   */
  | { state: "error"; code: string; message: string; retryAt: number | null }
  /** The browser says it is offline (`navigator.onLine === false`); reconnects on `online`. */
  | { state: "offline" };

/** A block that lives only in this client (this tab): never sent to the server. */
export interface TemporaryBlock {
  /** A local id, `temp-<uuid>`. */
  id: string;
  title: string;
  content: string;
  tags: string[];
  project_id: string | null;
  temporary: true;
  /** `saveTemporaryBlock` is under way: disable its controls. */
  saving: boolean;
}

/** What `addTemporaryBlock` takes (all optional) and `updateTemporaryBlock` changes. */
export type TemporaryBlockFields = Partial<Pick<TemporaryBlock, "title" | "content" | "tags" | "project_id">>;

/** What `getState()` returns: a new object on every change, the same object otherwise. */
export interface LibraryState {
  /** The version of the library shown, null before any. */
  version: number | null;
  projects: Project[];
  contextBlocks: ContextBlock[];
  savedPrompts: SavedPrompt[];
  /** This client's temporary blocks (kept across snapshots, never sent). */
  temporaryBlocks: TemporaryBlock[];
  status: LibraryStatus;
  /** No library to show yet (neither from the server nor from the cache). */
  isLoading: boolean;
  /** The `error` status as a `LibraryError`, else null. */
  error: LibraryError | null;
  /** Epoch ms when this client last knew it was live with the server (from the cache too). */
  lastSyncedAt: number | null;
  /**
   * The library version the latest write of this client produced (the highest so far): its
   * delivery receipt is `deliveredTo(lastWriteVersion)`. Set when the write resolves.
   */
  lastWriteVersion: number | null;
  /** The library shown (from `hello`, or the cache); null before either. */
  libraryId: string | null;
  /**
   * The user's role in it (`hello`, then `access` frames): `owner`, `editor` or `viewer` (a
   * viewer's writes are rejected with 403). Null before `hello` and after access was revoked.
   */
  role: Role | null;
  /**
   * The server's id of the session this client's snapshots come from (`hello.session_id`; with
   * `shareAcrossTabs`, the leader's): its entry in `presence` is this browser. Null while none.
   */
  sessionId: string | null;
  /** Who may open the library, by user id (the snapshot's `members`). */
  members: MemberRole[];
  /**
   * Every session open on the library, on every instance (the server's `presence`, at most
   * every 100 ms), this one included; `[]` while not connected. `deliveredTo(v)` counts them.
   */
  presence: PresenceSession[];
}

/** The subset of the WebSocket API the client uses: the browser's, or `ws`'s in Node. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The Web Locks API's `navigator.locks`, as far as the tab leader needs it. */
export interface LockManagerLike {
  request(
    name: string,
    options: { signal?: AbortSignal },
    callback: (lock: unknown) => Promise<unknown>,
  ): Promise<unknown>;
}

/** The `BroadcastChannel` constructor, as far as the tabs need it. */
export type BroadcastChannelConstructor = new (name: string) => {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
};

export interface LibraryClientOptions {
  /** The server's http(s) origin, e.g. `location.origin` or `http://127.0.0.1:8080`. */
  url: string;
  /**
   * The token provider, called for EVERY connection attempt (so a new token is used after a
   * refused connection or a 4401 close) and ahead of each expiry the server announces
   * (`hello.expires_at`), to refresh the open session with an `auth` frame. A fixed token is
   * `() => token`. If it throws or rejects at a (re)connect, the client stops with status
   * `error` `unauthorized` until `reconnect()`; at a refresh it is asked again with a backoff.
   */
  getToken: () => string | Promise<string>;
  /** A library id other than the user's own (`?library=`); default: the user's own. */
  library?: string;
  /** A WebSocket implementation (Node: `import WebSocket from "ws"`); default the global one. */
  WebSocket?: WebSocketConstructor;
  /**
   * `"indexeddb"`: show the last snapshot cached for this url, user and library at once
   * (status `cached: true`) and resume from its version. Off by default.
   */
  cache?: "indexeddb" | false;
  /** The IndexedDB factory for the cache (default `globalThis.indexedDB`; tests: fake-indexeddb). */
  indexedDB?: IDBFactory;
  /**
   * One WebSocket for all tabs of this origin (per url, user and library): a leader elected
   * with Web Locks holds it and relays over BroadcastChannel. Off by default; without Web
   * Locks or BroadcastChannel each client keeps its own socket.
   */
  shareAcrossTabs?: boolean;
  /** The Web Locks manager (default `navigator.locks`). */
  locks?: LockManagerLike;
  /** The BroadcastChannel constructor (default the global one). */
  BroadcastChannel?: BroadcastChannelConstructor;
  /**
   * Ask for patch frames (`?patches=1`, DESIGN §10): after the first snapshot the server sends
   * only what changed, and the client checks what it holds against each frame's digest
   * (asking for the whole library on a mismatch). On by default; `false` gets a whole
   * snapshot per version, as before. The state the app sees is the same either way.
   */
  patches?: boolean;
  /**
   * How digests are checked (the defaults suit browsers): a library up to `syncMaxBytes`
   * (1 MiB of canonical JSON) is checked before it is shown; a larger one is shown at once and
   * the newest one is checked in slices once no frame came for `idleMs` (200 ms), or at the
   * latest `maxWaitMs` (2 s) after the first one not checked.
   */
  verify?: { syncMaxBytes?: number; idleMs?: number; maxWaitMs?: number };
}

/** `{ifVersion}`: the row version last seen; a mismatch rejects with 412 and `error.current`. */
export interface WriteOptions {
  ifVersion?: number;
}
