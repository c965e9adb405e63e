import { useMemo, useState } from "react";
import { LibraryProvider, useLibraries } from "@librarian/react";
import type { LibraryClientOptions } from "@librarian/client";
import { clearSession, loadLibrary, loadSession, saveLibrary, saveSession, urlOptions, type Session } from "./session";
import { SignIn } from "./components/SignIn";
import { Workspace } from "./components/Workspace";

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  if (!session) {
    return (
      <SignIn
        onSignedIn={(signedIn) => {
          saveSession(signedIn);
          setSession(signedIn);
        }}
      />
    );
  }
  return (
    <SignedIn
      // A new user starts over: nothing of the previous one's libraries stays on screen.
      key={session.user}
      session={session}
      onSignedOut={() => {
        clearSession();
        setSession(null);
      }}
    />
  );
}

function SignedIn({ session, onSignedOut }: { session: Session; onSignedOut: () => void }) {
  // null: the user's own library (the server's default).
  const [library, setLibrary] = useState<string | null>(loadLibrary);
  // The switcher's list lives above the provider, which makes a new client per library.
  const libraries = useLibraries({ url: location.origin, getToken: () => session.token, pollIntervalMs: 3000 });

  const options = useMemo<LibraryClientOptions>(() => {
    const { shareAcrossTabs, cache, patches } = urlOptions();
    return {
      url: location.origin,
      getToken: () => session.token,
      ...(library ? { library } : {}),
      shareAcrossTabs,
      patches,
      ...(cache ? { cache: "indexeddb" as const } : {}),
    };
  }, [session, library]);

  const switchTo = (next: string | null) => {
    saveLibrary(next);
    setLibrary(next);
  };

  // A new library gets a new client (key): nothing of the previous one stays on screen.
  return (
    <LibraryProvider key={library ?? "own"} options={options}>
      <Workspace user={session.user} libraries={libraries} library={library} onSwitch={switchTo} onSignedOut={onSignedOut} />
    </LibraryProvider>
  );
}
