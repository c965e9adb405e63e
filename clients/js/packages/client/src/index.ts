/**
 * @librarian/client: the library of a Librarian server, live over one WebSocket.
 *
 * ```ts
 * import { LibraryClient } from "@librarian/client";
 * const client = new LibraryClient({ url: location.origin, getToken: () => auth.token() });
 * client.subscribe(() => render(client.getState()));
 * await client.createContextBlock({ title: "Tone", content: "Be brief." });
 * ```
 *
 * Importing has no side effects: nothing connects until a client is constructed.
 */

export { LibraryClient } from "./client.js";
export { LibraryError, type ClientErrorCode } from "./errors.js";
export { clearLibraryCache } from "./cache.js";
export { LibrariesApi, countDelivered, type ApiOptions, type MemberChange, type Removal } from "./libraries.js";
export { LibraryList, type LibraryListOptions, type LibraryListState } from "./list.js";
export { devToken } from "./dev.js";
export type {
  BroadcastChannelConstructor,
  LibraryClientOptions,
  LibraryState,
  LibraryStatus,
  LockManagerLike,
  SyncStatus,
  TemporaryBlock,
  TemporaryBlockFields,
  WebSocketConstructor,
  WebSocketLike,
  WriteOptions,
} from "./types.js";
export * from "./wire.js";
