/**
 * `LibraryClient`: the library as the app sees it (a state object for `useSyncExternalStore`)
 * and the actions that change it.
 *
 * What is shown comes only from the server (or, marked `cached`, from the IndexedDB copy of
 * what it sent before): nothing before the server confirmed it. An action resolves once the
 * server acknowledged it and the state already shows a snapshot at least that new.
 *
 * Where the snapshots come from: this client's own `Session` (one socket), or, with
 * `shareAcrossTabs`, the tab leader's session relayed over a BroadcastChannel (`tabs.ts`); the
 * leader is whichever tab holds the lock, possibly this one.
 *
 * Shared libraries (DESIGN §9): the state says the user's `role`, the library's `members`
 * and `presence` (the sessions open on it); `deliveredTo(v)` counts the sessions holding
 * version `v`. Access revoked (close 4403) is terminal: unacknowledged writes reject with
 * `access_revoked`, nothing reconnects. `api` is the REST side (libraries, members).
 */

import { SnapshotCache, cacheKey, clearLibraryCache } from "./cache.js";
import { LibraryError } from "./errors.js";
import { uuid } from "./ids.js";
import { LibrariesApi, countDelivered, type MemberChange, type Removal } from "./libraries.js";
import { Pending, type Applied } from "./pending.js";
import { shareRows } from "./rows.js";
import { Session, type MutationResult } from "./session.js";
import { Tabs, tabSupport, type TabMessage } from "./tabs.js";
import { changeTemporary, newTemporaryBlock, pickFields, withoutTemporary } from "./temporary.js";
import { tokenSubject } from "./token.js";
import type {
  LibraryClientOptions,
  LibraryState,
  LibraryStatus,
  SyncStatus,
  TemporaryBlock,
  TemporaryBlockFields,
  WebSocketConstructor,
  WriteOptions,
} from "./types.js";
import type {
  ContextBlock,
  ContextBlockPatch,
  HelloFrame,
  LibrarySnapshot,
  MemberRole,
  MutateFrame,
  NewContextBlock,
  NewProject,
  NewSavedPrompt,
  Op,
  PresenceSession,
  Project,
  ProjectPatch,
  Role,
  SavedPrompt,
  SavedPromptPatch,
} from "./wire.js";

const EMPTY: never[] = [];
/** Terminal errors of shared libraries: nothing reconnects, nothing pending stays. */
const ACCESS_ENDED = new Map<string, number>([
  ["access_revoked", 403],
  ["library_not_found", 404],
]);
/** How long a refused connection waits for the server to say whether the library is there. */
const LIBRARY_PROBE_MS = 5000;
/** How long the start waits for the cached copy before it connects without it. */
const CACHE_READ_WAIT_MS = 2000;

export class LibraryClient {
  private readonly options: LibraryClientOptions;
  private readonly url: string;
  private readonly WebSocket: WebSocketConstructor | undefined;
  private state: LibraryState;
  private readonly listeners = new Set<() => void>();
  private readonly pending = new Pending();

  // What is shown, and where it stands.
  private snapshot: LibrarySnapshot | null = null;
  private sync: SyncStatus = { state: "connecting" };
  /** What is shown is the IndexedDB copy, not yet confirmed by the server in this run. */
  private cached = false;
  /**
   * What is shown is a large library whose digest is still being checked (`replica.ts`): not
   * cached until it is (a mismatch asks for the whole library, which replaces it).
   */
  private unchecked = false;
  private temporary: TemporaryBlock[] = EMPTY;
  private lastSyncedAt: number | null = null;
  /** The library of what is shown (from the cache entry, `hello`, or the leader). */
  private libraryId: string | null = null;
  /** The user's role in it (`hello`, `access`, or the leader); null before and after access ended. */
  private role: Role | null = null;
  /** The session the snapshots come from (`hello.session_id`, or the leader's). */
  private sessionId: string | null = null;
  /** The sessions open on the library (`presence`, or the leader's); `[]` while unknown. */
  private presence: PresenceSession[] = EMPTY;
  /** `setMember` / `removeMember` waiting for a snapshot at least as new as their change. */
  private readonly versionWaiters = new Set<{ version: number; resolve(): void; reject(e: LibraryError): void }>();
  private apiInstance: LibrariesApi | null = null;
  /** Access to the library ended (revoked, or never there): writes reject with this until `reconnect()`. */
  private ended: LibraryError | null = null;
  /** The highest library version a write of this client produced (state `lastWriteVersion`). */
  private lastWriteVersion: number | null = null;

  /** Temporary blocks being saved: id of the block created → id of the temporary one. */
  private readonly saving = new Map<string, string>();
  private readonly saves = new Map<string, Promise<ContextBlock>>();

  private user: string | null = null;
  /** The user the last `hello` named: a different one means the provider switched users. */
  private helloUser: string | null = null;
  private cache: SnapshotCache | null = null;
  /** The IndexedDB factory, kept until `hello` names the user (when the token is not a JWT). */
  private cacheForUser: IDBFactory | null = null;
  private session: Session | null = null;
  private tabs: Tabs | null = null;
  /** Leader: which follower each relayed mutation came from. */
  private readonly origins = new Map<string, string>();
  /** Leader: the snapshot last relayed (a `state` carries it only when it changed). */
  private relayed: LibrarySnapshot | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(options: LibraryClientOptions) {
    if (!options || typeof options.url !== "string" || !/^https?:\/\//.test(options.url)) {
      throw new TypeError("LibraryClient: `url` must be the server's http(s) origin");
    }
    if (typeof options.getToken !== "function") {
      throw new TypeError("LibraryClient: `getToken` must be a function returning a token");
    }
    this.options = options;
    this.url = options.url.replace(/\/+$/, "");
    this.WebSocket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.state = {
      version: null,
      projects: EMPTY,
      contextBlocks: EMPTY,
      savedPrompts: EMPTY,
      temporaryBlocks: this.temporary,
      status: { state: "connecting", cached: false },
      isLoading: true,
      error: null,
      lastSyncedAt: null,
      lastWriteVersion: null,
      libraryId: null,
      role: null,
      sessionId: null,
      members: EMPTY,
      presence: EMPTY,
    };
    void this.start();
  }

  // ---- reading -----------------------------------------------------------------------------

  /** The current state: a new object after every change, the same object otherwise. */
  getState = (): LibraryState => this.state;

  /** Calls `listener` after every change of `getState()`; returns the unsubscribe function. */
  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  /**
   * The delivery receipt of `version` (e.g. a write's `library_version`): how many of the
   * sessions open on the library hold it or newer (`held`), of how many (`total`), from the
   * latest `presence`. It grows as the other sessions apply the snapshot: read it again on
   * every state change.
   */
  deliveredTo = (version: number): { held: number; total: number } => countDelivered(this.presence, version);

  /** The REST side on this client's url and token provider: libraries and their members. */
  get api(): LibrariesApi {
    this.apiInstance ??= new LibrariesApi({ url: this.url, getToken: this.options.getToken });
    return this.apiInstance;
  }

  // ---- members of this client's library -------------------------------------------------------

  /**
   * Gives `userId` the role `role` in this client's library (owner only; adds them if they
   * are not a member). Resolves once the server committed it and the state shows it
   * (`members`); rejects with a `LibraryError` (403 for a non-owner, 409 for the owner).
   */
  async setMember(userId: string, role: Exclude<Role, "owner">): Promise<MemberChange> {
    const change = await this.api.setMember(this.currentLibrary(), userId, role);
    await this.whenHeld(change.libraryVersion);
    this.wrote(change.libraryVersion);
    return change;
  }

  /**
   * Removes `userId` from this client's library (owner), or leaves it (the user's own id):
   * then this client ends as `access_revoked`. Resolves once the state shows the change (for
   * someone else), or at once when leaving.
   */
  async removeMember(userId: string): Promise<Removal> {
    const removal = await this.api.removeMember(this.currentLibrary(), userId);
    if (userId !== this.helloUser && userId !== this.user) {
      await this.whenHeld(removal.libraryVersion);
      this.wrote(removal.libraryVersion);
    }
    return removal;
  }

  // ---- actions -----------------------------------------------------------------------------

  createProject(fields: NewProject): Promise<Project> {
    return this.write<Project>("project.create", undefined, fields);
  }
  updateProject(id: string, changes: ProjectPatch, options?: WriteOptions): Promise<Project> {
    return this.write<Project>("project.update", id, changes, options);
  }
  deleteProject(id: string, options?: WriteOptions): Promise<void> {
    return this.write<unknown>("project.delete", id, undefined, options).then(() => undefined);
  }
  createContextBlock(fields: NewContextBlock): Promise<ContextBlock> {
    return this.write<ContextBlock>("context_block.create", undefined, fields);
  }
  updateContextBlock(id: string, changes: ContextBlockPatch, options?: WriteOptions): Promise<ContextBlock> {
    return this.write<ContextBlock>("context_block.update", id, changes, options);
  }
  deleteContextBlock(id: string, options?: WriteOptions): Promise<void> {
    return this.write<unknown>("context_block.delete", id, undefined, options).then(() => undefined);
  }
  createSavedPrompt(fields: NewSavedPrompt): Promise<SavedPrompt> {
    return this.write<SavedPrompt>("saved_prompt.create", undefined, fields);
  }
  updateSavedPrompt(id: string, changes: SavedPromptPatch, options?: WriteOptions): Promise<SavedPrompt> {
    return this.write<SavedPrompt>("saved_prompt.update", id, changes, options);
  }
  deleteSavedPrompt(id: string, options?: WriteOptions): Promise<void> {
    return this.write<unknown>("saved_prompt.delete", id, undefined, options).then(() => undefined);
  }

  // ---- temporary blocks --------------------------------------------------------------------

  /** A block only this client sees (never sent); returns it, with its local id. */
  addTemporaryBlock(fields: TemporaryBlockFields = {}): TemporaryBlock {
    const block = newTemporaryBlock(pickFields(fields));
    this.temporary = [...this.temporary, block];
    this.commit();
    return block;
  }

  /** Changes a temporary block's fields; returns it as it is now. */
  updateTemporaryBlock(id: string, changes: TemporaryBlockFields): TemporaryBlock {
    if (!this.temporary.some((b) => b.id === id)) throw noTemporary(id);
    const fields = pickFields(changes);
    this.temporary = changeTemporary(this.temporary, id, (b) => ({ ...b, ...fields }));
    this.commit();
    return this.temporary.find((b) => b.id === id)!;
  }

  removeTemporaryBlock(id: string): void {
    this.temporary = withoutTemporary(this.temporary, [id]);
    this.commit();
  }

  /**
   * Creates the block on the server and resolves to it. The state update that first shows
   * the saved block is the one that removes the temporary block: no state has both, none has
   * neither. Meanwhile the temporary block has `saving: true`; on a reject it stays, unmarked.
   */
  saveTemporaryBlock(id: string): Promise<ContextBlock> {
    const already = this.saves.get(id);
    if (already) return already;
    const block = this.temporary.find((b) => b.id === id);
    if (!block) return Promise.reject(noTemporary(id));
    // Our own id for the new block, so that the snapshot that first has it is recognised,
    // whether it comes before or after the ack.
    const blockId = uuid();
    this.saving.set(blockId, id);
    this.temporary = changeTemporary(this.temporary, id, (b) => ({ ...b, saving: true }));
    this.commit();
    const save = this.createContextBlock({
      id: blockId,
      title: block.title,
      content: block.content,
      tags: block.tags,
      project_id: block.project_id,
    }).then(
      (saved) => {
        this.saving.delete(blockId);
        this.saves.delete(id);
        // Normally gone already (with the snapshot that showed the block); not if someone
        // deleted the block before this client saw it.
        this.removeTemporaryBlock(id);
        return saved;
      },
      (error: unknown) => {
        this.saving.delete(blockId);
        this.saves.delete(id);
        this.temporary = changeTemporary(this.temporary, id, (b) => ({ ...b, saving: false }));
        this.commit();
        throw error;
      },
    );
    this.saves.set(id, save);
    return save;
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /**
   * Ends the client: the socket closes (another tab takes over if this one led), pending
   * actions reject with code `closed` (one already sent may still have been applied).
   * Resolves once the socket closed and the last cache write finished.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.pending.rejectAll(LibraryError.client("closed", "the client was closed"));
    this.rejectWaiters(LibraryError.client("closed", "the client was closed"));
    this.tabs?.close();
    const session = this.session?.close() ?? Promise.resolve();
    this.closing = session.then(async () => {
      await this.cache?.close().catch(() => {});
    });
    this.listeners.clear();
    return this.closing;
  }

  /**
   * Connects again now, without waiting for the backoff (after `unauthorized`, or for a
   * "retry now" button). In a tab that does not lead, it asks the leader to.
   */
  reconnect(): void {
    if (this.closed) return;
    this.ended = null;
    if (this.session) this.session.reconnect();
    else if (this.tabs?.leading) this.startSession();
    else this.tabs?.post({ t: "reconnect" });
  }

  /**
   * Deletes what Librarian cached in this origin's IndexedDB: every user's and library's copy
   * (what sign-out wants), not only this client's. What is shown stays until `close()`; the
   * next snapshot is cached again unless the client is closed.
   */
  async clearCache(): Promise<void> {
    this.cache?.cancel();
    await this.cache?.flush();
    await clearLibraryCache(this.options.indexedDB ?? globalThis.indexedDB);
  }

  // ---- start -------------------------------------------------------------------------------

  private async start(): Promise<void> {
    const idb = this.options.cache === "indexeddb" ? (this.options.indexedDB ?? globalThis.indexedDB) : undefined;
    const tabs = this.options.shareAcrossTabs ? tabSupport(this.options.locks, this.options.BroadcastChannel) : null;
    let token: string | undefined;
    if (idb || tabs) {
      // The cache and the tab leader are per user, and the user is needed before `hello`.
      try {
        token = await this.options.getToken();
        this.user = tokenSubject(token);
      } catch {
        token = undefined; // the session asks again, and reports it
      }
      if (this.closed) return;
    }
    if (idb && this.user) {
      this.cache = new SnapshotCache(idb, cacheKey(this.url, this.user, this.options.library));
      // Resume from the cached version if the copy comes soon; a stuck IndexedDB (blocked by
      // another tab's upgrade) must not keep the client from connecting.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.showCached(null), new Promise((r) => (timer = setTimeout(r, CACHE_READ_WAIT_MS)))]);
      clearTimeout(timer);
      if (this.closed) return;
    } else if (idb) {
      this.cacheForUser = idb;
    }
    if (tabs && this.user) {
      // A user we cannot name must not share: another user's tab could lead it.
      const name = `librarian:${cacheKey(this.url, this.user, this.options.library)}`;
      this.tabs = new Tabs(name, tabs.locks, tabs.BroadcastChannel, {
        leader: () => this.lead(),
        message: (m) => this.onTabMessage(m),
      });
      this.tabs.post({ t: "ask" });
      for (const frame of this.pending.unanswered()) this.tabs.post({ t: "mutate", frame });
      this.tabs.start();
    } else {
      this.startSession(token);
    }
  }

  /** Shows the cached copy if nothing is shown yet (and, given `libraryId`, only of that library). */
  private async showCached(libraryId: string | null): Promise<void> {
    let entry;
    try {
      entry = await this.cache?.read();
    } catch {
      return; // no IndexedDB after all (private mode, blocked): no cache
    }
    if (!entry || this.closed || this.snapshot !== null) return;
    if (libraryId !== null && entry.libraryId !== libraryId) return;
    this.showSnapshot(entry.snapshot, true);
    this.libraryId = entry.libraryId;
    this.lastSyncedAt = entry.lastSyncedAt;
    this.commit();
  }

  private startSession(token?: string): void {
    if (this.closed) return;
    if (!this.WebSocket) {
      this.setSync({ state: "error", code: "unreachable", message: "no WebSocket: pass the `WebSocket` option", retryAt: null });
      this.commit();
      return;
    }
    this.session = new Session({
      url: this.url,
      library: this.options.library,
      getToken: this.options.getToken,
      WebSocket: this.WebSocket,
      held: this.snapshot,
      patches: this.options.patches !== false,
      ...(this.options.verify ? { verify: this.options.verify } : {}),
      token,
      handlers: {
        hello: (frame) => this.onHello(frame),
        snapshot: (snapshot, checked) => this.onServerSnapshot(snapshot, checked),
        checked: (version) => this.onChecked(version),
        status: (status) => this.onServerStatus(status),
        result: (id, result) => this.onResult(id, result),
        access: (role) => this.onAccess(role),
        presence: (sessions) => this.onPresence(sessions),
      },
      ...(this.options.library ? { libraryGone: (token: string) => this.libraryGone(token) } : {}),
    });
    this.session.start();
    for (const frame of this.pending.unanswered()) this.session.mutate(frame);
  }

  // ---- from the server (this client's own session) ------------------------------------------

  /** Asked by the session after a refused upgrade: does the server say the user is no member? */
  private async libraryGone(token: string): Promise<boolean> {
    const library = this.options.library;
    if (!library) return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const ask = new LibrariesApi({ url: this.url, getToken: () => token }).members(library);
      // A server that does not answer must not hold the reconnect up: no answer is "not gone".
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no answer")), LIBRARY_PROBE_MS);
      });
      await Promise.race([ask, late]);
      return false;
    } catch (e) {
      // Only the server's own word: an older server's "no such route" is no answer.
      return e instanceof LibraryError && e.status === 404 && e.code === "library_not_found";
    } finally {
      clearTimeout(timer);
    }
  }

  private onHello(frame: HelloFrame): void {
    const libraryId = frame.library_id;
    const userId = frame.user_id;
    if (this.helloUser !== null && this.helloUser !== userId) {
      // The provider now gives another user's token. This client's state, cache and queued
      // writes are the first user's: nothing of theirs may reach the other's library (their
      // unacknowledged writes would be resent there). Stop until a token of the first user
      // comes (`reconnect()`); another user wants a client of their own.
      this.session?.halt(
        "unauthorized",
        "the token is for another user than this client's; make a new client for them",
      );
      return;
    }
    this.helloUser = userId;
    // Servers before shared libraries do not say: every library was its user's own.
    this.role = frame.role ?? "owner";
    this.sessionId = frame.session_id;
    if (this.cacheForUser && !this.cache) {
      this.user = userId;
      this.cache = new SnapshotCache(this.cacheForUser, cacheKey(this.url, userId, this.options.library));
      this.cacheForUser = null;
      void this.showCached(libraryId);
    }
    if (this.snapshot !== null && this.libraryId !== null && this.libraryId !== libraryId) {
      // The copy shown is of another library (the server's data was replaced): drop it and
      // load this one whole, without since_version.
      this.snapshot = null;
      this.cached = false;
      this.libraryId = libraryId;
      void this.cache?.remove().catch(() => {});
      this.commit();
      this.relay(true);
      this.session?.reconnect({ dropHeld: true });
      return;
    }
    this.libraryId = libraryId;
    if (this.commit()) this.relay(false);
  }

  private onAccess(role: Role): void {
    this.role = role;
    if (this.commit()) this.relay(false);
  }

  private onPresence(sessions: PresenceSession[]): void {
    this.presence = sessions.length > 0 ? sessions : EMPTY;
    // Empty: the connection ended; the next `hello` names the next session.
    if (sessions.length === 0) this.sessionId = null;
    if (this.commit()) this.relay(false);
  }

  private onServerSnapshot(snapshot: LibrarySnapshot, checked: boolean): void {
    const before = this.snapshot?.version ?? null;
    this.showSnapshot(snapshot, false);
    this.unchecked = !checked;
    if (this.sync.state === "live") this.lastSyncedAt = Date.now();
    this.commit();
    this.settle();
    // The session accepted it, so it is right even if not newer (reset): followers must take it too.
    this.relay(before === null || snapshot.version <= before);
    this.writeCache();
  }

  /** The large library shown at `version` matched its digest: it may be cached now. */
  private onChecked(version: number): void {
    if (this.snapshot?.version !== version || !this.unchecked) return;
    this.unchecked = false;
    this.writeCache();
    this.relay(false);
  }

  private onServerStatus(status: SyncStatus): void {
    // The server repeats `live` after each snapshot (its `version` moved): only a change of
    // state is news here; the snapshot already counted as synced.
    const becameLive = status.state === "live" && (this.sync.state !== "live" || this.cached);
    this.setSync(status);
    if (status.state === "error" && ACCESS_ENDED.has(status.code)) this.accessEnded(status.code, status.message);
    if (becameLive) {
      // E.g. a resume with nothing new: the copy shown is confirmed.
      this.cached = false;
      this.lastSyncedAt = Date.now();
    }
    if (this.commit()) this.relay(false);
    if (becameLive) this.writeCache();
  }

  private onResult(mutationId: string, result: MutationResult): void {
    const follower = this.origins.get(mutationId);
    if (follower !== undefined) {
      this.origins.delete(mutationId);
      this.tabs?.post({ t: "result", to: follower, mutationId, result });
      if (!this.pending.has(mutationId)) return;
    }
    if (result.ok) {
      this.pending.ack(mutationId, { version: result.version, data: result.data }, this.snapshot?.version ?? null);
    } else {
      this.pending.reject(mutationId, new LibraryError(result.problem));
    }
  }

  /**
   * Access to the library ended (revoked, deleted, or never there): what committed resolves,
   * the rest rejects, the cached copy goes (the user may not read it any more).
   */
  private accessEnded(code: string, message: string): void {
    this.role = null;
    this.presence = EMPTY;
    this.sessionId = null;
    this.origins.clear();
    const error = LibraryError.client(code, message, ACCESS_ENDED.get(code) ?? 0);
    this.ended = error;
    this.pending.resolveAcked();
    this.pending.rejectAll(error);
    this.rejectWaiters(error);
    if (this.tabs?.leading !== false) void this.cache?.remove().catch(() => {});
  }

  private writeCache(): void {
    if (!this.cache || !this.snapshot || this.cached || this.unchecked) return;
    this.cache.write({
      snapshot: this.snapshot,
      libraryId: this.libraryId,
      lastSyncedAt: this.lastSyncedAt,
      savedAt: Date.now(),
    });
  }

  // ---- tabs --------------------------------------------------------------------------------

  /** This tab took the lock: it holds the socket now, resuming from what it shows. */
  private lead(): void {
    if (this.closed) return;
    this.tabs?.post({ t: "leader" });
    // Access to the library ended under the last leader: no new session until `reconnect()`.
    if (!this.ended) this.startSession();
    this.relay(true);
  }

  private onTabMessage(m: TabMessage): void {
    const leading = this.tabs?.leading ?? false;
    switch (m.t) {
      case "ask":
        if (leading) this.relay(true, true);
        break;
      case "mutate":
        if (leading) {
          this.origins.set(m.frame.mutation_id, m.from);
          this.session?.mutate(m.frame);
        }
        break;
      case "reconnect":
        if (leading) {
          this.ended = null;
          if (this.session) this.session.reconnect();
          else this.startSession();
        }
        break;
      case "leader":
        // A new leader: whatever the last one had not answered goes to it, same mutation_id.
        for (const frame of this.pending.unanswered()) this.tabs?.post({ t: "mutate", frame });
        break;
      case "result":
        if (m.to === this.tabs?.id) this.onResult(m.mutationId, m.result);
        break;
      case "state":
        if (!leading) this.onRelayedState(m);
        break;
    }
  }

  private onRelayedState(m: Extract<TabMessage, { t: "state" }>): void {
    const held = this.snapshot?.version ?? null;
    if (m.snapshot && (m.force || held === null || m.snapshot.version > held)) {
      this.showSnapshot(m.snapshot, m.cached);
      this.libraryId = m.libraryId;
      // (Should this tab lead later, it does not cache what the leader had not checked.)
      this.unchecked = m.unchecked === true;
    } else if (m.version !== null && m.version === held) {
      if (!m.cached) this.cached = false;
      if (m.unchecked !== true) this.unchecked = false;
    }
    this.setSync(m.status);
    if (m.lastSyncedAt !== null && (this.lastSyncedAt === null || m.lastSyncedAt > this.lastSyncedAt)) {
      this.lastSyncedAt = m.lastSyncedAt;
    }
    // (A leader running an older build of the page sends neither.)
    this.role = m.role ?? null;
    this.sessionId = m.sessionId ?? null;
    this.presence = Array.isArray(m.presence) && m.presence.length > 0 ? m.presence : EMPTY;
    if (m.status.state === "error" && ACCESS_ENDED.has(m.status.code)) {
      if (!this.ended) this.accessEnded(m.status.code, m.status.message);
    } else {
      // The leader started over (`reconnect()`): writes may go again.
      this.ended = null;
    }
    this.commit();
    this.settle();
  }

  /** Leader: tells the other tabs where it stands (with the snapshot when it changed, or `full`). */
  private relay(force: boolean, full = false): void {
    const tabs = this.tabs;
    if (!tabs?.leading || this.closed) return;
    const withSnapshot = full || force || this.snapshot !== this.relayed;
    this.relayed = this.snapshot;
    tabs.post({
      t: "state",
      ...(withSnapshot && this.snapshot ? { snapshot: this.snapshot } : {}),
      force,
      version: this.snapshot?.version ?? null,
      libraryId: this.libraryId,
      status: this.sync,
      cached: this.cached,
      unchecked: this.unchecked,
      lastSyncedAt: this.lastSyncedAt,
      role: this.role,
      sessionId: this.sessionId,
      presence: this.presence,
    });
  }

  // ---- mutations ---------------------------------------------------------------------------

  private write<T>(op: Op, id: string | undefined, data: unknown, options?: WriteOptions): Promise<T> {
    if (this.closed) return Promise.reject(LibraryError.client("closed", "the client was closed"));
    if (this.ended) return Promise.reject(this.ended);
    const frame: MutateFrame = { type: "mutate", mutation_id: uuid(), op };
    if (id !== undefined) frame.id = id;
    if (options?.ifVersion !== undefined) frame.if_version = options.ifVersion;
    // A copy, as sent: the caller may change its object afterwards (and resends must not differ).
    if (data !== undefined) frame.data = JSON.parse(JSON.stringify(data)) as unknown;
    const done = this.pending.add(frame);
    if (this.session) this.session.mutate(frame);
    else if (this.tabs) this.tabs.post({ t: "mutate", frame });
    // else: still starting; sent once the session or the tabs are there
    return done.then((applied: Applied) => {
      this.wrote(applied.version);
      return applied.data as T;
    });
  }

  /** A write of this client committed as `version` (and is shown, unless access ended). */
  private wrote(version: number): void {
    if (this.lastWriteVersion !== null && this.lastWriteVersion >= version) return;
    this.lastWriteVersion = version;
    this.commit();
  }

  // ---- the state ---------------------------------------------------------------------------

  /** Shows `next` (rows equal to the ones shown keep their objects), and drops the temporary blocks it saved. */
  private showSnapshot(next: LibrarySnapshot, fromCache: boolean): void {
    const prev = this.snapshot;
    this.snapshot = {
      version: next.version,
      projects: shareRows(prev?.projects ?? EMPTY, next.projects),
      context_blocks: shareRows(prev?.context_blocks ?? EMPTY, next.context_blocks),
      saved_prompts: shareRows(prev?.saved_prompts ?? EMPTY, next.saved_prompts),
      // Absent from servers (and cached copies) before shared libraries.
      members: shareMembers(prev?.members ?? EMPTY, next.members ?? EMPTY),
    };
    this.cached = fromCache;
    if (this.saving.size > 0) {
      // The same update that first shows a saved block removes its temporary one.
      const ids = new Set(this.snapshot.context_blocks.map((b) => b.id));
      const saved = [...this.saving].filter(([blockId]) => ids.has(blockId)).map(([, tempId]) => tempId);
      this.temporary = withoutTemporary(this.temporary, saved);
    }
  }

  /** Resolves what waited for the version now held: acknowledged writes, member changes. */
  private settle(): void {
    const held = this.snapshot?.version ?? null;
    this.pending.settle(held);
    if (held === null) return;
    for (const w of [...this.versionWaiters]) {
      if (w.version <= held) {
        this.versionWaiters.delete(w);
        w.resolve();
      }
    }
  }

  /** Resolves once the state shows a snapshot at least `version` new. */
  private whenHeld(version: number): Promise<void> {
    if ((this.snapshot?.version ?? -1) >= version && !this.cached) return Promise.resolve();
    if (this.closed) return Promise.reject(LibraryError.client("closed", "the client was closed"));
    return new Promise((resolve, reject) => this.versionWaiters.add({ version, resolve, reject }));
  }

  private rejectWaiters(error: LibraryError): void {
    const all = [...this.versionWaiters];
    this.versionWaiters.clear();
    for (const w of all) w.reject(error);
  }

  /** The library this client is on: the `library` option, else the one `hello` named. */
  private currentLibrary(): string {
    const id = this.options.library ?? this.libraryId;
    if (!id) throw LibraryError.client("loading", "the library is not known yet: wait until the client is loading or live");
    return id;
  }

  private setSync(status: SyncStatus): void {
    if (!sameShallow(status, this.sync)) this.sync = status;
  }

  /** Builds the next state from the fields above; emits (and returns true) only if something changed. */
  private commit(): boolean {
    if (this.closed) return false;
    const s = this.state;
    const snap = this.snapshot;
    const cached = this.cached && snap !== null;
    const status: LibraryStatus =
      s.status.cached === cached && sameShallowExcept(s.status, this.sync, "cached") ? s.status : { ...this.sync, cached };
    const next: LibraryState = {
      version: snap?.version ?? null,
      projects: snap?.projects ?? EMPTY,
      contextBlocks: snap?.context_blocks ?? EMPTY,
      savedPrompts: snap?.saved_prompts ?? EMPTY,
      temporaryBlocks: this.temporary,
      status,
      isLoading: snap === null,
      error: status === s.status ? s.error : status.state === "error" ? statusError(status) : null,
      lastSyncedAt: this.lastSyncedAt,
      lastWriteVersion: this.lastWriteVersion,
      libraryId: this.libraryId,
      role: this.role,
      sessionId: this.sessionId,
      members: snap?.members ?? EMPTY,
      presence: this.presence,
    };
    if ((Object.keys(next) as Array<keyof LibraryState>).every((k) => next[k] === s[k])) return false;
    this.state = next;
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch (e) {
        // One broken listener must not starve the others.
        setTimeout(() => {
          throw e;
        });
      }
    }
    return true;
  }
}

function statusError(status: Extract<LibraryStatus, { state: "error" }>): LibraryError {
  const httpLike = status.code === "database_unavailable" ? 503 : (ACCESS_ENDED.get(status.code) ?? 0);
  return LibraryError.client(status.code, status.message, httpLike);
}

function noTemporary(id: string): LibraryError {
  return LibraryError.client("not_found", `no temporary block ${id}`);
}

/** `next`, or `prev` when it lists the same members with the same roles (keeps the array's identity). */
function shareMembers(prev: MemberRole[], next: MemberRole[]): MemberRole[] {
  const same = prev.length === next.length && prev.every((m, i) => m.user_id === next[i]!.user_id && m.role === next[i]!.role);
  return same ? prev : next;
}

function sameShallow(a: object, b: object): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => (a as never)[k] === (b as never)[k]);
}

function sameShallowExcept(withKey: object, without: object, key: string): boolean {
  const ka = Object.keys(withKey).filter((k) => k !== key);
  return ka.length === Object.keys(without).length && ka.every((k) => (withKey as never)[k] === (without as never)[k]);
}
