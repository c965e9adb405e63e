import { useEffect, useState } from "react";
import { useLibraryClient, useLibrarySelector } from "@librarian/react";
import type { LibraryState } from "@librarian/client";

type Status = LibraryState["status"];

/** Re-renders every `ms` while `on` (for "retrying in Ns" and "last synced …"). */
function useNow(on: boolean, ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!on) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [on, ms]);
  return now;
}

function toMillis(t: unknown): number | null {
  if (t == null) return null;
  if (typeof t === "number") return t;
  if (t instanceof Date) return t.getTime();
  const parsed = Date.parse(String(t));
  return Number.isNaN(parsed) ? null : parsed;
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

/** Short words for the pill; the full message is its tooltip. */
const ERRORS: Record<string, string> = {
  connection_lost: "Connection lost",
  unreachable: "Server unreachable",
  token_expired: "Session expired",
  unauthorized: "Not signed in",
  database_unavailable: "Database unavailable",
  access_revoked: "Access revoked",
  library_not_found: "No such library",
};

function label(status: Status, now: number): string {
  switch (status.state) {
    case "connecting":
      return "Connecting…";
    case "loading":
      return "Loading…";
    case "live":
      return "Live";
    case "syncing":
      return `Syncing → v${status.targetVersion}`;
    case "offline":
      return "Offline";
    case "error": {
      const retryAt = toMillis(status.retryAt);
      const left = retryAt === null ? null : Math.max(0, Math.ceil((retryAt - now) / 1000));
      const retry = left === null ? "" : left > 0 ? ` · retrying in ${left}s` : " · retrying…";
      return `${ERRORS[status.code] ?? `Error: ${status.message || status.code}`}${retry}`;
    }
    default:
      return String((status as { state: string }).state);
  }
}

/** The connection's state (loading / syncing / live / error with its retry) and the last sync. */
export function StatusPill() {
  const client = useLibraryClient();
  // Two slices: this component re-renders for neither a new row nor a new version.
  const status = useLibrarySelector((s) => s.status);
  const lastSyncedAt = toMillis(useLibrarySelector((s) => s.lastSyncedAt));
  const now = useNow(status.state === "error" || lastSyncedAt !== null);

  return (
    <div className="status">
      <span
        className="pill"
        data-testid="status-pill"
        data-state={status.state}
        data-cached={status.cached ? "1" : undefined}
        title={status.state === "error" ? status.message : undefined}
        role="status"
      >
        {label(status, now)}
        {status.cached ? " · cached" : ""}
      </span>
      {(status.state === "error" || status.state === "offline") && (
        <button type="button" className="small" onClick={() => client.reconnect()} data-testid="reconnect">
          Retry now
        </button>
      )}
      {lastSyncedAt !== null && (
        <span className="synced" data-testid="last-synced" title={new Date(lastSyncedAt).toLocaleString()}>
          last synced {ago(now - lastSyncedAt)}
        </span>
      )}
    </div>
  );
}
