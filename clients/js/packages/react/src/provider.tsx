import { createContext, useContext, useLayoutEffect, useRef, useState, type ReactNode } from "react";
import { LibraryClient, type LibraryClientOptions } from "@librarian/client";

/** The client the nearest `<LibraryProvider>` holds. */
export const LibraryContext = createContext<LibraryClient | null>(null);
LibraryContext.displayName = "LibraryContext";

export type LibraryProviderProps =
  | {
      /** A client you created (and will `close()` yourself). */
      client: LibraryClient;
      options?: never;
      children?: ReactNode;
    }
  | {
      /**
       * Options for a client the provider creates on mount and closes on unmount. It makes a new
       * client only when an option other than `getToken` changes (compared one by one, so an
       * inline object literal is fine); `getToken` may be a new function on every render (the
       * latest one is called).
       */
      options: LibraryClientOptions;
      client?: never;
      /** Shown until the provider's own client exists (one layout pass, before the first paint). */
      fallback?: ReactNode;
      children?: ReactNode;
    };

/** Makes a Librarian client available to `useLibrary()`, `useLibrarySelector()` and `useLibraryClient()`. */
export function LibraryProvider(props: LibraryProviderProps): ReactNode {
  if (props.client) {
    return <LibraryContext.Provider value={props.client}>{props.children}</LibraryContext.Provider>;
  }
  const { options, fallback, children } = props as Extract<LibraryProviderProps, { options: LibraryClientOptions }>;
  return (
    <OwnClientProvider options={options} fallback={fallback}>
      {children}
    </OwnClientProvider>
  );
}

interface Owned {
  client: LibraryClient;
  key: readonly unknown[];
  closeTimer: ReturnType<typeof setTimeout> | null;
}

/**
 * Every option but `getToken`, by name: a change in any of them means a new client. A plain
 * object (`verify`) counts by its fields, so that an inline literal is the same option.
 */
function optionsKey(options: LibraryClientOptions): unknown[] {
  const record = options as unknown as Record<string, unknown>;
  return Object.keys(record)
    .filter((name) => name !== "getToken" && record[name] !== undefined)
    .sort()
    .flatMap((name) => [name, ...valueKey(record[name])]);
}

function valueKey(value: unknown): unknown[] {
  if (value === null || typeof value !== "object" || Object.getPrototypeOf(value) !== Object.prototype) return [value];
  const fields = value as Record<string, unknown>;
  const names = Object.keys(fields).sort();
  return ["{", names.length, ...names.flatMap((name) => [name, fields[name]]), "}"];
}

function sameKey(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
}

function OwnClientProvider({
  options,
  fallback = null,
  children,
}: {
  options: LibraryClientOptions;
  fallback?: ReactNode;
  children?: ReactNode;
}): ReactNode {
  // The latest getToken, so that a new arrow function on every render does not mean a new client.
  const getToken = useRef(options.getToken);
  getToken.current = options.getToken;

  const owned = useRef<Owned | null>(null);
  const [client, setClient] = useState<LibraryClient | null>(null);
  // The same array for as long as the options are equal one by one: the effect's dependency.
  const lastKey = useRef<unknown[]>([]);
  const fresh = optionsKey(options);
  if (!sameKey(lastKey.current, fresh)) lastKey.current = fresh;
  const key = lastKey.current;

  // The client is made in an effect, never during render: a render may be discarded (concurrent
  // rendering) or run twice (StrictMode), and the constructor opens a connection. A layout effect
  // so that children appear before the first paint.
  useLayoutEffect(() => {
    const held = owned.current;
    if (held && sameKey(held.key, key)) {
      // StrictMode's simulated unmount and remount: keep the client instead of reconnecting.
      if (held.closeTimer !== null) clearTimeout(held.closeTimer);
      held.closeTimer = null;
      setClient(held.client);
    } else {
      const created = new LibraryClient({ ...options, getToken: () => getToken.current() });
      owned.current = { client: created, key, closeTimer: null };
      setClient(created);
    }
    const mine = owned.current!;
    return () => {
      // Closed a moment later unless this effect runs again with the same options at once.
      mine.closeTimer = setTimeout(() => {
        mine.client.close();
        if (owned.current === mine) owned.current = null;
      }, 0);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the key stands for the options
  }, [key]);

  if (!client) return fallback;
  return <LibraryContext.Provider value={client}>{children}</LibraryContext.Provider>;
}

/** The client of the nearest `<LibraryProvider>`; throws outside one. */
export function useLibraryClient(): LibraryClient {
  const client = useContext(LibraryContext);
  if (!client) throw new Error("useLibraryClient/useLibrary/useLibrarySelector need a <LibraryProvider> above them");
  return client;
}
