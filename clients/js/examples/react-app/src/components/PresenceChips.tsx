import { useMemo } from "react";
import { useLibrarySelector } from "@librarian/react";

/** Who is here: one chip per user with a session open on this library (and how many). */
export function PresenceChips({ user }: { user: string }) {
  const presence = useLibrarySelector((s) => s.presence);
  const people = useMemo(() => {
    const byUser = new Map<string, { sessions: number; seen: number | null }>();
    for (const s of presence) {
      const p = byUser.get(s.user_id) ?? { sessions: 0, seen: null };
      p.sessions += 1;
      if (s.seen_version !== null && (p.seen === null || s.seen_version > p.seen)) p.seen = s.seen_version;
      byUser.set(s.user_id, p);
    }
    // The user first, then the others by name.
    return [...byUser].sort(([a], [b]) => (a === user ? -1 : b === user ? 1 : a.localeCompare(b)));
  }, [presence, user]);
  if (people.length === 0) return null;
  return (
    <ul className="presence" aria-label="Who is here" data-testid="presence">
      {people.map(([id, p]) => (
        <li
          key={id}
          className={id === user ? "chip me" : "chip"}
          data-testid="presence-chip"
          data-user={id}
          title={`${p.sessions} session${p.sessions === 1 ? "" : "s"}${p.seen === null ? "" : `, holds v${p.seen}`}`}
        >
          <span className="avatar" aria-hidden="true">
            {id.slice(0, 1).toUpperCase()}
          </span>
          {id === user ? `${id} (you)` : id}
          {p.sessions > 1 && <span className="count">×{p.sessions}</span>}
        </li>
      ))}
    </ul>
  );
}
