import { useEffect, useMemo, useState, type FormEvent } from "react";
import { useLibrary, useLibraryActions } from "@librarian/react";
import type { ContextBlock, Project, SavedPrompt } from "@librarian/client";
import { useMutation } from "../mutation";
import { Field, FormError } from "./Field";
import { ItemActions } from "./ItemActions";
import { ProjectSelect } from "./ProjectSelect";

const FIELDS = ["title", "content", "project_id", "context_block_ids"];

export function SavedPrompts() {
  const { savedPrompts, contextBlocks, projects, isLoading } = useLibrary();
  const [editing, setEditing] = useState<SavedPrompt | null>(null);
  const titles = useMemo(() => new Map(contextBlocks.map((b) => [b.id, b.title])), [contextBlocks]);
  const names = useMemo(() => new Map(projects.map((p) => [p.id, p.name])), [projects]);
  // The prompt being edited was deleted meanwhile: close the editor. (Its version stays the one
  // the edit started from, so a change made elsewhere meanwhile is refused, not overwritten.)
  const editedGone = editing !== null && !savedPrompts.some((p) => p.id === editing.id);
  useEffect(() => {
    if (editedGone) setEditing(null);
  }, [editedGone]);

  return (
    <section className="pane" data-testid="prompts-pane" aria-labelledby="prompts-title">
      <h2 id="prompts-title">Saved prompts</h2>
      <ul className="list">
        {savedPrompts.map((prompt) => (
          <PromptItem
            key={prompt.id}
            prompt={prompt}
            blockTitles={prompt.context_block_ids.map((id) => titles.get(id) ?? "(missing block)")}
            projectName={prompt.project_id ? names.get(prompt.project_id) : undefined}
            onEdit={() => setEditing(prompt)}
          />
        ))}
      </ul>
      {savedPrompts.length === 0 && <p className="empty">{isLoading ? "Loading…" : "No saved prompts yet."}</p>}
      <PromptEditor
        key={editing && !editedGone ? editing.id : "new"}
        editing={editedGone ? null : editing}
        blocks={contextBlocks}
        projects={projects}
        onDone={() => setEditing(null)}
      />
    </section>
  );
}

function PromptItem({
  prompt,
  blockTitles,
  projectName,
  onEdit,
}: {
  prompt: SavedPrompt;
  blockTitles: string[];
  projectName?: string | undefined;
  onEdit: () => void;
}) {
  const { deleteSavedPrompt } = useLibraryActions();
  const remove = useMutation();
  return (
    <li className="item" data-testid="prompt-item" data-id={prompt.id} data-title={prompt.title}>
      <div className="row">
        <span className="name">{prompt.title}</span>
        <ItemActions onEdit={onEdit} remove={remove} onDelete={() => deleteSavedPrompt(prompt.id, { ifVersion: prompt.version })} />
      </div>
      <div className="meta">
        {projectName && <span className="project">▸ {projectName}</span>}
        <span data-testid="prompt-blocks">
          {blockTitles.length ? blockTitles.join(" → ") : "no blocks"}
        </span>
      </div>
      {prompt.content && <p className="excerpt">{prompt.content}</p>}
      <FormError failure={remove.failure} />
    </li>
  );
}

function PromptEditor({
  editing,
  blocks,
  projects,
  onDone,
}: {
  editing: SavedPrompt | null;
  blocks: readonly ContextBlock[];
  projects: readonly Project[];
  onDone: () => void;
}) {
  const { createSavedPrompt, updateSavedPrompt } = useLibraryActions();
  const [title, setTitle] = useState(editing?.title ?? "");
  const [content, setContent] = useState(editing?.content ?? "");
  const [projectId, setProjectId] = useState(editing?.project_id ?? "");
  // In the order they were ticked: a prompt's blocks are ordered.
  const [chosen, setChosen] = useState<string[]>(editing?.context_block_ids ?? []);
  const mutation = useMutation();
  const busy = mutation.pending;

  // Blocks deleted meanwhile drop out of the selection.
  const known = new Set(blocks.map((b) => b.id));
  const selection = chosen.filter((id) => known.has(id));

  const toggle = (id: string, on: boolean) =>
    setChosen((list) => (on ? [...list.filter((x) => x !== id), id] : list.filter((x) => x !== id)));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const fields = { title, content, project_id: projectId || null, context_block_ids: selection };
    if (editing) {
      if (await mutation.run(() => updateSavedPrompt(editing.id, fields, { ifVersion: editing.version }))) onDone();
    } else if (await mutation.run(() => createSavedPrompt(fields))) {
      setTitle("");
      setContent("");
      setChosen([]);
    }
  };

  return (
    <form className="editor" onSubmit={submit} data-testid="prompt-form" data-mode={editing ? "edit" : "create"}>
      <h3>{editing ? "Edit prompt" : "New prompt"}</h3>
      <Field label="Title" name="title" failure={mutation.failure}>
        <input name="title" value={title} disabled={busy} onChange={(e) => setTitle(e.target.value)} />
      </Field>
      <Field label="Content" name="content" failure={mutation.failure}>
        <textarea name="content" rows={3} value={content} disabled={busy} onChange={(e) => setContent(e.target.value)} />
      </Field>
      <Field label="Project" name="project_id" failure={mutation.failure}>
        <ProjectSelect name="project_id" projects={projects} value={projectId} onChange={setProjectId} disabled={busy} />
      </Field>
      <Field label="Blocks, in order" name="context_block_ids" failure={mutation.failure} group>
        <div className="checklist" data-testid="prompt-block-choices">
          {blocks.length === 0 && <span className="hint">No blocks to pick from yet.</span>}
          {blocks.map((b) => {
            const at = selection.indexOf(b.id);
            return (
              <label key={b.id} className="choice">
                <input
                  type="checkbox"
                  checked={at >= 0}
                  disabled={busy}
                  onChange={(e) => toggle(b.id, e.target.checked)}
                />
                <span className="order">{at >= 0 ? at + 1 : ""}</span>
                {b.title}
              </label>
            );
          })}
        </div>
      </Field>
      <FormError failure={mutation.failure} fields={FIELDS} />
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Saving…" : editing ? "Save" : "Create prompt"}
        </button>
        {editing && (
          <button type="button" disabled={busy} onClick={onDone}>
            Cancel
          </button>
        )}
      </div>
    </form>
  );
}
