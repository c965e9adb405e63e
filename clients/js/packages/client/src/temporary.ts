/**
 * Temporary blocks: context blocks that live only in this client (one tab), never sent to the
 * server, kept across snapshots until saved (a create) or removed. Plain functions over an
 * immutable list, so that an unchanged list keeps its identity.
 */

import { uuid } from "./ids.js";
import type { TemporaryBlock, TemporaryBlockFields } from "./types.js";

export function newTemporaryBlock(fields: TemporaryBlockFields = {}): TemporaryBlock {
  return {
    id: `temp-${uuid()}`,
    title: fields.title ?? "",
    content: fields.content ?? "",
    tags: fields.tags ? [...fields.tags] : [],
    project_id: fields.project_id ?? null,
    temporary: true,
    saving: false,
  };
}

/** The list with block `id` replaced by `change(block)`; the same list if there is no such block. */
export function changeTemporary(
  list: TemporaryBlock[],
  id: string,
  change: (block: TemporaryBlock) => TemporaryBlock,
): TemporaryBlock[] {
  const i = list.findIndex((b) => b.id === id);
  if (i < 0) return list;
  const next = list.slice();
  next[i] = change(list[i]!);
  return next;
}

/** The list without the blocks whose ids are given; the same list if none is there. */
export function withoutTemporary(list: TemporaryBlock[], ids: Iterable<string>): TemporaryBlock[] {
  const drop = new Set(ids);
  if (!list.some((b) => drop.has(b.id))) return list;
  return list.filter((b) => !drop.has(b.id));
}

/** Only the fields a temporary block may change (never its id, `temporary` or `saving`). */
export function pickFields(changes: TemporaryBlockFields): TemporaryBlockFields {
  const out: TemporaryBlockFields = {};
  if (changes.title !== undefined) out.title = changes.title;
  if (changes.content !== undefined) out.content = changes.content;
  if (changes.tags !== undefined) out.tags = [...changes.tags];
  if (changes.project_id !== undefined) out.project_id = changes.project_id;
  return out;
}
