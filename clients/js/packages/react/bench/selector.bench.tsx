// 1 000 snapshot updates of a 300-item library (100 projects, 100 context blocks, 100 saved
// prompts) through the same four components, on useLibrary() and on useLibrarySelector():
// total time and renders. Each update is a new state with one block changed, either with every
// row a new object (parsed from JSON; selectors compare with `sameRows`) or with unchanged rows
// and lists kept as they were, as @librarian/client does (selectors compare with Object.is).
// The store is a fake object with the client's getState/subscribe: this measures the bindings,
// not the network. Run: `npm run bench -w @librarian/react`. Numbers only, nothing asserted.
import { act, cleanup, render } from "@testing-library/react";
import { it } from "vitest";
import type { LibraryClient, LibraryState } from "@librarian/client";
import { LibraryProvider, sameRows, useLibrary, useLibrarySelector } from "../src/index.js";

const UPDATES = 1_000;
const PER_KIND = 100;
const at = "2026-01-01T00:00:00.000Z";

function library(version: number, previous?: LibraryState): LibraryState {
  const projects = Array.from({ length: PER_KIND }, (_, i) => ({
    id: `p${i}`, parent_id: i % 10 ? `p${i - (i % 10)}` : null, name: `Project ${i}`, description: "",
    version: 1, created_at: at, updated_at: at,
  }));
  // Block `version % PER_KIND` changes in each update (its row version grows).
  const changed = version % PER_KIND;
  const contextBlocks = Array.from({ length: PER_KIND }, (_, i) => ({
    id: `b${i}`, project_id: `p${i}`, title: `Block ${i}${i === changed ? ` v${version}` : ""}`,
    content: "x".repeat(200), tags: ["a", "b"], version: i === changed ? version : 1, created_at: at, updated_at: at,
  }));
  const savedPrompts = Array.from({ length: PER_KIND }, (_, i) => ({
    id: `s${i}`, project_id: null, title: `Prompt ${i}`, content: "", tags: [],
    context_block_ids: [`b${i}`, `b${(i + 1) % PER_KIND}`], version: 1, created_at: at, updated_at: at,
  }));
  // As from JSON: nothing shared with the previous state.
  const state = JSON.parse(JSON.stringify({
    version, projects, contextBlocks, savedPrompts, temporaryBlocks: [],
    status: { state: "live", cached: false }, isLoading: false, error: null, lastSyncedAt: version,
    lastWriteVersion: null, libraryId: null, role: "owner", sessionId: null, members: [], presence: [],
  })) as LibraryState;
  if (!previous) return state;
  // Structural sharing: unchanged rows, lists and status keep their objects.
  const share = <T extends { id: string; version: number }>(old: T[], next: T[]): T[] => {
    const rows = next.map((row, i) => (old[i]?.id === row.id && old[i]?.version === row.version ? old[i]! : row));
    return rows.every((row, i) => row === old[i]) && rows.length === old.length ? old : rows;
  };
  return {
    ...state,
    projects: share(previous.projects, state.projects),
    contextBlocks: share(previous.contextBlocks, state.contextBlocks),
    savedPrompts: share(previous.savedPrompts, state.savedPrompts),
    temporaryBlocks: previous.temporaryBlocks,
    status: previous.status,
  };
}

class FakeStore {
  private state: LibraryState;
  private listeners = new Set<() => void>();
  constructor(state: LibraryState) { this.state = state; }
  getState = () => this.state;
  subscribe = (listener: () => void) => { this.listeners.add(listener); return () => void this.listeners.delete(listener); };
  set(state: LibraryState) { this.state = state; for (const l of this.listeners) l(); }
}

type Counts = Record<"projects" | "blocks" | "prompts" | "status", number>;
type Kind = "useLibrary" | "useLibrarySelector" | "useLibrarySelector, shared rows";

function tree(kind: Kind, counts: Counts) {
  const whole = kind === "useLibrary";
  const rows = kind === "useLibrarySelector" ? sameRows : Object.is;
  function Projects() {
    counts.projects++;
    const projects = whole ? useLibrary().projects : useLibrarySelector((s) => s.projects, rows);
    return <ul>{projects.map((p) => <li key={p.id}>{p.name}</li>)}</ul>;
  }
  function Blocks() {
    counts.blocks++;
    const blocks = whole ? useLibrary().contextBlocks : useLibrarySelector((s) => s.contextBlocks, rows);
    return <ul>{blocks.map((b) => <li key={b.id}>{b.title} {b.tags.join(",")}</li>)}</ul>;
  }
  function Prompts() {
    counts.prompts++;
    const prompts = whole ? useLibrary().savedPrompts : useLibrarySelector((s) => s.savedPrompts, rows);
    return <ul>{prompts.map((p) => <li key={p.id}>{p.title} ({p.context_block_ids.length})</li>)}</ul>;
  }
  function Status() {
    counts.status++;
    const state = whole ? useLibrary().status.state : useLibrarySelector((s) => s.status.state);
    return <span>{state}</span>;
  }
  return () => (<><Status /><Projects /><Blocks /><Prompts /></>);
}

function run(kind: Kind) {
  // Built before timing.
  const first = library(1);
  const states: LibraryState[] = [];
  for (let i = 0, prev = first; i < UPDATES; i++) {
    prev = library(i + 2, kind === "useLibrarySelector, shared rows" ? prev : undefined);
    states.push(prev);
  }
  const store = new FakeStore(first);
  const counts: Counts = { projects: 0, blocks: 0, prompts: 0, status: 0 };
  const App = tree(kind, counts);
  render(<LibraryProvider client={store as unknown as LibraryClient}><App /></LibraryProvider>);
  const start = performance.now();
  for (const next of states) act(() => store.set(next));
  const ms = performance.now() - start;
  cleanup();
  const renders = Object.values(counts).reduce((a, b) => a + b, 0);
  return { kind, ms, renders, counts };
}

it("1 000 snapshot updates, 300-item library: useLibrary vs useLibrarySelector", () => {
  (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
  const kinds: Kind[] = ["useLibrary", "useLibrarySelector", "useLibrarySelector, shared rows"];
  for (const kind of kinds) run(kind); // warm-up (JIT), not reported
  const rounds = 3;
  const results: ReturnType<typeof run>[] = [];
  for (let r = 0; r < rounds; r++) for (const kind of kinds) results.push(run(kind));
  const median = (kind: Kind) => {
    const ms = results.filter((x) => x.kind === kind).map((x) => x.ms).sort((a, b) => a - b);
    return ms[Math.floor(ms.length / 2)]!;
  };
  const whole = results.find((x) => x.kind === "useLibrary")!;
  const lines = [`${UPDATES} updates, ${3 * PER_KIND} items, 4 components (status, projects, blocks, prompts); median of ${rounds}`];
  for (const kind of kinds) {
    const r = results.find((x) => x.kind === kind)!;
    const avoided = whole.renders - r.renders;
    lines.push(
      `${kind.padEnd(32)} ${median(kind).toFixed(0).padStart(5)} ms total, ${(median(kind) / UPDATES).toFixed(3)} ms/update, ` +
        `${r.renders} renders ${JSON.stringify(r.counts)}, ${avoided} avoided (${((100 * avoided) / whole.renders).toFixed(1)}%)`,
    );
  }
  console.log(`\n${lines.join("\n")}\n`);
});
