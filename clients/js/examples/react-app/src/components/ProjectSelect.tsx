import { useMemo } from "react";
import type { Project } from "@librarian/client";
import { flatten, projectTree } from "../tree";

/** A `<select>` of projects by path ("Newsletter / Weekly"), "" standing for none. */
export function ProjectSelect({
  projects,
  value,
  onChange,
  name,
  disabled,
  noneLabel = "(no project)",
}: {
  projects: readonly Project[];
  value: string;
  onChange: (id: string) => void;
  name: string;
  disabled?: boolean;
  noneLabel?: string;
}) {
  const options = useMemo(() => flatten(projectTree(projects)), [projects]);
  return (
    <select name={name} value={value} disabled={disabled} onChange={(e) => onChange(e.target.value)}>
      <option value="">{noneLabel}</option>
      {options.map(({ project, path }) => (
        <option key={project.id} value={project.id}>
          {path}
        </option>
      ))}
    </select>
  );
}
