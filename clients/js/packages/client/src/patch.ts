/**
 * Patch frames (docs/PROTOCOL.md, "Patch frames"; DESIGN §10), the pure part: applying a
 * `patch` to the library held, and the digest that says whether what is held is exactly the
 * server's snapshot at a version.
 *
 * - `applyPatch(held, patch)`: removes the deleted ids (each must be held), replaces or inserts
 *   the upserted rows keeping each list in its order (`created_at`, then `id`, compared as
 *   strings), replaces `members` if present, sets `version`. Lists and rows the patch does not
 *   touch keep their identity (structural sharing for selectors). Returns why it cannot apply
 *   instead (wrong `from_version`, a deleted id not held): the caller then asks for a `resync`.
 * - `canonicalJson(library)`: the exact bytes `GET /library` answers at that version (compact
 *   JSON, fixed key orders); `digestOf` is `"sha256:<lowercase hex>"` of them. The hash is
 *   `@noble/hashes` (plain JS): `crypto.subtle` is missing on plain-http pages off localhost.
 *   Each row's canonical text is kept per row object (rows are never changed in place, and a
 *   patch replaces only the rows it names), so re-serializing after a patch costs the changed
 *   rows plus one join.
 * - `digestSliced` hashes in slices, yielding to the event loop between them: the verification
 *   of a library of several MB runs without one long task.
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import type { ContextBlock, LibrarySnapshot, MemberRole, PatchFrame, Project, SavedPrompt } from "./wire.js";

/** A `patch` frame without its `type` (the HTTP answer to `since_version` has the same fields). */
export type PatchBody = Omit<PatchFrame, "type">;

/**
 * Either the library at `patch.version`, or why the patch cannot be applied to what is held:
 * `wrongBase` when it starts at another version (what is held may be right, only elsewhere).
 */
export type Applied = { ok: true; library: LibrarySnapshot } | { ok: false; reason: string; wrongBase: boolean };

type Row = { id: string; created_at: string };
type Changes<T> = { upsert: T[]; delete: string[] };

/** Applies `patch` to `held` (which must be at `patch.from_version`); `held` itself is left as it was. */
export function applyPatch(held: LibrarySnapshot, patch: PatchBody): Applied {
  if (patch.from_version !== held.version) {
    return { ok: false, wrongBase: true, reason: `the patch starts at version ${patch.from_version}, the library held is at ${held.version}` };
  }
  const projects = applyList(held.projects, patch.projects, "project");
  if (typeof projects === "string") return { ok: false, wrongBase: false, reason: projects };
  const contextBlocks = applyList(held.context_blocks, patch.context_blocks, "context block");
  if (typeof contextBlocks === "string") return { ok: false, wrongBase: false, reason: contextBlocks };
  const savedPrompts = applyList(held.saved_prompts, patch.saved_prompts, "saved prompt");
  if (typeof savedPrompts === "string") return { ok: false, wrongBase: false, reason: savedPrompts };
  return {
    ok: true,
    library: {
      version: patch.version,
      projects,
      context_blocks: contextBlocks,
      saved_prompts: savedPrompts,
      members: patch.members ?? held.members ?? [],
    },
  };
}

/** `(created_at, id)` order, both compared as strings (code units: the wire's are ASCII). */
export function compareRows(a: Row, b: Row): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  return 0;
}

/** The list after `changes` (the same array when there are none), or why they cannot apply. */
function applyList<T extends Row>(list: T[], changes: Changes<T> | null | undefined, kind: string): T[] | string {
  if (!changes || (changes.upsert.length === 0 && changes.delete.length === 0)) return list;
  if (changes.delete.length > 0) {
    const held = new Set(list.map((r) => r.id));
    const missing = changes.delete.find((id) => !held.has(id));
    if (missing !== undefined) return `the patch deletes ${kind} ${missing}, which the library does not hold`;
  }
  const gone = new Set(changes.delete);
  for (const row of changes.upsert) gone.add(row.id);
  const kept = list.filter((r) => !gone.has(r.id));
  if (changes.upsert.length === 0) return kept;
  // Merge the kept rows (in order) with the upserted ones (sorted; the server sends them in
  // order, but nothing here relies on it).
  const added = [...changes.upsert].sort(compareRows);
  const out: T[] = new Array<T>(kept.length + added.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < kept.length && j < added.length) {
    out[k++] = compareRows(kept[i]!, added[j]!) <= 0 ? kept[i++]! : added[j++]!;
  }
  while (i < kept.length) out[k++] = kept[i++]!;
  while (j < added.length) out[k++] = added[j++]!;
  return out;
}

// ---- the canonical snapshot and its digest ------------------------------------------------

/** Each row's canonical text, per row object (rows are never changed in place). */
const rowText = new WeakMap<object, string>();

function cached<T extends object>(row: T, text: (row: T) => string): string {
  let s = rowText.get(row);
  if (s === undefined) {
    s = text(row);
    rowText.set(row, s);
  }
  return s;
}

// Objects built in the canonical key order: `JSON.stringify` then writes exactly the server's
// bytes (same escapes: `"`, `\`, \b \f \n \r \t, other control characters as lowercase \u00xx).
const projectText = (p: Project): string =>
  JSON.stringify({
    id: p.id,
    parent_id: p.parent_id,
    name: p.name,
    description: p.description,
    version: p.version,
    created_at: p.created_at,
    updated_at: p.updated_at,
  });

const blockText = (b: ContextBlock): string =>
  JSON.stringify({
    id: b.id,
    project_id: b.project_id,
    title: b.title,
    content: b.content,
    tags: b.tags,
    version: b.version,
    created_at: b.created_at,
    updated_at: b.updated_at,
  });

const promptText = (p: SavedPrompt): string =>
  JSON.stringify({
    id: p.id,
    project_id: p.project_id,
    title: p.title,
    content: p.content,
    tags: p.tags,
    context_block_ids: p.context_block_ids,
    version: p.version,
    created_at: p.created_at,
    updated_at: p.updated_at,
  });

const memberText = (m: MemberRole): string => JSON.stringify({ user_id: m.user_id, role: m.role });

/** The canonical snapshot: what `GET /library` answers at `library.version`, byte for byte (as UTF-16). */
export function canonicalJson(library: LibrarySnapshot): string {
  const projects = library.projects.map((p) => cached(p, projectText)).join(",");
  const blocks = library.context_blocks.map((b) => cached(b, blockText)).join(",");
  const prompts = library.saved_prompts.map((p) => cached(p, promptText)).join(",");
  const members = (library.members ?? []).map(memberText).join(",");
  return (
    `{"projects":[${projects}],"context_blocks":[${blocks}],"saved_prompts":[${prompts}],` +
    `"members":[${members}],"version":${JSON.stringify(library.version)}}`
  );
}

const encoder = new TextEncoder();

/** `"sha256:<lowercase hex>"` of `text`'s UTF-8 bytes. */
export function sha256Digest(text: string): string {
  return `sha256:${bytesToHex(sha256(encoder.encode(text)))}`;
}

/** The digest of the canonical snapshot of `library`. */
export function digestOf(library: LibrarySnapshot): string {
  return sha256Digest(canonicalJson(library));
}

/** Characters hashed between two yields of `digestSliced` (about 2 ms of hashing on a slow machine). */
const SLICE_CHARS = 256 * 1024;

/**
 * `digestOf(library)` in slices: between two slices it awaits `pause()` (default a macrotask),
 * so that a page verifying a library of several MB stays responsive. The library must not
 * change meanwhile (libraries are replaced, never changed in place).
 */
export function digestSliced(library: LibrarySnapshot, pause: () => Promise<void> = macrotask): Promise<string> {
  return sha256Sliced(canonicalJson(library), pause);
}

/** `sha256Digest(text)` in slices, awaiting `pause()` between two. */
export async function sha256Sliced(text: string, pause: () => Promise<void> = macrotask): Promise<string> {
  const hash = sha256.create();
  for (let at = 0; at < text.length; ) {
    let end = Math.min(text.length, at + SLICE_CHARS);
    // Never split a surrogate pair: each slice must encode to the bytes of its characters.
    if (end < text.length && isHighSurrogate(text.charCodeAt(end - 1))) end += 1;
    hash.update(encoder.encode(text.slice(at, end)));
    at = end;
    if (at < text.length) await pause();
  }
  return `sha256:${bytesToHex(hash.digest())}`;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function macrotask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
