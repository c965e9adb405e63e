import { useState } from "react";
import { useLibraryClient } from "@librarian/react";
import { StatusPill } from "./StatusPill";
import { ProjectTree } from "./ProjectTree";
import { ContextBlocks } from "./ContextBlocks";
import { SavedPrompts } from "./SavedPrompts";

/** Which blocks the blocks pane shows: every one, those in no project, or one project's. */
export type ProjectFilter = { kind: "all" } | { kind: "none" } | { kind: "project"; id: string };

export function Workspace({ user, onSignedOut }: { user: string; onSignedOut: () => void }) {
  const client = useLibraryClient();
  const [filter, setFilter] = useState<ProjectFilter>({ kind: "all" });
  const [signingOut, setSigningOut] = useState(false);

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
        <StatusPill />
        <span className="who" data-testid="who">
          {user}
        </span>
        <button type="button" onClick={signOut} disabled={signingOut} data-testid="sign-out">
          Sign out
        </button>
      </header>
      <main className="panes">
        <ProjectTree filter={filter} onFilter={setFilter} />
        <ContextBlocks filter={filter} onFilter={setFilter} />
        <SavedPrompts />
      </main>
    </div>
  );
}
