// No tearing under concurrent rendering: a time-sliced render of many components is interrupted
// by new states, and no commit ever shows two versions at once. The store is a fake object with
// the client's getState/subscribe (the server has nothing to do with React's scheduling).
import { startTransition } from "react";
import { createRoot } from "react-dom/client";
import { expect, it } from "vitest";
import type { LibraryClient, LibraryState } from "@librarian/client";
import { LibraryProvider, useLibrary, useLibrarySelector } from "../src/index.js";

function state(version: number): LibraryState {
  return {
    version,
    projects: [],
    contextBlocks: [],
    savedPrompts: [],
    temporaryBlocks: [],
    status: { state: "live", cached: false },
    isLoading: false,
    error: null,
    lastSyncedAt: version,
    lastWriteVersion: null,
    libraryId: null,
    role: "owner",
    sessionId: null,
    members: [],
    presence: [],
  };
}

class FakeStore {
  private listeners = new Set<() => void>();
  constructor(private state: LibraryState) {}
  getState = () => this.state;
  subscribe = (listener: () => void) => {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  };
  set(next: LibraryState) {
    this.state = next;
    for (const l of [...this.listeners]) l();
  }
}

/** A slow component: a render of 60 of them takes far longer than React's 5 ms time slice. */
function busy(ms: number) {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin
  }
}
function BySelector() {
  const version = useLibrarySelector((s) => s.version);
  busy(1);
  return <span data-v="">{version}</span>;
}
function ByLibrary() {
  const { version } = useLibrary();
  busy(1);
  return <span data-v="">{version}</span>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it("never commits two versions at once while a transition render is interrupted by new states", { timeout: 40_000 }, async () => {
  (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;
  const store = new FakeStore(state(0));
  const container = document.createElement("div");
  document.body.append(container);
  const shown: string[][] = [];
  const read = () => [...container.querySelectorAll("[data-v]")].map((e) => e.textContent ?? "");
  // Called after each commit (a commit is one synchronous batch of DOM changes).
  const observer = new MutationObserver(() => shown.push(read()));
  observer.observe(container, { subtree: true, childList: true, characterData: true });

  const root = createRoot(container);
  startTransition(() => {
    root.render(
      <LibraryProvider client={store as unknown as LibraryClient}>
        {Array.from({ length: 60 }, (_, i) => (i % 2 ? <BySelector key={i} /> : <ByLibrary key={i} />))}
      </LibraryProvider>,
    );
  });
  // New states while React renders in slices (setTimeout runs between the slices).
  for (let v = 1; v <= 20; v++) {
    await sleep(3);
    store.set(state(v));
  }
  // Hang guard (generous: a loaded 2-core machine renders the 60 slow components slowly):
  // until the last state is shown.
  const deadline = Date.now() + 25_000;
  const done = () => {
    const now = read();
    return now.length === 60 && now.every((t) => t === "20");
  };
  while (Date.now() < deadline && !done()) await sleep(10);
  observer.disconnect();
  root.unmount();
  container.remove();

  expect(shown.length).toBeGreaterThan(0);
  expect(shown[shown.length - 1]).toEqual(Array(60).fill("20"));
  for (const commit of shown) if (commit.length) expect(new Set(commit).size).toBe(1);
  if (process.env.DEBUG_TEARING) console.log(shown.map((c) => c[0]).join(" "));
});
