/**
 * The wire's types: REST bodies and WebSocket frames, by the names the rest of the client uses.
 *
 * INTERIM: written by hand from docs/PROTOCOL.md. They are about to become aliases of the types
 * generated from the server's own OpenAPI document (`./generated/openapi.ts`); the names and
 * shapes below stay.
 */

/** RFC 3339 timestamp, UTC, millisecond precision. */
export type Timestamp = string;

export interface Project {
  id: string;
  parent_id: string | null;
  name: string;
  description: string;
  version: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ContextBlock {
  id: string;
  project_id: string | null;
  title: string;
  content: string;
  tags: string[];
  version: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface SavedPrompt {
  id: string;
  project_id: string | null;
  title: string;
  content: string;
  tags: string[];
  context_block_ids: string[];
  version: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type Entity = Project | ContextBlock | SavedPrompt;

/** The whole library at `version` (each list in a deterministic order). */
export interface LibrarySnapshot {
  version: number;
  projects: Project[];
  context_blocks: ContextBlock[];
  saved_prompts: SavedPrompt[];
}

export interface NewProject {
  id?: string | null;
  name: string;
  description?: string;
  parent_id?: string | null;
}
/** Absent = unchanged; `null` clears an optional field. */
export interface ProjectPatch {
  name?: string;
  description?: string;
  parent_id?: string | null;
}
export interface NewContextBlock {
  id?: string | null;
  project_id?: string | null;
  title: string;
  content?: string;
  tags?: string[];
}
export interface ContextBlockPatch {
  project_id?: string | null;
  title?: string;
  content?: string;
  tags?: string[];
}
export interface NewSavedPrompt {
  id?: string | null;
  project_id?: string | null;
  title: string;
  content?: string;
  tags?: string[];
  context_block_ids?: string[];
}
export interface SavedPromptPatch {
  project_id?: string | null;
  title?: string;
  content?: string;
  tags?: string[];
  context_block_ids?: string[];
}

export interface FieldError {
  field: string;
  message: string;
}

/** An RFC 9457 problem document, as HTTP sends it and as `reject.error` carries it. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  /** The last segment of `type`, e.g. `validation`, `not_found`, `version_mismatch`. */
  code: string;
  errors?: FieldError[];
  /** For 412: the row as it is now. */
  current?: Entity | null;
}

/** `{"data": <entity or null>, "library_version": v}` (HTTP mutation reply; `ack` carries the same). */
export interface MutationReply {
  data: Entity | null;
  library_version: number;
}

export type Op =
  | "project.create"
  | "project.update"
  | "project.delete"
  | "context_block.create"
  | "context_block.update"
  | "context_block.delete"
  | "saved_prompt.create"
  | "saved_prompt.update"
  | "saved_prompt.delete";

// ---- server -> client ----------------------------------------------------------------------

export interface HelloFrame {
  type: "hello";
  protocol: number;
  session_id: string;
  user_id: string;
  library_id: string;
  /** Mutations this session may have unanswered at once (absent from old servers: 32). */
  max_inflight_mutations?: number;
}

export interface SnapshotFrame extends LibrarySnapshot {
  type: "snapshot";
  /** Set only when the library is older than `since_version`: replace, do not ignore. */
  reset?: boolean;
}

export type StatusFrame = {
  type: "status";
  /** The version this session holds, if any. */
  version: number | null;
} & (
  | { state: "loading" }
  | { state: "live" }
  | { state: "syncing"; target_version: number }
  | { state: "error"; code: string; message: string; retry_in_ms: number }
);

export interface AckFrame {
  type: "ack";
  mutation_id: string;
  library_version: number;
  data: Entity | null;
}

export interface RejectFrame {
  type: "reject";
  mutation_id: string;
  error: Problem;
}

/** A frame the server could not accept; a close follows. */
export interface ErrorFrame {
  type: "error";
  code: string;
  message: string;
}

export type ServerFrame = HelloFrame | SnapshotFrame | StatusFrame | AckFrame | RejectFrame | ErrorFrame;

// ---- client -> server ----------------------------------------------------------------------

export interface MutateFrame {
  type: "mutate";
  mutation_id: string;
  op: Op;
  id?: string;
  if_version?: number;
  data?: unknown;
}

export type ClientFrame = MutateFrame;

/** Close codes (docs/PROTOCOL.md). */
export const CloseCode = {
  GoingAway: 1001,
  Malformed: 4400,
  AuthExpired: 4401,
  Idle: 4408,
  TooSlow: 4429,
} as const;
