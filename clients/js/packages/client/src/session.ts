/**
 * One connection to the server at a time, and everything that keeps it going: connect with a
 * fresh token, reconnect with backoff and `since_version`, never step back (G9), and pace the
 * mutations (at most `hello.max_inflight_mutations` unanswered, the rest queued in order;
 * unanswered ones resent with their `mutation_id` on the next connection; "not now" rejects
 * resent after a backoff, never reported).
 *
 * It also keeps the session's token fresh: from `hello.expires_at` (and each `auth_ok`) it
 * calls the provider ahead of expiry (`refresh.ts`) and sends `auth {token}` on the open
 * socket; a provider that fails then is retried with the backoff while the socket lives. A
 * refused token (`error invalid_token`, close 4401) or a server that cannot check it now
 * (`error auth_unavailable`, close 1013) ends the connection; the reconnect asks the provider
 * again. Tokens are never logged.
 *
 * Shared libraries (DESIGN §9): after applying each snapshot, and when a resume is `live` at
 * the version held, it sends `seen {version}` (a delivery receipt; it goes at once and, as a
 * receipt of a newly delivered version, costs nothing from the frame rate). It reports `access`
 * (a new role) and `presence` (the sessions on the library) to its owner. `error
 * access_revoked` and close 4403 end it for good: no reconnect, the queued mutations dropped
 * (the owner rejects them), status `error` `access_revoked` with no retry. A connection to
 * another library than the user's own that is refused before the upgrade is checked over HTTP
 * (`libraryGone`): a library the user is not a member of (any more) stops the session the same
 * way instead of retrying for ever.
 *
 * Patch frames (DESIGN §10): it asks for them (`?patches=1`, unless `patches: false`); its
 * `Replica` holds the library, applies each `patch`, checks digests and says when to send
 * `resync` (`replica.ts` has the policy). While a resync is outstanding the status is
 * `syncing` (what the server says meanwhile is shown once the snapshot came); after a
 * reconnect it is asked again if what is held is known wrong (else the resume's patch brings
 * it up to date). `seen` goes after each library shown, patched or whole.
 *
 * It knows nothing of React, temporary blocks, the cache or tabs: it reports accepted
 * libraries, statuses and the final answer of each mutation to its owner (`client.ts`).
 */

import { retryDelay, retryable } from "./backoff.js";
import { toProblem } from "./errors.js";
import { MAX_TIMER_MS, parseExpiry, refreshAt } from "./refresh.js";
import { Replica, type VerifyPolicy } from "./replica.js";
import type { SyncStatus, WebSocketConstructor, WebSocketLike } from "./types.js";
import {
  CloseCode,
  type AuthFrame,
  type Entity,
  type HelloFrame,
  type LibrarySnapshot,
  type MutateFrame,
  type PresenceSession,
  type Problem,
  type ResyncFrame,
  type Role,
  type SeenFrame,
  type ServerFrame,
} from "./wire.js";

/** The final answer to a mutation (retryable rejects never get here). */
export type MutationResult =
  | { ok: true; version: number; data: Entity | null }
  | { ok: false; problem: Problem };

export interface SessionHandlers {
  hello(frame: HelloFrame): void;
  /**
   * The library to show: a snapshot newer than the one held (or marked `reset`, or answering
   * a `resync`), or the one held with a patch applied. `checked`: it matched its digest (or
   * had none); false for a large library whose check comes later (`checked(version)`).
   */
  snapshot(snapshot: LibrarySnapshot, checked: boolean): void;
  /** The library shown at `version`, shown not checked, matched its digest. */
  checked(version: number): void;
  status(status: SyncStatus): void;
  result(mutationId: string, result: MutationResult): void;
  /** The user's role changed (`access`), sent before the snapshot of that version. */
  access(role: Role): void;
  /** Every session on the library (`presence`); `[]` when the connection ended (nothing known). */
  presence(sessions: PresenceSession[]): void;
}

export interface SessionOptions {
  /** The server's http(s) origin (or base URL). */
  url: string;
  library?: string;
  getToken: () => string | Promise<string>;
  WebSocket: WebSocketConstructor;
  /** The library already held (from the cache, or relayed by the previous tab leader). */
  held: LibrarySnapshot | null;
  /** Ask for patch frames (`?patches=1`). */
  patches: boolean;
  /** The digest policy (tests make "large" small); default `DEFAULT_VERIFY`. */
  verify?: Partial<VerifyPolicy>;
  /** A token just fetched by the owner, used for the first attempt instead of a new call. */
  token?: string;
  handlers: SessionHandlers;
  /**
   * With `library`: asked after a connection refused before the upgrade (a browser cannot read
   * the status), with that attempt's token. True: the server says the user is no member of the
   * library (404), so the session stops instead of retrying. Any failure to tell: false.
   */
  libraryGone?: (token: string) => Promise<boolean>;
}

/** Servers before `max_inflight_mutations` was announced allowed this many. */
const DEFAULT_MAX_INFLIGHT = 32;
/**
 * The server closes a session past `hello.max_frames_per_second` frames (pongs included); this
 * client sends at most this share of it, leaving room for the browser's pongs.
 */
const FRAME_RATE_SHARE = 0.8;
/** Servers before the limits were announced in `hello` had these defaults. */
const DEFAULT_FRAMES_PER_SECOND = 100;
const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
/**
 * A `resync` the server has not answered after this long, while other frames came, is asked
 * again on a new connection (a server answers one resync per version: a client must not wait
 * for ever on one it ignored).
 */
const RESYNC_WAIT_MS = 15_000;
/** How long `close()` waits for the socket's close before it stops waiting. */
const CLOSE_WAIT_MS = 2000;
const OPEN = 1;

interface Queued {
  frame: MutateFrame;
  text: string;
  /** UTF-8 length of `text`. */
  bytes: number;
  /** Sent on the current connection and not answered yet. */
  inFlight: boolean;
  /** Retryable rejects so far (drives the backoff). */
  retries: number;
  /** After a retryable reject: not sent again before this (epoch ms). */
  notBefore: number;
}

export class Session {
  /** The library held; the next connection resumes from its version. */
  private readonly replica: Replica;
  private readonly opts: SessionOptions;
  private ws: WebSocketLike | null = null;
  /** In the order issued, which is the order they are sent in. */
  private readonly queue = new Map<string, Queued>();
  /** This connection's limit; null until its `hello` (the next server's may differ). */
  private maxInflight: number | null = null;
  private failures = 0;
  private attempt = 0;
  private closed = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private pumpTimer: ReturnType<typeof setTimeout> | undefined;
  private spareToken: string | undefined;
  /** The largest frame the server takes (the last `hello` said). */
  private maxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  /** Token bucket for outgoing frames. */
  private rate = Math.floor(DEFAULT_FRAMES_PER_SECOND * FRAME_RATE_SHARE);
  private tokens = this.rate;
  private refilledAt = Date.now();
  private lastStatus: SyncStatus | null = null;
  /** The token the current connection's session runs on (the last one the server took). */
  private sessionToken: string | null = null;
  /** Epoch ms the current session's token expires (`hello` / `auth_ok`); null: not announced. */
  private expiresAt: number | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** Failed or fruitless refreshes of this connection in a row (drives their backoff). */
  private refreshFailures = 0;
  /** An `auth` frame waiting for the frame rate (it goes before any mutation). */
  private authOut: { token: string; text: string } | null = null;
  /** The token sent in `auth`, until its `auth_ok`. */
  private authSent: string | null = null;
  /** The server's `error` frame on this connection (the close that follows says what it was about). */
  private lastError: { code: string; message: string } | null = null;
  /** This connection's server takes `seen` frames (its `hello` has `role`: it knows shared libraries). */
  private receipts = false;
  /** The `seen` waiting for the frame rate (only the newest goes). */
  private seenOut: number | null = null;
  /** The version of the last `seen` sent or queued on this connection. */
  private seenLast: number | null = null;
  /** Greeted on this library at least once: a later refusal is a revocation, not "not found". */
  private everGreeted = false;
  /** The status before an `offline` event, shown again if the socket outlives it. */
  private beforeOffline: SyncStatus | null = null;
  /** No `?patches=1` any more: even a resync's answer did not match its digest (`replica.ts`). */
  private patchesOff = false;
  /** This connection's `hello` said `patches: true`. */
  private patching = false;
  /** This server sent a digest (it takes `resync`). */
  private digests = false;
  /** A `resync` waiting for the frame rate. */
  private resyncOut = false;
  /** A resync was wanted on this connection before its `hello`: the `hello` asks. */
  private resyncAtHello = false;
  /** Frames that came since the last `resync` went out, and the watch on its answer. */
  private framesSinceResync = 0;
  private resyncTimer: ReturnType<typeof setTimeout> | undefined;
  /** What the server said last (`hello`, `status`), shown once a resync is answered. */
  private serverSaid: SyncStatus | null = null;
  private readonly onOnline = () => this.online();
  private readonly onOffline = () => this.offline();

  constructor(opts: SessionOptions) {
    this.opts = opts;
    this.spareToken = opts.token;
    this.replica = new Replica(
      opts.held,
      {
        show: (library, checked) => this.show(library, checked),
        checked: (version) => this.opts.handlers.checked(version),
        resync: (reason, version) => this.askResync(reason, version),
        distrust: (reason) => this.distrust(reason),
      },
      opts.verify,
    );
  }

  /** The version of the library held; the next connection resumes from it. */
  get held(): number | null {
    return this.replica.version;
  }

  start(): void {
    const g = globalThis as { addEventListener?: (type: string, fn: () => void) => void };
    g.addEventListener?.("online", this.onOnline);
    g.addEventListener?.("offline", this.onOffline);
    this.status({ state: "connecting" });
    void this.connect();
  }

  /** Queues a mutation (a `mutation_id` already queued is not queued twice). */
  mutate(frame: MutateFrame): void {
    if (this.closed || this.queue.has(frame.mutation_id)) return;
    const text = JSON.stringify(frame);
    const bytes = new TextEncoder().encode(text).length;
    if (bytes > this.maxFrameBytes) {
      queueMicrotask(() => this.tooLarge(frame.mutation_id, bytes));
      return;
    }
    this.queue.set(frame.mutation_id, { frame, text, bytes, inFlight: false, retries: 0, notBefore: 0 });
    this.pump();
  }

  /**
   * Refuses a mutation larger than the server's frame limit, here: the server would close the
   * session (4400) and the resend would close the next one, for ever.
   */
  private tooLarge(mutationId: string, bytes: number): void {
    this.queue.delete(mutationId);
    const problem: Problem = {
      type: "urn:librarian:problem:too_large",
      title: "Payload Too Large",
      status: 413,
      code: "too_large",
      detail: `the mutation is ${bytes} bytes; the server takes frames of at most ${this.maxFrameBytes} bytes`,
    };
    this.opts.handlers.result(mutationId, { ok: false, problem });
  }

  /**
   * Stops on the current connection until `reconnect()`: the socket closes, nothing more is
   * sent (queued mutations stay queued), and the status is a terminal error.
   */
  halt(code: string, message: string): void {
    if (this.closed) return;
    this.detach()?.close(1000);
    this.status({ state: "error", code, message, retryAt: null });
  }

  /** Drops the connection and connects again now; `dropHeld`: without `since_version` (shows nothing held). */
  reconnect(opts: { dropHeld?: boolean } = {}): void {
    if (this.closed) return;
    if (opts.dropHeld) this.replica.drop();
    this.failures = 0;
    this.detach()?.close(1000);
    this.status({ state: "connecting" });
    void this.connect();
  }

  /** Ends the session; resolves once the socket closed (or after a short guard). */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.pumpTimer);
    clearTimeout(this.resyncTimer);
    this.endRefresh();
    this.replica.close();
    const g = globalThis as { removeEventListener?: (type: string, fn: () => void) => void };
    g.removeEventListener?.("online", this.onOnline);
    g.removeEventListener?.("offline", this.onOffline);
    this.queue.clear();
    const ws = this.detach();
    if (!ws) return Promise.resolve();
    return new Promise((resolve) => {
      const guard = setTimeout(resolve, CLOSE_WAIT_MS);
      ws.onclose = () => {
        clearTimeout(guard);
        resolve();
      };
      ws.onerror = () => {};
      try {
        ws.close(1000);
      } catch {
        clearTimeout(guard);
        resolve();
      }
    });
  }

  // ---- the connection ----------------------------------------------------------------------

  private async connect(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    const attempt = ++this.attempt;
    if (isOffline()) {
      this.status({ state: "offline" });
      return;
    }
    let token: string;
    try {
      token = this.spareToken ?? (await this.opts.getToken());
    } catch (e) {
      // The provider itself failed: reconnecting forever would not help (DESIGN §11).
      if (!this.closed && attempt === this.attempt) {
        this.status({ state: "error", code: "unauthorized", message: `getToken failed: ${message(e)}`, retryAt: null });
      }
      return;
    } finally {
      this.spareToken = undefined;
    }
    if (this.closed || attempt !== this.attempt) return;
    let ws: WebSocketLike;
    try {
      ws = new this.opts.WebSocket(this.socketUrl(token));
    } catch (e) {
      void this.dropped(null, false, message(e));
      return;
    }
    this.ws = ws;
    this.endRefresh();
    this.sessionToken = token;
    this.lastError = null;
    // A new connection: nothing is in flight on it; the unanswered go again once `hello` says how many may.
    this.maxInflight = null;
    for (const q of this.queue.values()) q.inFlight = false;
    this.receipts = false;
    this.seenOut = null;
    this.seenLast = null;
    this.patching = false;
    this.resyncOut = false;
    this.resyncAtHello = false;
    this.serverSaid = null;
    let greeted = false;
    ws.onmessage = (event: { data: unknown }) => {
      if (this.ws !== ws || typeof event.data !== "string") return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(event.data) as ServerFrame;
      } catch {
        return;
      }
      if (frame.type === "hello") greeted = true;
      this.framesSinceResync += 1;
      this.onFrame(frame, ws, event.data.length);
    };
    ws.onclose = (event: { code?: number; reason?: string }) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.maxInflight = null;
      this.endRefresh();
      if (greeted) this.opts.handlers.presence([]);
      void this.dropped(event.code ?? null, greeted, event.reason ?? "", this.lastError, token);
    };
    // A close always follows an error.
    ws.onerror = () => {};
  }

  private socketUrl(token: string): string {
    const base = this.opts.url.endsWith("/") ? this.opts.url : `${this.opts.url}/`;
    const url = new URL("api/v1/ws", base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    // Browsers cannot set headers on a WebSocket: the token goes in the query.
    url.searchParams.set("access_token", token);
    if (this.held !== null) url.searchParams.set("since_version", String(this.held));
    if (this.opts.patches && !this.patchesOff) url.searchParams.set("patches", "1");
    if (this.opts.library) url.searchParams.set("library", this.opts.library);
    return url.toString();
  }

  private async dropped(
    code: number | null,
    greeted: boolean,
    reason: string,
    error: { code: string; message: string } | null = null,
    token: string | null = null,
  ): Promise<void> {
    if (this.closed) return;
    if (code === CloseCode.AccessRevoked || error?.code === "access_revoked") {
      // Removed from the library, or it was deleted (DESIGN §9): coming back would be refused.
      this.revoked(error?.message || reason || "access to this library was revoked");
      return;
    }
    if (isOffline()) {
      // No use retrying: the `online` event reconnects.
      this.status({ state: "offline" });
      return;
    }
    if (!greeted && token !== null && this.opts.library && this.opts.libraryGone) {
      // Refused before the upgrade: a 404 for a library the user is no member of (any more)
      // looks like any other refusal to a browser. Ask over HTTP before retrying.
      const attempt = this.attempt;
      const gone = await this.opts.libraryGone(token).catch(() => false);
      if (this.closed || attempt !== this.attempt || this.ws !== null) return;
      if (gone) {
        if (this.everGreeted) this.revoked("access to this library was revoked");
        else this.stop("library_not_found", "no such library, or you are not a member of it");
        return;
      }
    }
    this.failures += 1;
    const delay = retryDelay(this.failures);
    this.status({ state: "error", ...describeClose(code, greeted, reason, error), retryAt: Date.now() + delay });
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  /** Access to the library ended: nothing queued goes anywhere, nothing reconnects. */
  private revoked(message: string): void {
    this.stop("access_revoked", message);
  }

  /** A terminal error: the queue is dropped (the owner rejects what was pending), no retry. */
  private stop(code: string, message: string): void {
    this.queue.clear();
    clearTimeout(this.pumpTimer);
    this.status({ state: "error", code, message, retryAt: null });
  }

  /** Detaches the current socket (its events are ignored from now on) and returns it. */
  private detach(): WebSocketLike | null {
    const ws = this.ws;
    this.ws = null;
    this.maxInflight = null;
    clearTimeout(this.retryTimer);
    this.endRefresh();
    if (ws) this.opts.handlers.presence([]);
    return ws;
  }

  private online(): void {
    if (this.closed) return;
    if (this.ws) {
      // The socket survived: what it said last before going offline still stands.
      if (this.lastStatus?.state === "offline") this.status(this.beforeOffline ?? { state: "loading" });
      return;
    }
    this.failures = 0;
    this.status({ state: "connecting" });
    void this.connect();
  }

  private offline(): void {
    if (this.closed) return;
    if (this.lastStatus?.state !== "offline") this.beforeOffline = this.lastStatus;
    this.status({ state: "offline" });
  }

  private status(status: SyncStatus): void {
    this.lastStatus = status;
    this.opts.handlers.status(status);
  }

  // ---- frames ------------------------------------------------------------------------------

  private onFrame(frame: ServerFrame, ws: WebSocketLike, frameBytes: number): void {
    const h = this.opts.handlers;
    // After `error access_revoked` only the close may follow: nothing else is shown.
    if (this.lastError?.code === "access_revoked") return;
    switch (frame.type) {
      case "hello": {
        this.failures = 0;
        this.maxInflight = Math.max(1, frame.max_inflight_mutations ?? DEFAULT_MAX_INFLIGHT);
        this.maxFrameBytes = Math.max(1, frame.max_frame_bytes ?? DEFAULT_MAX_FRAME_BYTES);
        this.rate = Math.max(1, Math.floor((frame.max_frames_per_second ?? DEFAULT_FRAMES_PER_SECOND) * FRAME_RATE_SHARE));
        this.tokens = Math.min(this.tokens, this.rate);
        // Queued before this server's limit was known: refused now rather than sent into a close.
        for (const [id, q] of [...this.queue]) if (q.bytes > this.maxFrameBytes) this.tooLarge(id, q.bytes);
        // A server that knows shared libraries says the role, and takes delivery receipts.
        this.receipts = frame.role !== undefined;
        this.everGreeted = true;
        this.patching = frame.patches === true;
        if (this.replica.resyncing) {
          // Asked on the last connection and not answered. If what is held is wrong at its
          // version, ask this one (a server that sent digests takes `resync`); otherwise the
          // resume from it brings what is newer (a patch, checked in turn).
          if ((this.replica.suspect || this.resyncAtHello) && (this.patching || this.digests)) {
            this.resyncOut = true;
            this.status({ state: "syncing", targetVersion: this.held ?? 0 });
          } else {
            this.replica.resyncing = false;
          }
        }
        this.serverStatus({ state: "loading" });
        // A server that does not announce the expiry (before issue 14) gets no `auth` frames;
        // its 4401 at expiry reconnects with a new token.
        const expiresAt = parseExpiry(frame.expires_at);
        if (expiresAt !== null) this.scheduleRefresh(ws, expiresAt);
        h.hello(frame);
        // The owner may have reconnected (another library than the one cached).
        if (this.ws === ws) this.pump();
        break;
      }
      case "snapshot": {
        const { type: _type, reset, digest, ...snapshot } = frame;
        if (typeof digest === "string") this.digests = true;
        // Never a step back (G9), unless the server says its library went back (a restore)
        // or it answers a resync (the replica decides; it calls `show`).
        this.replica.snapshot(snapshot, { reset: reset === true, digest, bytes: frameBytes });
        break;
      }
      case "patch": {
        const { type: _type, ...patch } = frame;
        this.digests = true;
        this.replica.patch(patch, frameBytes);
        break;
      }
      case "status":
        switch (frame.state) {
          case "live":
            this.serverStatus({ state: "live" });
            // A resume at the version held gets no snapshot: say it is held all the same.
            if (this.ws === ws && !this.replica.resyncing && this.held !== null && this.seenLast !== this.held) this.seen(this.held);
            break;
          case "loading":
            this.serverStatus({ state: "loading" });
            break;
          case "syncing":
            this.serverStatus({ state: "syncing", targetVersion: frame.target_version });
            break;
          case "error":
            this.serverStatus({ state: "error", code: frame.code, message: frame.message, retryAt: Date.now() + frame.retry_in_ms });
            break;
        }
        break;
      case "ack": {
        if (!this.queue.delete(frame.mutation_id)) break;
        h.result(frame.mutation_id, { ok: true, version: frame.library_version, data: frame.data ?? null });
        this.pump();
        break;
      }
      case "reject": {
        const q = this.queue.get(frame.mutation_id);
        if (!q) break;
        const problem = toProblem(frame.error);
        if (retryable(problem)) {
          q.inFlight = false;
          q.retries += 1;
          q.notBefore = Date.now() + retryDelay(q.retries);
        } else {
          this.queue.delete(frame.mutation_id);
          h.result(frame.mutation_id, { ok: false, problem });
        }
        this.pump();
        break;
      }
      case "auth_ok":
        this.authAccepted(ws, frame.expires_at);
        break;
      case "access":
        h.access(frame.role);
        break;
      case "presence":
        h.presence(frame.sessions);
        break;
      case "error":
        this.lastError = { code: frame.code, message: frame.message };
        // A refused token (4401), one that cannot be checked now (1013), or access revoked
        // (4403): the close follows and says so in the status; nothing to warn about.
        if (frame.code === "invalid_token" || frame.code === "auth_unavailable" || frame.code === "access_revoked") break;
        // A frame of ours the server could not read: a bug here; the close (4400) follows.
        console.warn(`librarian: the server refused a frame: ${frame.code}: ${frame.message}`);
        break;
    }
  }

  // ---- the library held ----------------------------------------------------------------------

  /** The replica has a library to show (synchronously, within the frame that brought it). */
  private show(library: LibrarySnapshot, checked: boolean): void {
    clearTimeout(this.resyncTimer);
    this.opts.handlers.snapshot(library, checked);
    // A resync answered: what the server said meanwhile stands now.
    if (this.serverSaid !== null && this.lastStatus?.state === "syncing" && !sameStatus(this.lastStatus, this.serverSaid)) {
      this.status(this.serverSaid);
    }
    // Applied (the owner shows it synchronously): the delivery receipt.
    if (this.ws !== null) this.seen(library.version);
  }

  /** The replica wants the whole library: `resync` on this connection (or the next one's `hello`). */
  private askResync(_reason: string, version: number): void {
    // Not connected (a late check): the next `hello` asks, and says `syncing` then.
    if (this.ws === null) return;
    // What is shown is not (or not yet) the server's newest: not `live`.
    this.status({ state: "syncing", targetVersion: Math.max(version, this.held ?? version) });
    // Before `hello`, the `hello` asks.
    if (this.maxInflight === null) {
      this.resyncAtHello = true;
      return;
    }
    this.resyncOut = true;
    this.pump();
  }

  /** Reconnects if the `resync` just sent on `ws` is not answered (see `RESYNC_WAIT_MS`). */
  private watchResync(ws: WebSocketLike): void {
    clearTimeout(this.resyncTimer);
    this.framesSinceResync = 0;
    this.resyncTimer = setTimeout(() => {
      if (this.closed || this.ws !== ws || !this.replica.resyncing) return;
      // Nothing at all came: a large snapshot may still be on its way.
      if (this.framesSinceResync === 0) this.watchResync(ws);
      else this.reconnect();
    }, RESYNC_WAIT_MS);
  }

  /** Even the answer to a resync did not match: this client cannot check this server's digests. */
  private distrust(reason: string): void {
    console.warn(`librarian: ${reason}; patch frames are turned off for this client`);
    if (this.patchesOff) return;
    this.patchesOff = true;
    // The session on this connection sends patches: a new one without them (from what is held).
    if (this.patching && this.ws !== null) queueMicrotask(() => this.reconnect());
  }

  /** A status from the server: shown, unless a resync is outstanding (then once it is answered). */
  private serverStatus(status: SyncStatus): void {
    this.serverSaid = status;
    if (this.replica.resyncing && status.state !== "error") return;
    this.status(status);
  }

  // ---- token refresh -----------------------------------------------------------------------

  /** The session on `ws` expires at `expiresAt`: refresh ahead of it (`refresh.ts`). */
  private scheduleRefresh(ws: WebSocketLike, expiresAt: number): void {
    this.expiresAt = expiresAt;
    this.refreshFailures = 0;
    this.refreshLater(ws, refreshAt(expiresAt, Date.now()));
  }

  /** Calls `refresh` at `at` (epoch ms), in steps no timer overflows. */
  private refreshLater(ws: WebSocketLike, at: number): void {
    clearTimeout(this.refreshTimer);
    const delay = Math.max(0, at - Date.now());
    this.refreshTimer =
      delay > MAX_TIMER_MS
        ? setTimeout(() => this.refreshLater(ws, at), MAX_TIMER_MS)
        : setTimeout(() => void this.refresh(ws), delay);
  }

  /** Asks the provider for a token and sends it as `auth` (once the frame rate allows). */
  private async refresh(ws: WebSocketLike): Promise<void> {
    if (this.closed || this.ws !== ws) return;
    let token: string;
    try {
      token = await this.opts.getToken();
    } catch {
      // Retried while this socket lives; at expiry the server closes 4401 and the reconnect
      // asks the provider again (a failure there is the terminal `unauthorized`).
      if (this.ws === ws) this.retryRefresh(ws);
      return;
    }
    if (this.closed || this.ws !== ws) return;
    if (typeof token !== "string" || token === "" || token === this.sessionToken) {
      // Nothing newer yet (a provider that caches its token until closer to expiry): ask again.
      this.retryRefresh(ws);
      return;
    }
    const frame: AuthFrame = { type: "auth", token };
    this.authOut = { token, text: JSON.stringify(frame) };
    this.pump();
  }

  private retryRefresh(ws: WebSocketLike): void {
    this.refreshFailures += 1;
    this.refreshLater(ws, Date.now() + retryDelay(this.refreshFailures));
  }

  /** `auth_ok`: the session runs on the token sent, until its `expires_at`. */
  private authAccepted(ws: WebSocketLike, expires: unknown): void {
    if (this.authSent !== null) this.sessionToken = this.authSent;
    this.authSent = null;
    const expiresAt = parseExpiry(expires);
    if (expiresAt === null) return;
    const now = Date.now();
    if ((this.expiresAt !== null && expiresAt <= this.expiresAt) || refreshAt(expiresAt, now) <= now) {
      // The new token expires no later than the old one, or is due for a refresh at once (by
      // this clock: one far ahead of the server's sees every token expired): refreshing at
      // once again would loop; ask the provider again after a backoff instead.
      this.expiresAt = expiresAt;
      this.retryRefresh(ws);
      return;
    }
    this.scheduleRefresh(ws, expiresAt);
  }

  /** Forgets the refresh of the connection that ended (or is about to be replaced). */
  private endRefresh(): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    this.expiresAt = null;
    this.refreshFailures = 0;
    this.authOut = null;
    this.authSent = null;
  }

  /** Queues the delivery receipt of `version` (replacing one not sent yet), if this server takes them. */
  private seen(version: number): void {
    // The same version again (a resync's snapshot) is nothing new, and would count.
    if (!this.receipts || version === this.seenLast) return;
    this.seenLast = version;
    this.seenOut = version;
    this.pump();
  }

  /** Sends the queued mutations the limits allow now, oldest first; wakes for the next backoff. */
  private pump(): void {
    clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
    const ws = this.ws;
    const limit = this.maxInflight;
    if (this.closed || !ws || ws.readyState !== OPEN || limit === null) return;
    const now = Date.now();
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.refilledAt) * this.rate) / 1000);
    this.refilledAt = now;
    let wake = Infinity;
    if (this.authOut) {
      // The refresh goes first: it keeps the session (and every mutation on it) alive.
      if (this.tokens < 1) {
        this.pumpTimer = setTimeout(() => this.pump(), Math.ceil(((1 - this.tokens) * 1000) / this.rate));
        return;
      }
      this.tokens -= 1;
      this.authSent = this.authOut.token;
      ws.send(this.authOut.text);
      this.authOut = null;
    }
    if (this.resyncOut) {
      // What is held is wrong: nothing else matters as much.
      if (this.tokens < 1) {
        this.pumpTimer = setTimeout(() => this.pump(), Math.ceil(((1 - this.tokens) * 1000) / this.rate));
        return;
      }
      this.tokens -= 1;
      const frame: ResyncFrame = { type: "resync" };
      ws.send(JSON.stringify(frame));
      this.resyncOut = false;
      this.watchResync(ws);
    }
    if (this.seenOut !== null) {
      // A receipt goes at once, before the mutations (the writer's "on k of n" waits on it), and
      // spends no token: the server does not count a `seen` of a newly delivered version
      // against its frame rate, so a busy library's receipts never hold back this client's writes.
      const frame: SeenFrame = { type: "seen", version: this.seenOut };
      ws.send(JSON.stringify(frame));
      this.seenOut = null;
    }
    let inFlight = 0;
    for (const q of this.queue.values()) if (q.inFlight) inFlight += 1;
    for (const q of this.queue.values()) {
      // Past the limit nothing is looked at: a deferred one whose backoff ended goes when an answer frees a place.
      if (inFlight >= limit) break;
      if (q.inFlight) continue;
      if (q.notBefore > now) {
        wake = Math.min(wake, q.notBefore);
        continue;
      }
      if (this.tokens < 1) {
        wake = Math.min(wake, now + Math.ceil(((1 - this.tokens) * 1000) / this.rate));
        break;
      }
      this.tokens -= 1;
      q.inFlight = true;
      q.notBefore = 0;
      inFlight += 1;
      ws.send(q.text);
    }
    if (wake !== Infinity) this.pumpTimer = setTimeout(() => this.pump(), Math.max(0, wake - now));
  }
}

function sameStatus(a: SyncStatus, b: SyncStatus): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => (a as never)[k] === (b as never)[k]);
}

function isOffline(): boolean {
  const nav = (globalThis as { navigator?: { onLine?: boolean } }).navigator;
  return nav?.onLine === false;
}

/** What happened, in words for a status pill; when it retries is the status' `retryAt`. */
function describeClose(
  code: number | null,
  greeted: boolean,
  reason: string,
  error: { code: string; message: string } | null,
): { code: string; message: string } {
  if (code === CloseCode.AuthExpired && error?.code === "invalid_token") {
    return { code: "invalid_token", message: `the server refused the new token${error.message ? `: ${error.message}` : ""}` };
  }
  if (code === CloseCode.AuthExpired) return { code: "token_expired", message: "the token expired" };
  if (code === CloseCode.TryAgainLater && error?.code === "auth_unavailable") {
    return { code: "auth_unavailable", message: `the server cannot check the token right now${error.message ? `: ${error.message}` : ""}` };
  }
  if (code === CloseCode.GoingAway) return { code: "connection_lost", message: "the server is shutting down" };
  if (greeted) {
    const why = reason ? `: ${reason}` : code !== null ? ` (close ${code})` : "";
    return { code: "connection_lost", message: `the connection to the server was lost${why}` };
  }
  return { code: "unreachable", message: "could not connect to the server" };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
