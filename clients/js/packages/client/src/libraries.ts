/**
 * The REST side of shared libraries (DESIGN §9): the caller's libraries and their members.
 * Plain HTTP calls on the same `url` and `getToken` as a `LibraryClient` (which hands one out
 * as `client.api`); the library's rows themselves change through a client's socket.
 *
 * ```ts
 * const api = new LibrariesApi({ url: location.origin, getToken: () => auth.token() });
 * const team = await api.create("Team prompts");
 * await api.setMember(team.id, "bob", "editor");
 * const client = new LibraryClient({ url, getToken, library: team.id });
 * ```
 *
 * Every call asks `getToken()` for its token, and rejects with a `LibraryError` carrying the
 * server's problem document (404 `library_not_found` for a library the caller is not a member
 * of, 403 `forbidden` for a role that may not, 409 `conflict` for the owner's own membership or
 * default library), or the client's own `unreachable` (status 0) when no answer came.
 */

import { LibraryError, toProblem } from "./errors.js";
import type {
  LibraryInfo,
  LibraryListBody,
  LibraryName,
  LibraryReply,
  Member,
  MemberList,
  MemberReply,
  MemberRoleBody,
  Role,
} from "./wire.js";

/** Where the server is and how to sign the requests: the same two as `LibraryClientOptions`. */
export interface ApiOptions {
  /** The server's http(s) origin. */
  url: string;
  /** Called for every request (a fixed token is `() => token`). */
  getToken: () => string | Promise<string>;
  /** A `fetch` implementation (default the global one). */
  fetch?: typeof fetch;
}

/** A member added or changed: the member, whether it is new (201), and the library version it made. */
export interface MemberChange {
  member: Member;
  created: boolean;
  libraryVersion: number;
}

/** A membership removed or a library deleted: the library version the commit produced. */
export interface Removal {
  libraryVersion: number;
}

export class LibrariesApi {
  /** The server's origin, as given. */
  readonly url: string;
  /** The token provider, as given. */
  readonly getToken: () => string | Promise<string>;
  private readonly base: string;
  private readonly fetchImpl: typeof fetch | undefined;

  constructor(options: ApiOptions) {
    if (!options || typeof options.url !== "string" || !/^https?:\/\//.test(options.url)) {
      throw new TypeError("LibrariesApi: `url` must be the server's http(s) origin");
    }
    if (typeof options.getToken !== "function") {
      throw new TypeError("LibrariesApi: `getToken` must be a function returning a token");
    }
    this.url = options.url;
    this.base = options.url.endsWith("/") ? options.url : `${options.url}/`;
    this.getToken = options.getToken;
    this.fetchImpl = options.fetch;
  }

  /** `GET /libraries`: every library the caller is a member of, their own (default) one first, then by name. */
  async list(): Promise<LibraryInfo[]> {
    const { body } = await this.call<LibraryListBody>("GET", "libraries");
    return body.libraries;
  }

  /** `POST /libraries`: a new library owned by the caller. */
  async create(name: string): Promise<LibraryInfo> {
    const { body } = await this.call<LibraryReply>("POST", "libraries", { name } satisfies LibraryName);
    return body.data;
  }

  /** `PATCH /libraries/{id}` (owner). */
  async rename(libraryId: string, name: string): Promise<LibraryInfo> {
    const { body } = await this.call<LibraryReply>("PATCH", `libraries/${seg(libraryId)}`, { name } satisfies LibraryName);
    return body.data;
  }

  /** `DELETE /libraries/{id}` (owner; not their default library: 409). Its sessions are revoked. */
  async delete(libraryId: string): Promise<Removal> {
    const { body } = await this.call<MemberReply>("DELETE", `libraries/${seg(libraryId)}`);
    return { libraryVersion: body.library_version };
  }

  /** `GET /libraries/{id}/members` (any member). */
  async members(libraryId: string): Promise<Member[]> {
    const { body } = await this.call<MemberList>("GET", `libraries/${seg(libraryId)}/members`);
    return body.members;
  }

  /** `PUT /libraries/{id}/members/{user}` (owner): adds `userId` with `role`, or changes their role. */
  async setMember(libraryId: string, userId: string, role: Exclude<Role, "owner">): Promise<MemberChange> {
    const { status, body } = await this.call<MemberReply>("PUT", `libraries/${seg(libraryId)}/members/${seg(userId)}`, {
      role,
    } satisfies MemberRoleBody);
    if (!body.data) throw LibraryError.client("rejected", "the server answered no member");
    return { member: body.data, created: status === 201, libraryVersion: body.library_version };
  }

  /**
   * `DELETE /libraries/{id}/members/{user}`: the owner removes a member, or a member leaves
   * (their own user id). Their sessions on the library end with `access_revoked`.
   */
  async removeMember(libraryId: string, userId: string): Promise<Removal> {
    const { body } = await this.call<MemberReply>("DELETE", `libraries/${seg(libraryId)}/members/${seg(userId)}`);
    return { libraryVersion: body.library_version };
  }

  private async call<T>(method: string, path: string, json?: unknown): Promise<{ status: number; body: T }> {
    let token: string;
    try {
      token = await this.getToken();
    } catch (e) {
      throw LibraryError.client("unauthorized", `getToken failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: "application/json" };
    if (json !== undefined) headers["content-type"] = "application/json";
    const fetchImpl = this.fetchImpl ?? globalThis.fetch;
    let res: Response;
    try {
      res = await fetchImpl(new URL(`api/v1/${path}`, this.base), {
        method,
        headers,
        ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
      });
    } catch (e) {
      throw LibraryError.client("unreachable", `could not reach the server: ${e instanceof Error ? e.message : String(e)}`);
    }
    const body: unknown = await res.json().catch(() => null);
    if (!res.ok) {
      const problem = toProblem(body);
      throw new LibraryError({
        ...problem,
        status: problem.status || res.status,
        ...(problem.detail ? {} : { detail: `${method} /api/v1/${path}: HTTP ${res.status}` }),
      });
    }
    return { status: res.status, body: body as T };
  }
}

/** One path segment (user ids are free text). */
function seg(value: string): string {
  return encodeURIComponent(value);
}

/**
 * The delivery receipt of `version` in a presence list: how many sessions on the library hold
 * it or newer (`held`), out of how many are open (`total`).
 */
export function countDelivered(
  sessions: ReadonlyArray<{ seen_version: number | null }>,
  version: number,
): { held: number; total: number } {
  let held = 0;
  for (const s of sessions) if (s.seen_version !== null && s.seen_version >= version) held += 1;
  return { held, total: sessions.length };
}
