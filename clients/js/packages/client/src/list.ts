/**
 * `LibraryList`: the caller's libraries (`GET /libraries`) as a small store with the same
 * `getState` / `subscribe` shape as `LibraryClient`, for a library switcher.
 *
 * The server pushes nothing when the user is added to (or removed from) another library: a
 * session is on one library. So the list is fetched when the first listener subscribes, again
 * every `pollIntervalMs` while anyone listens (default 5 s), when the page becomes visible or
 * the browser comes back online, and after each change made through it (`create`, `rename`,
 * `delete`). The state keeps its identity while nothing changed.
 */

import { LibraryError } from "./errors.js";
import { LibrariesApi, type ApiOptions } from "./libraries.js";
import type { LibraryInfo } from "./wire.js";

export interface LibraryListState {
  /** The caller's libraries: their own (default) one first, then by name; `[]` before the first answer. */
  libraries: LibraryInfo[];
  /** No answer yet. */
  isLoading: boolean;
  /** The last fetch failed (the list shown is the one before); null once one succeeds. */
  error: LibraryError | null;
}

export interface LibraryListOptions {
  /** How often to fetch the list while subscribed (ms); 0: only on demand. Default 5000. */
  pollIntervalMs?: number;
}

const DEFAULT_POLL_MS = 5000;

export class LibraryList {
  readonly api: LibrariesApi;
  private state: LibraryListState = { libraries: [], isLoading: true, error: null };
  private readonly listeners = new Set<() => void>();
  private readonly pollMs: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inFlight: Promise<void> | null = null;
  /** A fetch was asked for while one was in flight: one more follows it. */
  private again = false;
  private readonly onWake = () => {
    const doc = (globalThis as { document?: { visibilityState?: string } }).document;
    if (doc?.visibilityState !== "hidden") void this.refresh();
  };

  constructor(api: LibrariesApi | ApiOptions, options: LibraryListOptions = {}) {
    this.api = api instanceof LibrariesApi ? api : new LibrariesApi(api);
    this.pollMs = options.pollIntervalMs ?? DEFAULT_POLL_MS;
  }

  getState = (): LibraryListState => this.state;

  /** Listens for changes; the first listener starts the fetching, the last one to leave stops it. */
  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.wake();
    return () => {
      if (!this.listeners.delete(listener) || this.listeners.size > 0) return;
      this.sleep();
    };
  };

  /** Fetches the list now (resolves when this fetch, or the one in flight and one after it, ended). */
  refresh(): Promise<void> {
    if (this.inFlight) {
      this.again = true;
      return this.inFlight;
    }
    clearTimeout(this.timer);
    this.inFlight = this.fetch().finally(() => {
      this.inFlight = null;
      if (this.again) {
        this.again = false;
        void this.refresh();
      } else {
        this.schedule();
      }
    });
    return this.inFlight;
  }

  /** Creates a library (owned by the caller) and resolves once the list shows it. */
  async create(name: string): Promise<LibraryInfo> {
    const made = await this.api.create(name);
    await this.refresh();
    return made;
  }

  async rename(libraryId: string, name: string): Promise<LibraryInfo> {
    const renamed = await this.api.rename(libraryId, name);
    await this.refresh();
    return renamed;
  }

  async delete(libraryId: string): Promise<void> {
    await this.api.delete(libraryId);
    await this.refresh();
  }

  /** Stops fetching and forgets the listeners (a later `subscribe` starts again). */
  close(): void {
    this.sleep();
    this.listeners.clear();
  }

  private async fetch(): Promise<void> {
    try {
      const libraries = await this.api.list();
      const same = sameList(this.state.libraries, libraries);
      this.set({ libraries: same ? this.state.libraries : libraries, isLoading: false, error: null });
    } catch (e) {
      const error = e instanceof LibraryError ? e : LibraryError.client("unreachable", String(e));
      this.set({ ...this.state, isLoading: false, error });
    }
  }

  private set(next: LibraryListState): void {
    const s = this.state;
    if (next.libraries === s.libraries && next.isLoading === s.isLoading && next.error === s.error) return;
    if (next.error && s.error && next.error.code === s.error.code && next.error.message === s.error.message) next.error = s.error;
    if (next.libraries === s.libraries && next.isLoading === s.isLoading && next.error === s.error) return;
    this.state = next;
    for (const listener of [...this.listeners]) listener();
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (this.listeners.size === 0 || this.pollMs <= 0) return;
    this.timer = setTimeout(() => void this.refresh(), this.pollMs);
  }

  private wake(): void {
    const { window, document } = events();
    window?.addEventListener?.("online", this.onWake);
    document?.addEventListener?.("visibilitychange", this.onWake);
    void this.refresh();
  }

  private sleep(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const { window, document } = events();
    window?.removeEventListener?.("online", this.onWake);
    document?.removeEventListener?.("visibilitychange", this.onWake);
  }
}

type Target = { addEventListener?: (type: string, fn: () => void) => void; removeEventListener?: (type: string, fn: () => void) => void };

/** The global object (`online`) and the document (`visibilitychange`), where there are such. */
function events(): { window: Target; document: Target | undefined } {
  return { window: globalThis as Target, document: (globalThis as { document?: Target }).document };
}

function sameList(a: LibraryInfo[], b: LibraryInfo[]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i]!;
      return x.id === y.id && x.name === y.name && x.role === y.role && x.version === y.version && x.owner_id === y.owner_id;
    })
  );
}
