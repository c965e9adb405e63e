/**
 * React bindings of Librarian (DESIGN §12): `<LibraryProvider>`, `useLibrary()`,
 * `useLibrarySelector()` and `useLibraryClient()`, on `useSyncExternalStore` with the client's
 * own `subscribe` / `getState`.
 */
export { LibraryProvider, LibraryContext, useLibraryClient, type LibraryProviderProps } from "./provider.js";
export {
  useLibrary,
  useLibraryActions,
  useLibrarySelector,
  useDeliveredTo,
  useLibraries,
  shallowEqual,
  sameRows,
  bindActions,
  ACTION_NAMES,
  type LibraryActionName,
  type LibraryActions,
  type UseLibraryResult,
  type UseLibrariesOptions,
  type UseLibrariesResult,
} from "./hooks.js";
