/**
 * The wire's types: REST bodies and WebSocket frames, by the names the rest of the client uses.
 *
 * Every one is an alias of a type generated from the server's own OpenAPI document
 * (`./generated/openapi.ts`, by `npm run generate` in clients/js; CI fails when it drifts from
 * what the built server serves), so a change on the server shows up here as a type error.
 */
import type { components } from "./generated/openapi.js";

type Schemas = components["schemas"];

/** RFC 3339 timestamp, UTC, millisecond precision. */
export type Timestamp = Schemas["Timestamp"];

export type Project = Schemas["Project"];
export type ContextBlock = Schemas["ContextBlock"];
export type SavedPrompt = Schemas["SavedPrompt"];
/** Any one row, exactly as the row itself. */
export type Entity = Schemas["Entity"];

/** The whole library at `version` (each list in a deterministic order). */
export type LibrarySnapshot = Schemas["LibrarySnapshot"];

export type NewProject = Schemas["NewProject"];
/** Absent = unchanged; `null` clears an optional field. */
export type ProjectPatch = Schemas["ProjectPatch"];
export type NewContextBlock = Schemas["NewContextBlock"];
export type ContextBlockPatch = Schemas["ContextBlockPatch"];
export type NewSavedPrompt = Schemas["NewSavedPrompt"];
export type SavedPromptPatch = Schemas["SavedPromptPatch"];

export type FieldError = Schemas["FieldError"];
/** An RFC 9457 problem document, as HTTP sends it and as `reject.error` carries it. */
export type Problem = Schemas["Problem"];
/** `{"data": <entity or null>, "library_version": v}`: the HTTP mutation reply. */
export type MutationReply = Schemas["MutationReply"];

export type Op = Schemas["Op"];

// ---- shared libraries (DESIGN §9) ----------------------------------------------------------

/** `owner` (exactly one; everything, members too), `editor` (every mutation), `viewer` (read only). */
export type Role = Schemas["Role"];
/** One member as the snapshot lists them (`members`, sorted by user id). */
export type MemberRole = Schemas["MemberRole"];
/** One session on the library, as `presence` lists it (`seen_version` null before its first `seen`). */
export type PresenceSession = Schemas["PresenceSession"];
/** A library as `GET /libraries` lists it for the caller (`role` is the caller's). */
export type LibraryInfo = Schemas["LibraryInfo"];
/** One member as `GET /libraries/{id}/members` lists it. */
export type Member = Schemas["Member"];
/** `GET /libraries`: `{"libraries": [...]}`, the caller's default library first, then by name. */
export type LibraryListBody = Schemas["LibraryList"];
/** `POST /libraries` and `PATCH /libraries/{id}`: `{"name"}`. */
export type LibraryName = Schemas["LibraryName"];
/** `{"data": <library>}`: the answer to a create or a rename. */
export type LibraryReply = Schemas["LibraryReply"];
/** `GET /libraries/{id}/members`: `{"members": [...]}`, by user id. */
export type MemberList = Schemas["MemberList"];
/** `PUT /libraries/{id}/members/{user}`: `{"role": "editor" | "viewer"}`. */
export type MemberRoleBody = Schemas["MemberRoleBody"];
/** `{"data": <member or null>, "library_version": v}`: a membership change, or a library deleted. */
export type MemberReply = Schemas["MemberReply"];

// ---- server -> client ----------------------------------------------------------------------

export type ServerFrame = Schemas["ServerFrame"];
/**
 * `expires_at` is the session token's `exp` (null from older servers): the server closes with
 * 4401 at it plus its leeway unless the client sent a fresh token (`auth`).
 */
export type HelloFrame = Extract<ServerFrame, { type: "hello" }>;
/** `reset` is set only when the library is older than `since_version`: replace, do not ignore. */
export type SnapshotFrame = Extract<ServerFrame, { type: "snapshot" }>;
/** `version` is the version the session holds, if any; a union on `state`. */
export type StatusFrame = Extract<ServerFrame, { type: "status" }>;
export type AckFrame = Extract<ServerFrame, { type: "ack" }>;
export type RejectFrame = Extract<ServerFrame, { type: "reject" }>;
/** A frame the server could not accept, or a refused `auth` token; a close follows. */
export type ErrorFrame = Extract<ServerFrame, { type: "error" }>;
/** The answer to `auth`: the session now expires at the new token's `exp`. */
export type AuthOkFrame = Extract<ServerFrame, { type: "auth_ok" }>;
/** The user's role in the session's library changed (sent before the snapshot of that version). */
export type AccessFrame = Extract<ServerFrame, { type: "access" }>;
/** Every session open on the library (all instances); sent when the list changes. */
export type PresenceFrame = Extract<ServerFrame, { type: "presence" }>;
/**
 * With `?patches=1` (and `hello.patches`): what changed from the library at exactly
 * `from_version` to `version`, whose canonical snapshot hashes to `digest` (DESIGN §10).
 */
export type PatchFrame = Extract<ServerFrame, { type: "patch" }>;

// ---- client -> server ----------------------------------------------------------------------

export type ClientFrame = Schemas["ClientFrame"];
export type MutateFrame = Extract<ClientFrame, { type: "mutate" }>;
/** `auth`: replaces the session's token (same user) ahead of its expiry. */
export type AuthFrame = Extract<ClientFrame, { type: "auth" }>;
/** `seen`: a delivery receipt, sent after applying the snapshot of `version`. */
export type SeenFrame = Extract<ClientFrame, { type: "seen" }>;
/** `resync`: what the client holds does not match a digest (or a patch cannot apply): send the whole library. */
export type ResyncFrame = Extract<ClientFrame, { type: "resync" }>;

/** Close codes (docs/PROTOCOL.md). */
export const CloseCode = {
  GoingAway: 1001,
  /** The server cannot check tokens right now (`auth_unavailable`: its JWKS is unreachable). */
  TryAgainLater: 1013,
  Malformed: 4400,
  AuthExpired: 4401,
  /** The user was removed from the library, or it was deleted (after `error access_revoked`). */
  AccessRevoked: 4403,
  Idle: 4408,
  TooSlow: 4429,
} as const;
