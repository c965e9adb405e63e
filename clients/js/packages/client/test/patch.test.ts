/**
 * The pure part of patch frames: applying a patch, the canonical snapshot and its digest.
 *
 * The fixtures are bytes a real server answered (`GET /api/v1/library` at versions 5 and 9 of
 * one library, with quotes, backslashes, control characters, DEL, U+2028, an emoji and other
 * non-ASCII text); `patch-5-9.json` is the patch between them (a project deleted, its child
 * moved to the top, a block updated, another deleted and so removed from a prompt, a project
 * created). The digests below were computed apart from this code, with `sha256sum` over those
 * files (and over the `printf %s` strings quoted), and match the server's `Library-Digest`.
 */

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { applyPatch, canonicalJson, compareRows, digestOf, digestSliced, sha256Digest, type PatchBody } from "../src/patch.js";
import type { ContextBlock, LibrarySnapshot } from "../src/index.js";

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");

const V5 = fixture("library-5.json");
const V9 = fixture("library-9.json");
const PATCH = fixture("patch-5-9.json");
/** `sha256sum library-5.json` */
const V5_DIGEST = "sha256:acf6d9df2c7acd41372a8ce2c6a32404e069a84b541ee2def2e353f378e56a78";
/** `sha256sum library-9.json` */
const V9_DIGEST = "sha256:74c5ff5f1fcf9f6a8cdb6c476027e2d081a10a32335b8f70ede7f21608d90520";

const parse = (text: string) => JSON.parse(text) as LibrarySnapshot;
const patchOf = (text: string) => {
  const { type: _type, ...body } = JSON.parse(text) as PatchBody & { type: string };
  return body;
};

describe("canonical snapshot and digest", () => {
  it("re-serializes a server's snapshot byte for byte, and hashes it to sha256sum's digest", () => {
    expect(canonicalJson(parse(V5))).toBe(V5);
    expect(canonicalJson(parse(V9))).toBe(V9);
    expect(digestOf(parse(V5))).toBe(V5_DIGEST);
    expect(digestOf(parse(V9))).toBe(V9_DIGEST);
    // The fixture has the characters the escaping rules are about.
    expect(V5).toContain("\\u0001\\u001f\u007f");
    expect(V5).toContain("\u2028");
    expect(V5).toContain('\\"quoted\\" \\\\ back');
    expect(V5).toContain("\\b\\f\\r");
  });

  it("builds the fixed key order whatever order the rows' keys come in (a cached copy, a future server)", () => {
    const shuffled = parse(V5);
    shuffled.context_blocks = shuffled.context_blocks.map((b) => {
      const entries = Object.entries(b).reverse();
      return Object.fromEntries(entries) as ContextBlock;
    });
    expect(JSON.stringify(shuffled)).not.toBe(V5);
    expect(canonicalJson(shuffled)).toBe(V5);
  });

  it("an empty library and a members list, against printf | sha256sum", () => {
    // printf %s '{"projects":[],"context_blocks":[],"saved_prompts":[],"members":[],"version":0}' | sha256sum
    const empty: LibrarySnapshot = { version: 0, projects: [], context_blocks: [], saved_prompts: [], members: [] };
    expect(canonicalJson(empty)).toBe('{"projects":[],"context_blocks":[],"saved_prompts":[],"members":[],"version":0}');
    expect(digestOf(empty)).toBe("sha256:f0575cff8b42b5c974c1c32e2d207112d9f8a2ee6f14b15c6534258c76cf5a77");
    // Members as a server before shared libraries left them out: an empty list.
    const { members: _members, ...old } = empty;
    expect(digestOf(old as LibrarySnapshot)).toBe(digestOf(empty));
    const shared: LibrarySnapshot = {
      ...empty,
      version: 3,
      members: [
        { role: "owner", user_id: "alice" } as LibrarySnapshot["members"][number],
        { user_id: "bob", role: "viewer" },
      ],
    };
    // printf %s '{"projects":[],"context_blocks":[],"saved_prompts":[],"members":[{"user_id":"alice","role":"owner"},{"user_id":"bob","role":"viewer"}],"version":3}' | sha256sum
    expect(digestOf(shared)).toBe("sha256:48e929aefd4217186dcd1947d829ce4c16801aac08d6b3ad26c3e833d2b9ef1d");
  });

  it("digestSliced gives the same digest in slices, never splitting a surrogate pair", async () => {
    expect(await digestSliced(parse(V9))).toBe(V9_DIGEST);
    // A library over several slices, with emoji (surrogate pairs) at every offset.
    const big = parse(V9);
    const block = big.context_blocks[0]!;
    big.context_blocks = Array.from({ length: 40 }, (_, i) => ({
      ...block,
      id: `01a24260-3578-72c0-8b00-${String(i).padStart(12, "0")}`,
      content: `${"x".repeat(i)}${"😀".repeat(20_000)}`,
    }));
    let pauses = 0;
    const sliced = await digestSliced(big, async () => {
      pauses += 1;
    });
    expect(pauses).toBeGreaterThan(3);
    expect(sliced).toBe(sha256Digest(canonicalJson(big)));
    expect(sliced).toBe(digestOf(big));
  });
});

describe("applyPatch", () => {
  it("turns the library at from_version into the one at version, byte for byte", () => {
    const held = parse(V5);
    const applied = applyPatch(held, patchOf(PATCH));
    expect(applied.ok).toBe(true);
    if (!applied.ok) return;
    expect(canonicalJson(applied.library)).toBe(V9);
    expect(digestOf(applied.library)).toBe(V9_DIGEST);
    expect(applied.library.version).toBe(9);
    // The library held is left as it was.
    expect(canonicalJson(held)).toBe(V5);
  });

  it("keeps the lists and rows it does not touch, inserts in (created_at, id) order, replaces members", () => {
    const held = parse(V9);
    const [first] = held.projects;
    const block = held.context_blocks[0]!;
    // Three blocks: one between the held one and the end by created_at, one with the same
    // created_at and a smaller id (before it), one at the very start.
    const later = { ...block, id: "ffffffff-0000-7000-8000-000000000000", created_at: "2026-12-04T18:45:40.000Z" };
    const sameTimeSmallerId = { ...block, id: "00000000-0000-7000-8000-000000000000" };
    const earliest = { ...block, id: "11111111-0000-7000-8000-000000000000", created_at: "2026-01-01T00:00:00.000Z" };
    const applied = applyPatch(held, {
      from_version: 9,
      version: 10,
      digest: "sha256:unused",
      context_blocks: { upsert: [later, sameTimeSmallerId, earliest], delete: [] },
      members: [
        { user_id: "bob", role: "editor" },
        { user_id: "fixture", role: "owner" },
      ],
    });
    if (!applied.ok) throw new Error(applied.reason);
    const lib = applied.library;
    expect(lib.context_blocks.map((b) => b.id)).toEqual([earliest.id, sameTimeSmallerId.id, block.id, later.id]);
    expect(lib.context_blocks[2]).toBe(block);
    expect(lib.projects).toBe(held.projects);
    expect(lib.projects[0]).toBe(first);
    expect(lib.saved_prompts).toBe(held.saved_prompts);
    expect(lib.members.map((m) => m.user_id)).toEqual(["bob", "fixture"]);
    // Every list stays sorted.
    for (const list of [lib.projects, lib.context_blocks, lib.saved_prompts] as Array<Array<{ id: string; created_at: string }>>) {
      expect([...list].sort(compareRows)).toEqual(list);
    }
    // An upsert of a held row replaces it in place (same key), an update of created_at moves it.
    const moved = { ...block, version: 3, created_at: "2027-01-01T00:00:00.000Z" };
    const again = applyPatch(lib, { from_version: 10, version: 11, digest: "", context_blocks: { upsert: [moved], delete: [later.id] } });
    if (!again.ok) throw new Error(again.reason);
    expect(again.library.context_blocks.map((b) => b.id)).toEqual([earliest.id, sameTimeSmallerId.id, block.id]);
    expect(again.library.context_blocks[2]).toBe(moved);
    expect(again.library.members).toBe(lib.members);
    // Lists given as null (the schema allows it) change nothing.
    const none = applyPatch(again.library, { from_version: 11, version: 12, digest: "", projects: null, saved_prompts: null, members: null });
    if (!none.ok) throw new Error(none.reason);
    expect(none.library.projects).toBe(again.library.projects);
    expect(none.library.members).toBe(again.library.members);
    expect(none.library.version).toBe(12);
  });

  it("cannot apply from another version, nor delete a row not held", () => {
    const held = parse(V9);
    const wrongBase = applyPatch(held, { ...patchOf(PATCH) });
    expect(wrongBase).toEqual({ ok: false, wrongBase: true, reason: "the patch starts at version 5, the library held is at 9" });
    const missing = applyPatch(held, {
      from_version: 9,
      version: 10,
      digest: "",
      projects: { upsert: [], delete: ["01a24260-349c-7134-8277-593fba9ee52b"] },
    });
    expect(missing).toMatchObject({ ok: false, wrongBase: false });
    if (!missing.ok) expect(missing.reason).toContain("01a24260-349c-7134-8277-593fba9ee52b");
  });
});
