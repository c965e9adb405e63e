import { useState } from "react";
import { useLibraryClient, useLibrarySelector, type UseLibrariesResult } from "@librarian/react";
import { StatusPill } from "./StatusPill";
import { ProjectTree } from "./ProjectTree";
import { ContextBlocks } from "./ContextBlocks";
import { SavedPrompts } from "./SavedPrompts";
import { LibrarySwitcher } from "./LibrarySwitcher";
import { PresenceChips } from "./PresenceChips";
import { ShareDialog } from "./ShareDialog";
import { SaveReceipt } from "./SaveReceipt";

/** Which blocks the blocks pane shows: every one, those in no project, or one project's. */
export type ProjectFilter = { kind: "all" } | { kind: "none" } | { kind: "project"; id: string };

/** The client stopped because the user may not open this library (any more). */
const ACCESS_ENDED = new Set(["access_revoked", "library_not_found"]);

export function Workspace({
  user,
  libraries,
  library,
  onSwitch,
  onSignedOut,
}: {
  user: string;
  libraries: UseLibrariesResult;
  /** The library chosen (null: the user's own). */
  library: string | null;
  onSwitch: (library: string | null) => void;
  onSignedOut: () => void;
}) {
  const client = useLibraryClient();
  const [filter, setFilter] = useState<ProjectFilter>({ kind: "all" });
  const [signingOut, setSigningOut] = useState(false);
  const [sharing, setSharing] = useState(false);
  const status = useLibrarySelector((s) => s.status);
  const ended = status.state === "error" && ACCESS_ENDED.has(status.code) ? status : null;

  const signOut = async () => {
    setSigningOut(true);
    try {
      await client.clearCache();
    } finally {
      onSignedOut();
    }
  };

  return (
    <div className="workspace">
      <header className="topbar">
        <h1>Prompt builder</h1>
        <LibrarySwitcher libraries={libraries} library={library} onSwitch={onSwitch} />
        {!ended && (
          <button type="button" className="small" onClick={() => setSharing(true)} data-testid="share">
            Share
          </button>
        )}
        <PresenceChips user={user} />
        <span className="spacer" />
        <SaveReceipt />
        <StatusPill />
        <span className="who" data-testid="who">
          {user}
        </span>
        <button type="button" onClick={signOut} disabled={signingOut} data-testid="sign-out">
          Sign out
        </button>
      </header>
      {ended ? (
        <div className="revoked" role="alert" data-testid="revoked" data-code={ended.code}>
          <h2>{ended.code === "access_revoked" ? "Access revoked" : "No such library"}</h2>
          <p>
            {ended.code === "access_revoked"
              ? "You are no longer a member of this library (or it was deleted). Nothing of it reaches this page any more."
              : "This library does not exist, or you are not a member of it."}
          </p>
          <button type="button" className="primary" onClick={() => onSwitch(null)} data-testid="back-to-own">
            Open my own library
          </button>
        </div>
      ) : (
        <main className="panes">
          <ProjectTree filter={filter} onFilter={setFilter} />
          <ContextBlocks filter={filter} onFilter={setFilter} />
          <SavedPrompts />
        </main>
      )}
      {sharing && !ended && (
        <ShareDialog
          user={user}
          onClose={() => setSharing(false)}
          onLeft={() => {
            setSharing(false);
            void libraries.refresh();
            onSwitch(null);
          }}
        />
      )}
    </div>
  );
}
