import type { Project } from "@librarian/client";

export interface ProjectNode {
  project: Project;
  depth: number;
  /** Names from the top, e.g. "Newsletter / Weekly". */
  path: string;
  children: ProjectNode[];
}

/** Projects nested by `parent_id` (a parent that is missing puts its child at the top). */
export function projectTree(projects: readonly Project[]): ProjectNode[] {
  const ids = new Set(projects.map((p) => p.id));
  const byParent = new Map<string, Project[]>();
  for (const p of projects) {
    const parent = p.parent_id && ids.has(p.parent_id) ? p.parent_id : "";
    byParent.set(parent, [...(byParent.get(parent) ?? []), p]);
  }
  const build = (parent: string, depth: number, prefix: string, seen: Set<string>): ProjectNode[] =>
    (byParent.get(parent) ?? [])
      .filter((p) => !seen.has(p.id))
      .map((p) => {
        const path = prefix ? `${prefix} / ${p.name}` : p.name;
        return { project: p, depth, path, children: build(p.id, depth + 1, path, new Set(seen).add(p.id)) };
      });
  return build("", 0, "", new Set());
}

/** The tree in display order, for `<select>`s. */
export function flatten(nodes: ProjectNode[]): ProjectNode[] {
  return nodes.flatMap((n) => [n, ...flatten(n.children)]);
}
