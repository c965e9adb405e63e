/**
 * Structural sharing between snapshots: a row equal to the one held keeps its object, and a
 * list whose rows all stayed keeps its array. A selector over one block (or over the projects
 * when only a prompt changed) then returns the same value, and React skips the render.
 */

type Row = { id: string };

/** `next`, with every row equal to one in `prev` replaced by that object; `prev` itself if nothing changed. */
export function shareRows<T extends Row>(prev: readonly T[], next: T[]): T[] {
  if (prev === next || (prev.length === 0 && next.length === 0)) return prev as T[];
  const held = new Map<string, T>();
  for (const row of prev) held.set(row.id, row);
  let same = prev.length === next.length;
  const out = next.map((row, i) => {
    const old = held.get(row.id);
    if (old !== undefined && (old === row || sameRow(old, row))) {
      if (prev[i] !== old) same = false;
      return old;
    }
    same = false;
    return row;
  });
  return same ? (prev as T[]) : out;
}

/** Rows are flat objects whose values are scalars or arrays of strings. */
function sameRow(a: object, b: object): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    const x = (a as Record<string, unknown>)[k];
    const y = (b as Record<string, unknown>)[k];
    if (x === y) continue;
    if (Array.isArray(x) && Array.isArray(y)) {
      if (x.length !== y.length || x.some((v, i) => v !== y[i])) return false;
      continue;
    }
    return false;
  }
  return true;
}
