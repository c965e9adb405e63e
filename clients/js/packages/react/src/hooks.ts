import { useCallback, useContext, useDebugValue, useEffect, useMemo, useRef, useSyncExternalStore } from "react";
import {
  LibraryList,
  countDelivered,
  type LibraryClient,
  type LibraryInfo,
  type LibraryListState,
  type LibraryState,
} from "@librarian/client";
import { LibraryContext, useLibraryClient } from "./provider.js";

/** The names of the client's actions that `useLibrary()` hands out, bound to the client. */
export const ACTION_NAMES = [
  "createContextBlock",
  "updateContextBlock",
  "deleteContextBlock",
  "createSavedPrompt",
  "updateSavedPrompt",
  "deleteSavedPrompt",
  "createProject",
  "updateProject",
  "deleteProject",
  "addTemporaryBlock",
  "updateTemporaryBlock",
  "removeTemporaryBlock",
  "saveTemporaryBlock",
  "setMember",
  "removeMember",
  "deliveredTo",
] as const;

export type LibraryActionName = (typeof ACTION_NAMES)[number];

/** The client's actions, each bound to it (same signatures). */
export type LibraryActions = Pick<LibraryClient, LibraryActionName>;

/** What `useLibrary()` returns: the client's state and its actions. */
export type UseLibraryResult = LibraryState & LibraryActions;

function useStore(client: LibraryClient) {
  // Wrapped so that it does not matter whether the client's methods are bound.
  const subscribe = useCallback((onChange: () => void) => client.subscribe(onChange), [client]);
  const getState = useCallback(() => client.getState(), [client]);
  return { subscribe, getState };
}

const actionsCache = new WeakMap<LibraryClient, LibraryActions>();

/** The client's actions bound to it: the same object (and functions) for the client's lifetime. */
export function bindActions(client: LibraryClient): LibraryActions {
  let actions = actionsCache.get(client);
  if (!actions) {
    const bound: Record<string, unknown> = {};
    for (const name of ACTION_NAMES) {
      const method = client[name] as (...args: unknown[]) => unknown;
      bound[name] = (...args: unknown[]) => method.apply(client, args);
    }
    actions = Object.freeze(bound) as unknown as LibraryActions;
    actionsCache.set(client, actions);
  }
  return actions;
}

/**
 * The whole library and the actions: `projects`, `contextBlocks`, `savedPrompts`,
 * `temporaryBlocks`, `status`, `isLoading`, `error`, `lastSyncedAt` (and `version`), plus
 * `createContextBlock`, … `saveTemporaryBlock` with stable identities. Re-renders on every change
 * of the client's state; use `useLibrarySelector` for a slice.
 */
export function useLibrary(): UseLibraryResult {
  const client = useLibraryClient();
  const { subscribe, getState } = useStore(client);
  const state = useSyncExternalStore(subscribe, getState, getState);
  const actions = bindActions(client);
  useDebugValue(state.status.state);
  return useMemo(() => ({ ...state, ...actions }), [state, actions]);
}

/** The actions alone: a component that only writes never re-renders on a snapshot. */
export function useLibraryActions(): LibraryActions {
  return bindActions(useLibraryClient());
}

/**
 * A slice of the client's state. The component re-renders only when `isEqual(previous, next)`
 * is false (default `Object.is`; pass `shallowEqual` for a selector that builds a new array or
 * object). The selector may be an inline function.
 */
export function useLibrarySelector<T>(
  selector: (state: LibraryState) => T,
  isEqual: (a: T, b: T) => boolean = Object.is,
): T {
  const client = useLibraryClient();
  const { subscribe } = useStore(client);

  // The last selection this component committed: a new (inline) selector function is compared
  // against it, so that a re-render for another reason does not hand out a new but equal value.
  const committed = useRef<{ value: T } | null>(null);

  // Memoized per (client, selector, isEqual), as React's own useSyncExternalStoreWithSelector:
  // getSnapshot must return the same value while the state is the same object.
  const getSelection = useMemo(() => {
    let memo: { state: LibraryState; value: T } | null = null;
    return (): T => {
      const state = client.getState();
      if (memo && memo.state === state) return memo.value;
      const next = selector(state);
      const previous = memo ?? (committed.current ? { value: committed.current.value } : null);
      const value = previous && isEqual(previous.value, next) ? previous.value : next;
      memo = { state, value };
      return value;
    };
  }, [client, selector, isEqual]);

  const value = useSyncExternalStore(subscribe, getSelection, getSelection);
  useEffect(() => {
    committed.current = { value };
  }, [value]);
  useDebugValue(value);
  return value;
}

/** Equality of arrays element by element and of plain objects key by key (`Object.is`). */
export function shallowEqual<T>(a: T, b: T): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const rb = b as Record<string, unknown>;
  const ra = a as Record<string, unknown>;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(rb, k) && Object.is(ra[k], rb[k]));
}

/**
 * Equality of two lists of rows by `id` and `version` (a row's version grows with every write),
 * for selectors of lists, whatever the client does with the identity of unchanged rows. Items
 * without a numeric `version` (temporary blocks) are compared with `Object.is`.
 */
export function sameRows<T extends { id: string }>(a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as T & { version?: unknown };
    const y = b[i] as T & { version?: unknown };
    if (x === y) continue;
    if (typeof x.version !== "number" || x.id !== y.id || x.version !== y.version) return false;
  }
  return true;
}

/**
 * The delivery receipt of `version` (e.g. `lastWriteVersion` after a save): `{held, total}`,
 * the sessions on the library holding it or newer, out of all open. Re-renders only when one
 * of the two numbers changes; null for a null version.
 */
export function useDeliveredTo(version: number | null | undefined): { held: number; total: number } | null {
  return useLibrarySelector(
    (s) => (version === null || version === undefined ? null : countDelivered(s.presence, version)),
    shallowEqual,
  );
}

/** Where `useLibraries` finds the server, if not from the nearest `<LibraryProvider>`'s client. */
export interface UseLibrariesOptions {
  /** The server's http(s) origin (with `getToken`; default: the provider's client's). */
  url?: string;
  getToken?: () => string | Promise<string>;
  /** How often to fetch the list while mounted (ms, default 5000; 0: on demand only). */
  pollIntervalMs?: number;
}

/** What `useLibraries()` returns: the list's state and what changes it. */
export interface UseLibrariesResult extends LibraryListState {
  /** Fetches the list now. */
  refresh(): Promise<void>;
  /** A new library owned by the caller; resolves once the list shows it. */
  createLibrary(name: string): Promise<LibraryInfo>;
  renameLibrary(libraryId: string, name: string): Promise<LibraryInfo>;
  /** Deletes a library (owner; not their default one). */
  deleteLibrary(libraryId: string): Promise<void>;
  /** The list itself (its `api` has members too). */
  list: LibraryList;
}

/**
 * The caller's libraries (`GET /libraries`), for a library switcher: fetched on mount, every
 * `pollIntervalMs` while mounted (the server pushes no change of this list), when the page
 * becomes visible, and after each change made here. Works outside a `<LibraryProvider>` given
 * `url` and `getToken` (a switcher usually sits above the provider it switches).
 */
export function useLibraries(options: UseLibrariesOptions = {}): UseLibrariesResult {
  const context = useContext(LibraryContext);
  const url = options.url ?? (context ? context.api.url : undefined);
  if (!url) throw new Error("useLibraries needs `url` and `getToken`, or a <LibraryProvider> above it");
  // The latest getToken: a new arrow function on every render does not mean a new list.
  const getToken = useRef(options.getToken);
  getToken.current = options.getToken;
  const clientToken = context ? context.api.getToken : undefined;
  const fallback = useRef(clientToken);
  fallback.current = clientToken;
  const pollIntervalMs = options.pollIntervalMs;

  const list = useMemo(
    () =>
      new LibraryList(
        {
          url,
          getToken: () => {
            const provider = getToken.current ?? fallback.current;
            if (!provider) throw new Error("useLibraries: no getToken");
            return provider();
          },
        },
        pollIntervalMs === undefined ? {} : { pollIntervalMs },
      ),
    [url, pollIntervalMs],
  );
  // No close on unmount: the list fetches only while subscribed, and unsubscribing stops it.
  const state = useSyncExternalStore(list.subscribe, list.getState, list.getState);
  const refresh = useCallback(() => list.refresh(), [list]);
  const createLibrary = useCallback((name: string) => list.create(name), [list]);
  const renameLibrary = useCallback((id: string, name: string) => list.rename(id, name), [list]);
  const deleteLibrary = useCallback((id: string) => list.delete(id), [list]);
  useDebugValue(state.libraries.length);
  return useMemo(
    () => ({ ...state, refresh, createLibrary, renameLibrary, deleteLibrary, list }),
    [state, refresh, createLibrary, renameLibrary, deleteLibrary, list],
  );
}
