import { useMemo, useState } from "react";
import { LibraryProvider } from "@librarian/react";
import type { LibraryClientOptions } from "@librarian/client";
import { clearSession, loadSession, saveSession, urlOptions, type Session } from "./session";
import { SignIn } from "./components/SignIn";
import { Workspace } from "./components/Workspace";

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);

  const options = useMemo<LibraryClientOptions | null>(() => {
    if (!session) return null;
    const { shareAcrossTabs, cache } = urlOptions();
    return {
      url: location.origin,
      getToken: () => session.token,
      shareAcrossTabs,
      ...(cache ? { cache: "indexeddb" as const } : {}),
    };
  }, [session]);

  if (!session || !options) {
    return (
      <SignIn
        onSignedIn={(signedIn) => {
          saveSession(signedIn);
          setSession(signedIn);
        }}
      />
    );
  }

  // A new user gets a new client (key): nothing of the previous one's library stays on screen.
  return (
    <LibraryProvider key={session.user} options={options}>
      <Workspace
        user={session.user}
        onSignedOut={() => {
          clearSession();
          setSession(null);
        }}
      />
    </LibraryProvider>
  );
}
