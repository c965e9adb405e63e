import { useMemo, useState, type FormEvent } from "react";
import { useLibrary, useLibraryActions } from "@librarian/react";
import { projectTree, type ProjectNode } from "../tree";
import { useMutation } from "../mutation";
import { Field, FormError } from "./Field";
import { ProjectSelect } from "./ProjectSelect";
import type { ProjectFilter } from "./Workspace";

export function ProjectTree({ filter, onFilter }: { filter: ProjectFilter; onFilter: (f: ProjectFilter) => void }) {
  const { projects, isLoading, createProject } = useLibrary();
  const tree = useMemo(() => projectTree(projects), [projects]);
  const [name, setName] = useState("");
  const [parentId, setParentId] = useState("");
  const create = useMutation();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const ok = await create.run(() => createProject({ name, parent_id: parentId || null }));
    if (ok) {
      setName("");
      setParentId("");
    }
  };

  return (
    <section className="pane" data-testid="projects-pane" aria-labelledby="projects-title">
      <h2 id="projects-title">Projects</h2>
      <ul className="tree">
        <li>
          <button
            type="button"
            className={filter.kind === "all" ? "filter selected" : "filter"}
            onClick={() => onFilter({ kind: "all" })}
          >
            All blocks
          </button>
        </li>
        {tree.map((node) => (
          <ProjectItem key={node.project.id} node={node} filter={filter} onFilter={onFilter} />
        ))}
      </ul>
      {isLoading && projects.length === 0 && <p className="empty">Loading…</p>}

      <form className="editor" onSubmit={submit} data-testid="project-form">
        <h3>New project</h3>
        <Field label="Name" name="name" failure={create.failure}>
          <input name="name" value={name} disabled={create.pending} onChange={(e) => setName(e.target.value)} />
        </Field>
        <Field label="Inside" name="parent_id" failure={create.failure}>
          <ProjectSelect
            name="parent_id"
            projects={projects}
            value={parentId}
            onChange={setParentId}
            disabled={create.pending}
            noneLabel="(top level)"
          />
        </Field>
        <FormError failure={create.failure} fields={["name", "parent_id"]} />
        <div className="actions">
          <button type="submit" className="primary" disabled={create.pending}>
            {create.pending ? "Creating…" : "Create project"}
          </button>
        </div>
      </form>
    </section>
  );
}

function ProjectItem({
  node,
  filter,
  onFilter,
}: {
  node: ProjectNode;
  filter: ProjectFilter;
  onFilter: (f: ProjectFilter) => void;
}) {
  const { updateProject, deleteProject } = useLibraryActions();
  const { project } = node;
  const [renaming, setRenaming] = useState(false);
  const [name, setName] = useState(project.name);
  const rename = useMutation();
  const remove = useMutation();
  const busy = rename.pending || remove.pending;
  const selected = filter.kind === "project" && filter.id === project.id;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const ok = await rename.run(() => updateProject(project.id, { name }, { ifVersion: project.version }));
    if (ok) setRenaming(false);
  };

  return (
    <li data-testid="project-item" data-id={project.id} data-name={project.name}>
      {renaming ? (
        <form className="rename" onSubmit={submit}>
          <Field label="Name" name="name" failure={rename.failure}>
            <input name="name" value={name} autoFocus disabled={busy} onChange={(e) => setName(e.target.value)} />
          </Field>
          <FormError failure={rename.failure} fields={["name"]} />
          <div className="actions">
            <button type="submit" className="primary" disabled={busy}>
              Save
            </button>
            <button
              type="button"
              disabled={busy}
              onClick={() => {
                setRenaming(false);
                rename.reset();
              }}
            >
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <div className="row">
          <button
            type="button"
            className={selected ? "filter selected" : "filter"}
            title="Show this project's blocks"
            onClick={() => onFilter({ kind: "project", id: project.id })}
          >
            <span className="folder" aria-hidden>
              ▸
            </span>{" "}
            {project.name}
          </button>
          <button
            type="button"
            className="small"
            disabled={busy}
            onClick={() => {
              setName(project.name);
              setRenaming(true);
            }}
          >
            Rename
          </button>
          <button
            type="button"
            className="small danger"
            disabled={busy}
            onClick={() => void remove.run(() => deleteProject(project.id, { ifVersion: project.version }))}
          >
            {remove.pending ? "Deleting…" : "Delete"}
          </button>
        </div>
      )}
      {!renaming && <FormError failure={remove.failure} />}
      {node.children.length > 0 && (
        <ul>
          {node.children.map((child) => (
            <ProjectItem key={child.project.id} node={child} filter={filter} onFilter={onFilter} />
          ))}
        </ul>
      )}
    </li>
  );
}
