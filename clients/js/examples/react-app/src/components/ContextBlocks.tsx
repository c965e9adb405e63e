import { useEffect, useMemo, useState } from "react";
import { useLibrary, useLibraryActions } from "@librarian/react";
import type { ContextBlock, LibraryState, Project } from "@librarian/client";
import { flatten, projectTree } from "../tree";
import { useMutation } from "../mutation";
import { FormError } from "./Field";
import { ItemActions } from "./ItemActions";
import { BlockEditor, type BlockEditing } from "./BlockEditor";
import type { ProjectFilter } from "./Workspace";

type TemporaryBlock = LibraryState["temporaryBlocks"][number];

function matches(filter: ProjectFilter, projectId: string | null | undefined): boolean {
  if (filter.kind === "all") return true;
  if (filter.kind === "none") return !projectId;
  return projectId === filter.id;
}

export function ContextBlocks({ filter, onFilter }: { filter: ProjectFilter; onFilter: (f: ProjectFilter) => void }) {
  const { projects, contextBlocks, temporaryBlocks, isLoading } = useLibrary();
  const [editing, setEditing] = useState<BlockEditing | null>(null);
  const names = useMemo(() => new Map(projects.map((p) => [p.id, p.name])), [projects]);
  const visible = contextBlocks.filter((b) => matches(filter, b.project_id));

  // A filtered project that was deleted (here or elsewhere): back to every block.
  useEffect(() => {
    if (filter.kind === "project" && !names.has(filter.id)) onFilter({ kind: "all" });
  }, [filter, names, onFilter]);
  // The block being edited was deleted or saved meanwhile: close the editor.
  const editedGone =
    editing !== null &&
    (editing.temporary
      ? !temporaryBlocks.some((t) => t.id === editing.block.id)
      : !contextBlocks.some((b) => b.id === editing.block.id));
  useEffect(() => {
    if (editedGone) setEditing(null);
  }, [editedGone]);

  return (
    <section className="pane" data-testid="blocks-pane" aria-labelledby="blocks-title">
      <div className="pane-head">
        <h2 id="blocks-title">Context blocks</h2>
        <FilterSelect projects={projects} filter={filter} onFilter={onFilter} />
      </div>
      <ul className="list">
        {visible.map((block) => (
          <BlockItem
            key={block.id}
            block={block}
            projectName={block.project_id ? names.get(block.project_id) : undefined}
            onEdit={() => setEditing({ temporary: false, block })}
          />
        ))}
      </ul>
      {visible.length === 0 && <p className="empty">{isLoading ? "Loading…" : "No blocks here yet."}</p>}

      {temporaryBlocks.length > 0 && (
        <>
          <h3 className="subhead">
            Temporary blocks <span className="hint">this tab only, until saved</span>
          </h3>
          <ul className="list" data-testid="temporary-list">
            {temporaryBlocks.map((block) => (
              <TemporaryItem key={block.id} block={block} onEdit={() => setEditing({ temporary: true, block })} />
            ))}
          </ul>
        </>
      )}

      <BlockEditor
        key={editing ? editing.block.id : "new"}
        editing={editing}
        projects={projects}
        defaultProjectId={filter.kind === "project" ? filter.id : ""}
        onDone={() => setEditing(null)}
      />
    </section>
  );
}

function FilterSelect({
  projects,
  filter,
  onFilter,
}: {
  projects: readonly Project[];
  filter: ProjectFilter;
  onFilter: (f: ProjectFilter) => void;
}) {
  const options = useMemo(() => flatten(projectTree(projects)), [projects]);
  const value = filter.kind === "project" ? filter.id : filter.kind;
  return (
    <select
      aria-label="Filter by project"
      data-testid="block-filter"
      value={value}
      onChange={(e) => {
        const v = e.target.value;
        onFilter(v === "all" || v === "none" ? { kind: v } : { kind: "project", id: v });
      }}
    >
      <option value="all">All projects</option>
      <option value="none">No project</option>
      {options.map(({ project, path }) => (
        <option key={project.id} value={project.id}>
          {path}
        </option>
      ))}
    </select>
  );
}

function Tags({ tags }: { tags: readonly string[] | undefined }) {
  if (!tags?.length) return null;
  return (
    <span className="tags">
      {tags.map((t) => (
        <span key={t} className="tag">
          {t}
        </span>
      ))}
    </span>
  );
}

function BlockItem({ block, projectName, onEdit }: { block: ContextBlock; projectName?: string | undefined; onEdit: () => void }) {
  const { deleteContextBlock } = useLibraryActions();
  const remove = useMutation();
  return (
    <li className="item" data-testid="block-item" data-id={block.id} data-title={block.title}>
      <div className="row">
        <span className="name">{block.title}</span>
        <ItemActions onEdit={onEdit} remove={remove} onDelete={() => deleteContextBlock(block.id, { ifVersion: block.version })} />
      </div>
      <div className="meta">
        {projectName && <span className="project">▸ {projectName}</span>}
        <Tags tags={block.tags} />
      </div>
      {block.content && <p className="excerpt">{block.content}</p>}
      <FormError failure={remove.failure} />
    </li>
  );
}

function TemporaryItem({ block, onEdit }: { block: TemporaryBlock; onEdit: () => void }) {
  const { saveTemporaryBlock, removeTemporaryBlock } = useLibraryActions();
  const save = useMutation();
  const busy = save.pending || Boolean(block.saving);
  return (
    <li className="item temporary" data-testid="temporary-item" data-id={block.id} data-title={block.title}>
      <div className="row">
        <span className="name">{block.title || <em>untitled</em>}</span>
        <span className="badge">temporary</span>
        <button type="button" className="small primary" disabled={busy} onClick={() => void save.run(() => saveTemporaryBlock(block.id))}>
          {busy ? "Saving…" : "Save"}
        </button>
        <button type="button" className="small" disabled={busy} onClick={onEdit}>
          Edit
        </button>
        <button type="button" className="small" disabled={busy} onClick={() => removeTemporaryBlock(block.id)}>
          Discard
        </button>
      </div>
      <div className="meta">
        <Tags tags={block.tags} />
      </div>
      {block.content && <p className="excerpt">{block.content}</p>}
      <FormError failure={save.failure} />
    </li>
  );
}
