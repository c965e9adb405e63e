// Patch frames on a large library (DESIGN §10), measured against the real server: a library of
// 3 000 items (500 projects, 1 500 context blocks, 1 000 saved prompts, ~1.4 MB as JSON), one
// client with patch frames and one without (each behind a proxy that counts what it receives),
// then 20 edits of one block each. Prints the bytes per edit on each socket, and what the
// client spends per patch on the main thread: apply, the canonical JSON, sha256 of it, and the
// sliced check of a large library (which yields between slices). Numbers only, nothing
// asserted. Run: `npm run bench -w @librarian/client` (after `cargo build`).
import { it } from "vitest";
import WebSocket from "ws";
import { LibraryClient, type LibrarySnapshot, type LibraryState } from "../src/index.js";
import { applyPatch, canonicalJson, digestOf, digestSliced, sha256Digest, type PatchBody } from "../src/patch.js";
import { startProxy, startServer, waitForState } from "../../../testing/index.js";

const PROJECTS = 500;
const BLOCKS = 1500;
const PROMPTS = 1000;
const EDITS = 20;

const text = (n: number, seed: number) => `Lorem ipsum ${seed} `.repeat(Math.ceil(n / 16)).slice(0, n);

/** Runs `fn` on `items` with at most `width` at once. */
async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function ms(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return `median ${median.toFixed(2)} ms, max ${sorted[sorted.length - 1]!.toFixed(2)} ms`;
}

it("patch frames on a 3 000-item library", async () => {
  const server = await startServer();
  try {
    const token = await server.token("bench");
    const post = async (path: string, body: unknown) => {
      const res = await server.request<{ data: { id: string } }>("POST", `/api/v1/${path}`, { token, body });
      if (res.status !== 201) throw new Error(`POST ${path}: ${res.status}`);
      return res.body.data.id;
    };
    const projects: string[] = [];
    await pool([...Array(PROJECTS).keys()], 8, async (i) => {
      projects.push(await post("projects", { name: `Project ${i}`, description: text(60, i) }));
    });
    const blocks: string[] = [];
    await pool([...Array(BLOCKS).keys()], 8, async (i) => {
      blocks.push(await post("context-blocks", { title: `Block ${i}`, content: text(420, i), tags: ["a", "b"], project_id: projects[i % PROJECTS] }));
    });
    await pool([...Array(PROMPTS).keys()], 8, async (i) => {
      await post("saved-prompts", { title: `Prompt ${i}`, content: text(120, i), context_block_ids: [blocks[i]!, blocks[(i + 1) % BLOCKS]!] });
    });
    const whole = await server.request<LibrarySnapshot>("GET", "/api/v1/library", { token });
    const libraryBytes = JSON.stringify(whole.body).length;

    const clients: Array<{ name: string; client: LibraryClient; received: () => number }> = [];
    for (const patches of [true, false]) {
      const proxy = await startProxy(server.port);
      const client = new LibraryClient({ url: proxy.url, getToken: () => token, WebSocket, patches });
      await waitForState(client, (s: LibraryState) => s.status.state === "live" && s.version === whole.body.version, "live", 120_000);
      const base = proxy.connections.flatMap((c) => c.serverFrames).reduce((n, f) => n + f.length, 0);
      const received = () => proxy.connections.flatMap((c) => c.serverFrames).reduce((n, f) => n + f.length, 0) - base;
      clients.push({ name: patches ? "patches" : "snapshots", client, received });
    }

    for (let i = 0; i < EDITS; i++) {
      const res = await server.request<{ library_version: number }>("PATCH", `/api/v1/context-blocks/${blocks[i * 37]}`, {
        token,
        body: { title: `Edited ${i}` },
      });
      for (const c of clients) await waitForState(c.client, (s: LibraryState) => s.version === res.body.library_version, "the edit", 120_000);
    }
    const lines = [`library: ${whole.body.projects.length + whole.body.context_blocks.length + whole.body.saved_prompts.length} items, ${(libraryBytes / 1e6).toFixed(2)} MB as JSON`];
    for (const c of clients) lines.push(`${c.name}: ${(c.received() / EDITS / 1e3).toFixed(1)} kB received per edit (${EDITS} edits)`);
    const [a, b] = clients;
    lines.push(`same library on both: ${canonicalJson(toSnapshot(a!.client.getState())) === canonicalJson(toSnapshot(b!.client.getState()))}`);

    // The client's side of one patch, on the library as the server sent it.
    const held = whole.body;
    const row = held.context_blocks[700]!;
    const apply: number[] = [];
    const canonical: number[] = [];
    const hash: number[] = [];
    const sliced: number[] = [];
    let library = held;
    digestOf(library); // warm: every row's canonical text once
    for (let i = 0; i < 30; i++) {
      const patch: PatchBody = {
        from_version: library.version,
        version: library.version + 1,
        digest: "",
        context_blocks: { upsert: [{ ...row, title: `T${i}`, version: row.version + i + 1 }], delete: [] },
      };
      let t = performance.now();
      const applied = applyPatch(library, patch);
      apply.push(performance.now() - t);
      if (!applied.ok) throw new Error(applied.reason);
      library = applied.library;
      t = performance.now();
      const json = canonicalJson(library);
      canonical.push(performance.now() - t);
      t = performance.now();
      sha256Digest(json);
      hash.push(performance.now() - t);
      t = performance.now();
      await digestSliced(library);
      sliced.push(performance.now() - t);
    }
    lines.push(`per patch of one row: apply ${ms(apply)}; canonical JSON ${ms(canonical)}; sha256 ${ms(hash)}`);
    lines.push(`sliced check (wall time, yielding every 256 KiB): ${ms(sliced)}`);
    console.log(lines.join("\n"));
    for (const c of clients) await c.client.close();
  } finally {
    await server.stop();
  }
}, 900_000);

function toSnapshot(s: LibraryState): LibrarySnapshot {
  return { version: s.version!, projects: s.projects, context_blocks: s.contextBlocks, saved_prompts: s.savedPrompts, members: s.members };
}
