import { useEffect, useState, type FormEvent } from "react";
import { useLibraryActions } from "@librarian/react";
import type { ContextBlock, LibraryState, Project } from "@librarian/client";
import { useMutation } from "../mutation";
import { Field, FormError } from "./Field";
import { ProjectSelect } from "./ProjectSelect";

type TemporaryBlock = LibraryState["temporaryBlocks"][number];

export type BlockEditing = { temporary: false; block: ContextBlock } | { temporary: true; block: TemporaryBlock };

const FIELDS = ["title", "content", "tags", "project_id"];

function parseTags(text: string): string[] {
  return text
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
}

/** Creates a block (saved or temporary) or edits one; the `key` of its parent resets it. */
export function BlockEditor({
  editing,
  projects,
  defaultProjectId,
  onDone,
}: {
  editing: BlockEditing | null;
  projects: readonly Project[];
  defaultProjectId: string;
  onDone: () => void;
}) {
  const { createContextBlock, updateContextBlock, addTemporaryBlock, updateTemporaryBlock } = useLibraryActions();
  const initial = editing?.block;
  const [title, setTitle] = useState(initial?.title ?? "");
  const [content, setContent] = useState(initial?.content ?? "");
  const [tags, setTags] = useState((initial?.tags ?? []).join(", "));
  const [projectId, setProjectId] = useState(initial ? (initial.project_id ?? "") : defaultProjectId);
  const [temporary, setTemporary] = useState(false);
  const mutation = useMutation();
  // A new block goes into the project the list is filtered by.
  useEffect(() => {
    if (!editing) setProjectId(defaultProjectId);
  }, [editing, defaultProjectId]);
  const busy = mutation.pending;

  const clear = () => {
    setTitle("");
    setContent("");
    setTags("");
    setProjectId(defaultProjectId);
    setTemporary(false);
    mutation.reset();
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const fields = { title, content, tags: parseTags(tags), project_id: projectId || null };
    if (editing?.temporary) {
      updateTemporaryBlock(editing.block.id, fields);
      onDone();
    } else if (editing) {
      const block = editing.block;
      if (await mutation.run(() => updateContextBlock(block.id, fields, { ifVersion: block.version }))) onDone();
    } else if (temporary) {
      addTemporaryBlock(fields);
      clear();
    } else if (await mutation.run(() => createContextBlock(fields))) {
      clear();
    }
  };

  const heading = editing ? (editing.temporary ? "Edit temporary block" : "Edit block") : "New block";
  return (
    <form className="editor" onSubmit={submit} data-testid="block-form" data-mode={editing ? "edit" : "create"}>
      <h3>{heading}</h3>
      <Field label="Title" name="title" failure={mutation.failure}>
        <input name="title" value={title} disabled={busy} onChange={(e) => setTitle(e.target.value)} />
      </Field>
      <Field label="Content" name="content" failure={mutation.failure}>
        <textarea name="content" rows={3} value={content} disabled={busy} onChange={(e) => setContent(e.target.value)} />
      </Field>
      <Field label="Tags" name="tags" failure={mutation.failure}>
        <input
          name="tags"
          value={tags}
          placeholder="comma, separated"
          disabled={busy}
          onChange={(e) => setTags(e.target.value)}
        />
      </Field>
      <Field label="Project" name="project_id" failure={mutation.failure}>
        <ProjectSelect name="project_id" projects={projects} value={projectId} onChange={setProjectId} disabled={busy} />
      </Field>
      {!editing && (
        <label className="inline">
          <input
            type="checkbox"
            name="temporary"
            checked={temporary}
            disabled={busy}
            onChange={(e) => setTemporary(e.target.checked)}
          />
          Temporary (stays in this tab until saved)
        </label>
      )}
      <FormError failure={mutation.failure} fields={FIELDS} />
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Saving…" : editing ? "Save" : temporary ? "Add temporary block" : "Create block"}
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
