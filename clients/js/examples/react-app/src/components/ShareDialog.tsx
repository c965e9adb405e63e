import { useEffect, useRef, useState, type FormEvent } from "react";
import { useLibrary } from "@librarian/react";
import type { MemberRole, Role } from "@librarian/client";
import { useMutation } from "../mutation";
import { Field, FormError } from "./Field";

type Grantable = Exclude<Role, "owner">;

/**
 * Who may open this library (the snapshot's `members`, live). The owner adds a user by id with
 * a role, changes roles and removes members; anyone else sees the list and may leave.
 */
export function ShareDialog({ user, onClose, onLeft }: { user: string; onClose: () => void; onLeft: () => void }) {
  const { members, role, setMember, removeMember } = useLibrary();
  const owner = role === "owner";
  const [userId, setUserId] = useState("");
  const [grant, setGrant] = useState<Grantable>("editor");
  const add = useMutation();
  const leave = useMutation();
  const dialog = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    void add.run(async () => {
      await setMember(userId.trim(), grant);
      setUserId("");
    });
  };

  return (
    <div className="overlay" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="dialog card" role="dialog" aria-modal="true" aria-labelledby="share-title" ref={dialog} data-testid="share-dialog">
        <div className="pane-head">
          <h2 id="share-title">Share this library</h2>
          <button type="button" className="small" onClick={onClose} aria-label="Close">
            Close
          </button>
        </div>
        <ul className="members" data-testid="members">
          {members.map((m) => (
            <MemberRow key={m.user_id} member={m} me={m.user_id === user} manage={owner} onChange={setMember} onRemove={removeMember} />
          ))}
        </ul>
        {owner ? (
          <form className="editor" onSubmit={submit} data-testid="share-form">
            <h3>Add someone</h3>
            <div className="row-fields">
              <Field label="User id" name="user_id" failure={add.failure}>
                <input name="user_id" value={userId} onChange={(e) => setUserId(e.target.value)} disabled={add.pending} placeholder="e.g. bob" />
              </Field>
              <Field label="Role" name="role" failure={add.failure}>
                <select name="role" value={grant} onChange={(e) => setGrant(e.target.value as Grantable)} disabled={add.pending}>
                  <option value="editor">editor (reads and writes)</option>
                  <option value="viewer">viewer (reads)</option>
                </select>
              </Field>
            </div>
            <FormError failure={add.failure} fields={["user_id", "role"]} />
            <div className="actions">
              <button type="submit" className="primary" disabled={add.pending || !userId.trim()}>
                {add.pending ? "Adding…" : "Add"}
              </button>
            </div>
          </form>
        ) : (
          <div className="editor">
            <p className="hint">Only the owner manages who is here.</p>
            <FormError failure={leave.failure} />
            <div className="actions">
              <button
                type="button"
                className="danger"
                disabled={leave.pending}
                data-testid="leave"
                onClick={() =>
                  void leave.run(async () => {
                    await removeMember(user);
                    onLeft();
                  })
                }
              >
                Leave this library
              </button>
            </div>
          </div>
        )}
      </div>
    </div>
  );
}

function MemberRow({
  member,
  me,
  manage,
  onChange,
  onRemove,
}: {
  member: MemberRole;
  me: boolean;
  manage: boolean;
  onChange: (userId: string, role: Grantable) => Promise<unknown>;
  onRemove: (userId: string) => Promise<unknown>;
}) {
  const change = useMutation();
  const remove = useMutation();
  const busy = change.pending || remove.pending;
  const editable = manage && member.role !== "owner";
  return (
    <li className="member" data-testid="member" data-user={member.user_id} data-role={member.role}>
      <span className="avatar" aria-hidden="true">
        {member.user_id.slice(0, 1).toUpperCase()}
      </span>
      <span className="name">
        {member.user_id}
        {me ? " (you)" : ""}
      </span>
      {editable ? (
        <>
          <select
            aria-label={`Role of ${member.user_id}`}
            value={member.role}
            disabled={busy}
            onChange={(e) => void change.run(() => onChange(member.user_id, e.target.value as Grantable))}
          >
            <option value="editor">editor</option>
            <option value="viewer">viewer</option>
          </select>
          <button type="button" className="small danger" disabled={busy} onClick={() => void remove.run(() => onRemove(member.user_id))}>
            {remove.pending ? "Removing…" : "Remove"}
          </button>
        </>
      ) : (
        <span className="role" data-role={member.role}>
          {member.role}
        </span>
      )}
      {(change.failure ?? remove.failure) && <span className="form-error">{(change.failure ?? remove.failure)!.message}</span>}
    </li>
  );
}
