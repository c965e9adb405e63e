/**
 * The Replica without a socket: which libraries it shows, when it asks for a resync, and the
 * digest policy (checked before showing up to `syncMaxBytes`, after showing above it).
 * Fixtures: a server's library at versions 5 and 9 and the patch between them (patch.test.ts).
 */

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { LibrarySnapshot } from "../src/index.js";
import type { PatchBody } from "../src/patch.js";
import { Replica, type VerifyPolicy } from "../src/replica.js";
import { until } from "./support.js";

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");
const V5 = fixture("library-5.json");
const V9 = fixture("library-9.json");
const PATCH = fixture("patch-5-9.json");
const V5_DIGEST = "sha256:acf6d9df2c7acd41372a8ce2c6a32404e069a84b541ee2def2e353f378e56a78";
const V9_DIGEST = "sha256:74c5ff5f1fcf9f6a8cdb6c476027e2d081a10a32335b8f70ede7f21608d90520";
const WRONG = `sha256:${"0".repeat(64)}`;

const lib = (text: string) => JSON.parse(text) as LibrarySnapshot;
const patch = (): PatchBody => {
  const { type: _type, ...body } = JSON.parse(PATCH) as PatchBody & { type: string };
  return body;
};

type Event =
  | { e: "show"; version: number; checked: boolean; title?: string }
  | { e: "checked"; version: number }
  | { e: "resync"; version: number }
  | { e: "distrust" };

function replica(held: LibrarySnapshot | null, policy: Partial<VerifyPolicy> = {}) {
  const events: Event[] = [];
  const r = new Replica(
    held,
    {
      show: (l, checked) => events.push({ e: "show", version: l.version, checked, title: l.context_blocks[0]?.title }),
      checked: (version) => events.push({ e: "checked", version }),
      resync: (_reason, version) => events.push({ e: "resync", version }),
      distrust: () => events.push({ e: "distrust" }),
    },
    policy,
  );
  return { r, events };
}

const snap = (text: string, digest: string | null, extra: { reset?: boolean } = {}) =>
  [lib(text), { digest, bytes: text.length, ...extra }] as const;

describe("Replica (small libraries: checked before shown)", () => {
  it("shows a matching snapshot and patch; a mismatching patch is not shown, asks for a resync, and patches wait for the answer", () => {
    const { r, events } = replica(null);
    r.snapshot(...snap(V5, V5_DIGEST));
    r.patch(patch(), PATCH.length);
    expect(events).toEqual([
      { e: "show", version: 5, checked: true, title: expect.any(String) },
      { e: "show", version: 9, checked: true, title: 'Tone \u0001\u001f\u007f' },
    ]);
    expect(r.version).toBe(9);

    events.length = 0;
    const { r: r2, events: e2 } = replica(lib(V5));
    r2.patch({ ...patch(), digest: WRONG }, PATCH.length);
    expect(e2).toEqual([{ e: "resync", version: 9 }]);
    expect(r2.version).toBe(5);
    expect(r2.resyncing).toBe(true);
    // Patches sent before the server read the resync are moot.
    r2.patch(patch(), PATCH.length);
    expect(e2).toHaveLength(1);
    // The answer is taken even at a version not above the one held, and patches go on from it.
    r2.snapshot(...snap(V9, V9_DIGEST));
    expect(e2.at(-1)).toMatchObject({ e: "show", version: 9, checked: true });
    expect(r2.resyncing).toBe(false);
    r2.snapshot(...snap(V9, V9_DIGEST));
    expect(e2).toHaveLength(2);
  });

  it("a snapshot that does not match is not shown; an answer to a resync that does not match is shown and ends the checks", () => {
    const { r, events } = replica(lib(V5));
    r.snapshot(...snap(V9, WRONG));
    expect(events).toEqual([{ e: "resync", version: 9 }]);
    expect(r.version).toBe(5);
    r.snapshot(...snap(V9, WRONG));
    expect(events.slice(1)).toEqual([{ e: "distrust" }, { e: "show", version: 9, checked: true, title: expect.any(String) }]);
    // Digests are not checked any more: a patch applies on its own terms.
    const next: PatchBody = { from_version: 9, version: 10, digest: WRONG, context_blocks: { upsert: [], delete: [] } };
    r.patch(next, 100);
    expect(events.at(-1)).toMatchObject({ e: "show", version: 10, checked: true });
  });

  it("G9: an older snapshot is ignored unless reset; a snapshot without digest (older servers) is shown as it is", () => {
    const { r, events } = replica(lib(V9));
    r.snapshot(...snap(V5, V5_DIGEST));
    expect(events).toEqual([]);
    r.snapshot(...snap(V5, V5_DIGEST, { reset: true }));
    expect(events).toEqual([{ e: "show", version: 5, checked: true, title: expect.any(String) }]);
    r.snapshot(...snap(V9, null));
    expect(events.at(-1)).toMatchObject({ e: "show", version: 9, checked: true });
  });

  it("a patch that cannot apply asks for a resync: another from_version, a delete of a row not held, nothing held", () => {
    const { r, events } = replica(lib(V9));
    r.patch(patch(), PATCH.length);
    expect(events).toEqual([{ e: "resync", version: 9 }]);
    const { r: r2, events: e2 } = replica(lib(V9));
    r2.patch({ from_version: 9, version: 10, digest: WRONG, saved_prompts: { upsert: [], delete: ["nope"] } }, 100);
    expect(e2).toEqual([{ e: "resync", version: 10 }]);
    const { r: r3, events: e3 } = replica(null);
    r3.patch(patch(), PATCH.length);
    expect(e3).toEqual([{ e: "resync", version: 9 }]);
  });
});

describe("Replica (large libraries: shown, then checked)", () => {
  const large = { syncMaxBytes: 10, idleMs: 0, maxWaitMs: 0 };

  it("shows at once, then says the newest library checked", async () => {
    const { r, events } = replica(null, large);
    r.snapshot(...snap(V5, V5_DIGEST));
    expect(events).toEqual([{ e: "show", version: 5, checked: false, title: expect.any(String) }]);
    r.patch(patch(), PATCH.length);
    expect(events[1]).toMatchObject({ e: "show", version: 9, checked: false });
    await until(() => events.some((e) => e.e === "checked" && e.version === 9), "v9 checked");
    expect(events.filter((e) => e.e === "resync")).toEqual([]);
    r.close();
  });

  it("a late mismatch asks for a resync (also of a library patched further since)", async () => {
    const { r, events } = replica(null, { ...large, idleMs: 50, maxWaitMs: 100 });
    // The snapshot's digest is wrong: v5 is shown, v9 is patched on it, and the check of v9 fails.
    r.snapshot(...snap(V5, WRONG));
    r.patch({ ...patch(), digest: V9_DIGEST.replace("e2", "ff") }, PATCH.length);
    await until(() => r.resyncing, "the resync");
    expect(events.filter((e) => e.e === "resync")).toEqual([{ e: "resync", version: 9 }]);
    expect(events.some((e) => e.e === "checked")).toBe(false);
    // The answer replaces it and is checked in turn.
    r.snapshot(...snap(V9, V9_DIGEST));
    await until(() => events.some((e) => e.e === "checked" && e.version === 9), "the answer checked");
    r.close();
  });

  it("a steady stream of patches is checked all the same (maxWaitMs wins over idleMs)", async () => {
    const { r, events } = replica(null, { syncMaxBytes: 10, idleMs: 60_000, maxWaitMs: 0 });
    r.snapshot(...snap(V5, V5_DIGEST));
    await until(() => events.some((e) => e.e === "checked"), "checked although frames never paused for idleMs");
    expect(events.filter((e) => e.e === "checked")).toEqual([{ e: "checked", version: 5 }]);
    r.close();
  });
});
