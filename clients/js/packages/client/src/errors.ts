/**
 * `LibraryError`: what every rejected action and every `error` status carries. For a refused
 * mutation it wraps the server's problem document (RFC 9457) as is; for the client's own
 * failures (closed, connection lost, …) it is a problem document of the same shape with
 * `status` 0.
 */

import type { Entity, FieldError, Problem } from "./wire.js";

/** Codes of the client's own problems (the server's are its `code`s, e.g. `validation`). */
export type ClientErrorCode =
  /** `close()` was called while the action was pending. */
  | "closed"
  /** The connection dropped; the client is reconnecting. */
  | "connection_lost"
  /** The server could not be reached (or refused the connection, e.g. 401); retrying. */
  | "unreachable"
  /** The session's token expired (close 4401); reconnecting with a new token. */
  | "token_expired"
  /** `getToken()` failed: the client stopped (call `reconnect()` once signed in again). */
  | "unauthorized"
  /** The user was removed from the library, or it was deleted (close 4403): the client stopped. */
  | "access_revoked"
  /** The `library` option names a library the user is not a member of: the client stopped. */
  | "library_not_found"
  /** A temporary block that does not exist (any more). */
  | "not_found";

export class LibraryError extends Error {
  /** The problem document: the server's, or the client's own (see `ClientErrorCode`). */
  readonly problem: Problem;
  /** HTTP-like status: the server's (422, 412, 404, 503, …), 0 for the client's own problems. */
  readonly status: number;
  /** e.g. `validation`, `version_mismatch`, `not_found`, `closed`, `connection_lost`. */
  readonly code: string;
  /** For validation problems: every broken rule, by field (`title`, `tags[3]`, …). */
  readonly fieldErrors: FieldError[];
  /** The same as a map, field → message (the first message of each field). */
  readonly fields: Readonly<Record<string, string>>;
  /** For a 412 (`ifVersion` mismatch): the row as it is now. */
  readonly current: Entity | null;

  constructor(problem: Problem) {
    super(problem.detail || problem.title || problem.code || "rejected");
    this.name = "LibraryError";
    this.problem = problem;
    this.status = problem.status;
    this.code = problem.code;
    this.fieldErrors = problem.errors ?? [];
    const fields: Record<string, string> = {};
    for (const e of this.fieldErrors) if (!(e.field in fields)) fields[e.field] = e.message;
    this.fields = fields;
    this.current = problem.current ?? null;
  }

  /** One of the client's own problems. */
  static client(code: ClientErrorCode | string, detail: string, status = 0): LibraryError {
    return new LibraryError({
      type: `urn:librarian:problem:${code}`,
      title: code.replace(/_/g, " "),
      status,
      detail,
      code,
    });
  }
}

/** Reads a problem document out of whatever the server sent (defensive: it is untrusted JSON). */
export function toProblem(value: unknown): Problem {
  if (value && typeof value === "object") {
    const p = value as Partial<Problem>;
    return {
      type: typeof p.type === "string" ? p.type : "about:blank",
      title: typeof p.title === "string" ? p.title : "rejected",
      status: typeof p.status === "number" ? p.status : 0,
      detail: typeof p.detail === "string" ? p.detail : "",
      code: typeof p.code === "string" ? p.code : "rejected",
      ...(Array.isArray(p.errors) ? { errors: p.errors } : {}),
      ...(p.current !== undefined ? { current: p.current } : {}),
    };
  }
  return { type: "about:blank", title: "rejected", status: 0, detail: "", code: "rejected" };
}
