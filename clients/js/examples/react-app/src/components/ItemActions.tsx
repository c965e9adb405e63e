import type { Mutation } from "../mutation";

/** A list item's Edit and Delete buttons: both disabled while its delete is pending. */
export function ItemActions({ onEdit, remove, onDelete }: { onEdit: () => void; remove: Mutation; onDelete: () => Promise<unknown> }) {
  return (
    <>
      <button type="button" className="small" onClick={onEdit} disabled={remove.pending}>
        Edit
      </button>
      <button type="button" className="small danger" disabled={remove.pending} onClick={() => void remove.run(onDelete)}>
        {remove.pending ? "Deleting…" : "Delete"}
      </button>
    </>
  );
}
