/**
 * The IndexedDB copy of the library (`cache: "indexeddb"`): one entry per url + user +
 * library in the object store `snapshots` of the database `librarian`. Read once at start
 * (shown at once, marked cached, resumed from); written after each accepted snapshot or live
 * status, coalesced: at most one write in flight, and only the latest waiting one goes next.
 */

import type { LibrarySnapshot } from "./wire.js";

const DB_NAME = "librarian";
const DB_VERSION = 1;
const STORE = "snapshots";

export interface CacheEntry {
  snapshot: LibrarySnapshot;
  /** The library the snapshot is of (from `hello`): another one on reconnect is dropped. */
  libraryId: string | null;
  lastSyncedAt: number | null;
  savedAt: number;
}

/** The key of one library's entry. */
export function cacheKey(url: string, user: string, library: string | undefined): string {
  return JSON.stringify([url, user, library ?? null]);
}

function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function committed(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

function open(idb: IDBFactory): Promise<IDBDatabase> {
  const request = idb.open(DB_NAME, DB_VERSION);
  request.onupgradeneeded = () => {
    if (!request.result.objectStoreNames.contains(STORE)) request.result.createObjectStore(STORE);
  };
  return done(request);
}

export class SnapshotCache {
  private readonly idb: IDBFactory;
  private readonly key: string;
  private db: Promise<IDBDatabase> | null = null;
  private writing: Promise<void> | null = null;
  private next: CacheEntry | null = null;

  constructor(idb: IDBFactory, key: string) {
    this.idb = idb;
    this.key = key;
  }

  private database(): Promise<IDBDatabase> {
    if (!this.db) {
      this.db = open(this.idb);
      // Another tab upgrading (a later version of this code) must not be blocked by us.
      void this.db.then((db) => (db.onversionchange = () => db.close())).catch(() => {});
    }
    return this.db;
  }

  async read(): Promise<CacheEntry | undefined> {
    const db = await this.database();
    const value: unknown = await done(db.transaction(STORE, "readonly").objectStore(STORE).get(this.key));
    return isEntry(value) ? value : undefined;
  }

  /** Writes `entry` soon: after the write in flight, if any, replacing any other waiting one. */
  write(entry: CacheEntry): void {
    this.next = entry;
    if (!this.writing) this.writing = this.drain();
  }

  async remove(): Promise<void> {
    this.next = null;
    await this.flush();
    const db = await this.database();
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).delete(this.key);
    await committed(tx);
  }

  /** Resolves once nothing is written or waiting. */
  flush(): Promise<void> {
    return this.writing ?? Promise.resolve();
  }

  /** Drops a waiting write (the one in flight finishes). */
  cancel(): void {
    this.next = null;
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.db) (await this.db.catch(() => null))?.close();
    this.db = null;
  }

  private async drain(): Promise<void> {
    try {
      while (this.next) {
        const entry = this.next;
        this.next = null;
        try {
          const db = await this.database();
          const tx = db.transaction(STORE, "readwrite");
          tx.objectStore(STORE).put(entry, this.key);
          await committed(tx);
        } catch {
          // Quota, private mode, a closed database: the cache is an optimisation, never an error.
        }
      }
    } finally {
      this.writing = null;
    }
  }
}

/**
 * Deletes every library Librarian cached in this origin's IndexedDB: all users, all
 * libraries (what sign-out wants). Other IndexedDB data of the app is left alone.
 */
export async function clearLibraryCache(idb: IDBFactory | undefined = globalThis.indexedDB): Promise<void> {
  if (!idb) return;
  const db = await open(idb);
  try {
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).clear();
    await committed(tx);
  } finally {
    db.close();
  }
}

function isEntry(value: unknown): value is CacheEntry {
  if (!value || typeof value !== "object") return false;
  const s = (value as { snapshot?: Partial<LibrarySnapshot> }).snapshot;
  return (
    !!s &&
    typeof s.version === "number" &&
    Array.isArray(s.projects) &&
    Array.isArray(s.context_blocks) &&
    Array.isArray(s.saved_prompts)
  );
}
