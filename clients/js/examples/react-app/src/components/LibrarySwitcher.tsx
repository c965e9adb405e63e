import { useState, type FormEvent } from "react";
import type { UseLibrariesResult } from "@librarian/react";
import { useLibrarySelector } from "@librarian/react";
import { useMutation } from "../mutation";

/**
 * The user's libraries (`useLibraries`, polled: a library shared with them appears on its
 * own) and a form for a new one. The first is their own (default) library.
 */
export function LibrarySwitcher({
  libraries,
  library,
  onSwitch,
}: {
  libraries: UseLibrariesResult;
  library: string | null;
  onSwitch: (library: string | null) => void;
}) {
  const shown = useLibrarySelector((s) => s.libraryId);
  const role = useLibrarySelector((s) => s.role);
  const [creating, setCreating] = useState(false);
  const [name, setName] = useState("");
  const create = useMutation();
  const own = libraries.libraries[0]?.id ?? null;
  const current = library ?? shown ?? own ?? "";

  const submit = (event: FormEvent) => {
    event.preventDefault();
    void create.run(async () => {
      const made = await libraries.createLibrary(name.trim());
      setName("");
      setCreating(false);
      onSwitch(made.id);
    });
  };

  return (
    <div className="switcher" data-testid="library-switcher">
      <select
        aria-label="Library"
        value={current}
        onChange={(e) => onSwitch(e.target.value === own ? null : e.target.value)}
        data-testid="library-select"
      >
        {libraries.libraries.length === 0 && <option value={current}>{libraries.isLoading ? "Loading…" : "My library"}</option>}
        {libraries.libraries.map((l, i) => (
          <option key={l.id} value={l.id} data-role={l.role}>
            {i === 0 ? `${l.name || "My library"} (mine)` : l.role === "owner" ? l.name : `${l.name} · ${l.owner_id}`}
          </option>
        ))}
        {/* A library not (or no longer) in the list, e.g. one just left: still shown as chosen. */}
        {current && libraries.libraries.length > 0 && !libraries.libraries.some((l) => l.id === current) && (
          <option value={current}>(not in your libraries)</option>
        )}
      </select>
      {role && (
        <span className="role" data-testid="role" data-role={role}>
          {role === "viewer" ? "viewer · read only" : role}
        </span>
      )}
      {creating ? (
        <form className="inline-form" onSubmit={submit} data-testid="library-form">
          <input
            aria-label="New library name"
            placeholder="Library name"
            value={name}
            autoFocus
            disabled={create.pending}
            onChange={(e) => setName(e.target.value)}
          />
          <button type="submit" className="small primary" disabled={create.pending || !name.trim()}>
            Create
          </button>
          <button type="button" className="small" onClick={() => setCreating(false)} disabled={create.pending}>
            Cancel
          </button>
          {create.failure && <span className="form-error">{create.failure.message}</span>}
        </form>
      ) : (
        <button type="button" className="small" onClick={() => setCreating(true)} data-testid="new-library">
          New library
        </button>
      )}
    </div>
  );
}
