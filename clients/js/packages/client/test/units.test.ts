/** The pure pieces: backoff, when to refresh a token, reading a token's user, structural sharing, LibraryError. */

import { describe, expect, it } from "vitest";
import { retryDelay, retryable } from "../src/backoff.js";
import { parseExpiry, refreshAt } from "../src/refresh.js";
import { LibraryError } from "../src/index.js";
import { shareRows } from "../src/rows.js";
import { tokenSubject } from "../src/token.js";
import { signJwt } from "./support.js";

describe("pure helpers", () => {
  it("backoff: 100 ms doubling to 5 s, jittered into [half, whole]", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((f) => retryDelay(f, 1))).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    expect([1, 7].map((f) => retryDelay(f, 0))).toEqual([50, 2500]);
    expect(retryDelay(0, 1)).toBe(100);
  });

  it("retryable: 503 and too_many_mutations only", () => {
    const p = (status: number, code: string) => ({ type: "", title: "", detail: "", status, code });
    expect(retryable(p(503, "database_unavailable"))).toBe(true);
    expect(retryable(p(429, "too_many_mutations"))).toBe(true);
    expect(retryable(p(429, "too_many_sessions"))).toBe(false);
    expect(retryable(p(422, "validation"))).toBe(false);
  });

  it("refreshAt: expires_at minus min(60 s, max(1 s, a fifth of the time left)), never before now", () => {
    const now = 1_000_000;
    expect(refreshAt(now + 3600_000, now)).toBe(now + 3540_000); // an hour: a minute before
    expect(refreshAt(now + 100_000, now)).toBe(now + 80_000); // a fifth of 100 s
    expect(refreshAt(now + 3_000, now)).toBe(now + 2_000); // 3 s: a second before
    expect(refreshAt(now + 500, now)).toBe(now); // under a second left: now
    expect(refreshAt(now - 5_000, now)).toBe(now); // already expired: now
    expect(refreshAt(now + 30 * 86_400_000, now)).toBe(now + 30 * 86_400_000 - 60_000); // a dev token
    expect(parseExpiry("2026-12-02T02:00:00.000Z")).toBe(Date.UTC(2026, 11, 2, 2));
    expect(parseExpiry(null)).toBeNull();
    expect(parseExpiry("soon")).toBeNull();
  });

  it("tokenSubject reads a JWT's sub without verifying, and null for anything else", () => {
    expect(tokenSubject(signJwt("k", { sub: "ålice", exp: 1 }))).toBe("ålice");
    expect(tokenSubject(signJwt("k", { exp: 1 }))).toBeNull();
    expect(tokenSubject("opaque-token")).toBeNull();
    expect(tokenSubject("a.!!!.c")).toBeNull();
  });

  it("shareRows keeps equal rows' objects and an unchanged list's array", () => {
    const a = { id: "a", tags: ["x"], version: 1 };
    const b = { id: "b", tags: [], version: 1 };
    const prev = [a, b];
    expect(shareRows(prev, [{ ...a, tags: ["x"] }, { ...b }])).toBe(prev);
    const changed = shareRows(prev, [{ ...a }, { ...b, version: 2 }]);
    expect(changed).not.toBe(prev);
    expect(changed[0]).toBe(a);
    expect(changed[1]).not.toBe(b);
    const reordered = shareRows(prev, [{ ...b }, { ...a }]);
    expect(reordered).toEqual([b, a]);
    expect(reordered[0]).toBe(b);
    expect(shareRows(prev, [{ ...a }])).toEqual([a]);
  });

  it("LibraryError carries the problem document, its field errors as a list and a map", () => {
    const e = new LibraryError({
      type: "urn:librarian:problem:validation",
      title: "Unprocessable Entity",
      status: 422,
      detail: "title: must not be empty",
      code: "validation",
      errors: [
        { field: "title", message: "must not be empty" },
        { field: "tags[0]", message: "too long" },
      ],
    });
    expect(e).toBeInstanceOf(Error);
    expect(e.message).toBe("title: must not be empty");
    expect(e.fields).toEqual({ title: "must not be empty", "tags[0]": "too long" });
    expect(e.fieldErrors).toHaveLength(2);
    expect(e.current).toBeNull();
    expect(LibraryError.client("closed", "the client was closed")).toMatchObject({ status: 0, code: "closed" });
  });
});
