import { useMemo } from "react";
import type { Project } from "@librarian/client";
import { flatten, projectTree } from "../tree";

/** A `<select>` of projects (indented by depth), "" standing for none. */
export function ProjectSelect({
  projects,
  value,
  onChange,
  name,
  disabled,
  exclude,
  noneLabel = "(no project)",
}: {
  projects: readonly Project[];
  value: string;
  onChange: (id: string) => void;
  name: string;
  disabled?: boolean;
  /** A project (and so its subtree) that may not be chosen, e.g. as its own parent. */
  exclude?: string;
  noneLabel?: string;
}) {
  const options = useMemo(() => flatten(projectTree(projects)), [projects]);
  return (
    <select name={name} value={value} disabled={disabled} onChange={(e) => onChange(e.target.value)}>
      <option value="">{noneLabel}</option>
      {options.map(({ project, depth }) => (
        <option key={project.id} value={project.id} disabled={project.id === exclude}>
          {"\u2003".repeat(depth)}
          {project.name}
        </option>
      ))}
    </select>
  );
}
