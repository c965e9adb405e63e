/**
 * The library a session holds, as the server's `snapshot` and `patch` frames make it
 * (docs/PROTOCOL.md, "Patch frames"), and the check of each against its `digest`.
 *
 * - A snapshot newer than the one held is taken (G9: an older one only when marked `reset`);
 *   while a `resync` is outstanding, the snapshot that answers it is taken even at the version
 *   held. A patch applies to the library held at exactly its `from_version`; one that cannot
 *   (another version held, a deleted id not held) asks for a `resync`, and patches are ignored
 *   until the snapshot that answers it.
 * - Digest policy. A library whose canonical form is at most `syncMaxBytes` (1 MiB) is checked
 *   before it is shown: a mismatch is never shown, the previous library stays (its status is
 *   `syncing` until the resync's snapshot). Hashing 1 MiB costs about 14 ms of main thread on
 *   a slow machine; a library of several MB would cost far more per patch, so a larger one is
 *   shown at once (marked not checked: the owner does not cache it) and the newest one is
 *   checked in slices (`sha256Sliced`, no long task) once no patch came for `idleMs` (200 ms), or at the
 *   latest `maxWaitMs` (2 s) after the first one not checked: a steady stream of patches is
 *   checked too. A mismatch found then asks for a `resync` all the same (what is shown stays,
 *   with status `syncing`, until the snapshot replaces it).
 * - The snapshot that answers a `resync` is the server's whole library: if even it does not
 *   hash to its digest, this client's canonical form disagrees with this server's (a newer
 *   server, or a bug). It is taken all the same, digests are no longer checked, and the owner is
 *   told (`distrust`) so that it turns patch frames off: asking again would not help (the
 *   server answers one `resync` per version).
 *
 * No socket here: the owner (`session.ts`) feeds it frames and sends what it asks for.
 */

import { applyPatch, canonicalJson, sha256Digest, sha256Sliced, type PatchBody } from "./patch.js";
import type { LibrarySnapshot } from "./wire.js";

export interface ReplicaEvents {
  /**
   * Show `library` (newer than the last one shown, or replacing it: `reset`, a resync's
   * answer). `checked`: its digest matched, or there is none to check; false while a large
   * library waits for its check (`checked(version)` follows, or a `resync`).
   */
  show(library: LibrarySnapshot, checked: boolean): void;
  /** The library shown at `version` (shown not checked) matched its digest. */
  checked(version: number): void;
  /** Send `resync`: what is held cannot take the patch, or does not match; `version` is the server's. */
  resync(reason: string, version: number): void;
  /** Even the server's answer to a `resync` did not match: digests are no longer checked. */
  distrust(reason: string): void;
}

export interface VerifyPolicy {
  /** Libraries up to this size (canonical JSON, in UTF-16 units) are checked before they are shown. */
  syncMaxBytes: number;
  /** Larger ones: checked once no frame came for this long… */
  idleMs: number;
  /** …or at the latest this long after the first one not checked. */
  maxWaitMs: number;
  /** Awaited between two slices of a check (default: a macrotask). */
  pause?: () => Promise<void>;
}

export const DEFAULT_VERIFY: VerifyPolicy = { syncMaxBytes: 1024 * 1024, idleMs: 200, maxWaitMs: 2000 };

interface Unchecked {
  library: LibrarySnapshot;
  digest: string;
  /** It is the server's answer to a `resync`: a mismatch means distrust, not another resync. */
  answer: boolean;
  /** The `epoch` it was shown in. */
  epoch: number;
}

export class Replica {
  /** The library held (and shown), null before the first. */
  library: LibrarySnapshot | null;
  /** A `resync` was asked for and no snapshot has answered it yet. */
  resyncing = false;
  /**
   * The library held is known not to be the server's at its version (a late check failed, or
   * a patch deleted a row it lacks): a new connection asks for a `resync` again. Otherwise
   * (a mismatch never shown, a patch from elsewhere) the library held is right at its version
   * and a resume from it brings what is newer.
   */
  suspect = false;
  private readonly events: ReplicaEvents;
  private readonly policy: VerifyPolicy;
  /** Check digests (false once even a resync's answer did not match). */
  private trust = true;
  /** The size of the library held (canonical JSON, UTF-16 units), exact or estimated; null: not known. */
  private size: number | null = null;
  /** The newest library shown but not checked yet (a large one). */
  private unchecked: Unchecked | null = null;
  /** When the first library not checked yet was shown (`maxWaitMs` counts from it). */
  private firstUncheckedAt: number | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private checking = false;
  /** Moves with every snapshot taken and every resync: a check of an older epoch is moot. */
  private epoch = 0;
  private closed = false;

  constructor(held: LibrarySnapshot | null, events: ReplicaEvents, policy: Partial<VerifyPolicy> = {}) {
    this.library = held;
    this.events = events;
    const pick = (n: number | undefined, d: number) => (typeof n === "number" && n >= 0 ? n : d);
    this.policy = {
      syncMaxBytes: pick(policy.syncMaxBytes, DEFAULT_VERIFY.syncMaxBytes),
      idleMs: pick(policy.idleMs, DEFAULT_VERIFY.idleMs),
      maxWaitMs: pick(policy.maxWaitMs, DEFAULT_VERIFY.maxWaitMs),
      ...(policy.pause ? { pause: policy.pause } : {}),
    };
  }

  get version(): number | null {
    return this.library?.version ?? null;
  }

  /** Forgets the library held (the next connection loads it whole). */
  drop(): void {
    this.library = null;
    this.size = null;
    this.resyncing = false;
    this.suspect = false;
    this.forgetUnchecked();
    this.epoch += 1;
  }

  close(): void {
    this.closed = true;
    this.forgetUnchecked();
  }

  /**
   * A `snapshot` frame (`bytes`: its length). Returns whether it was taken (shown, or held back
   * for a resync because it did not match).
   */
  snapshot(snapshot: LibrarySnapshot, opts: { reset?: boolean; digest?: string | null; bytes: number }): void {
    const held = this.version;
    const answer = this.resyncing;
    if (!(opts.reset || held === null || snapshot.version > held || (answer && snapshot.version >= held))) return;
    const digest = this.trust && typeof opts.digest === "string" ? opts.digest : null;
    if (digest !== null && opts.bytes <= this.policy.syncMaxBytes) {
      const text = canonicalJson(snapshot);
      if (sha256Digest(text) !== digest) {
        if (!answer) {
          // Not shown: the server's answer replaces it.
          this.resync(`the snapshot of version ${snapshot.version} does not hash to its digest`, snapshot.version, false);
          return;
        }
        this.distrust(`the snapshot of version ${snapshot.version} that answered a resync does not hash to its digest`);
      }
      this.take(snapshot, text.length, true);
      return;
    }
    this.take(snapshot, opts.bytes, digest === null);
    if (digest !== null) this.awaitCheck({ library: snapshot, digest, answer, epoch: this.epoch });
  }

  /** A `patch` frame (`bytes`: its length). */
  patch(patch: PatchBody, bytes: number): void {
    // The snapshot that answers the resync is coming; patches sent before it are moot.
    if (this.resyncing) return;
    const held = this.library;
    if (held === null) {
      this.resync("a patch came before any library", patch.version, false);
      return;
    }
    const applied = applyPatch(held, patch);
    if (!applied.ok) {
      this.resync(applied.reason, patch.version, !applied.wrongBase);
      return;
    }
    const library = applied.library;
    if (!this.trust) {
      this.hold(library, (this.size ?? 0) + bytes);
      this.events.show(library, true);
      return;
    }
    // A library resumed from (cache, another tab): its size is learnt once.
    this.size ??= canonicalJson(held).length;
    if (this.size + bytes <= this.policy.syncMaxBytes) {
      const text = canonicalJson(library);
      if (sha256Digest(text) !== patch.digest) {
        this.resync(`the library at version ${patch.version} does not hash to the patch's digest`, patch.version, false);
        return;
      }
      this.hold(library, text.length);
      this.events.show(library, true);
      return;
    }
    this.hold(library, this.size + bytes);
    this.events.show(library, false);
    this.awaitCheck({ library, digest: patch.digest, answer: false, epoch: this.epoch });
  }

  // ---- internals ---------------------------------------------------------------------------

  /** A snapshot replaces what is held (a new epoch: checks of the old one are moot). */
  private take(snapshot: LibrarySnapshot, size: number, checked: boolean): void {
    this.resyncing = false;
    this.suspect = false;
    this.epoch += 1;
    this.forgetUnchecked();
    this.hold(snapshot, size);
    this.events.show(snapshot, checked);
  }

  private hold(library: LibrarySnapshot, size: number): void {
    this.library = library;
    this.size = size;
  }

  private resync(reason: string, version: number, suspect: boolean): void {
    this.resyncing = true;
    this.suspect = suspect;
    this.epoch += 1;
    this.forgetUnchecked();
    this.events.resync(reason, version);
  }

  private distrust(reason: string): void {
    this.trust = false;
    this.forgetUnchecked();
    this.events.distrust(reason);
  }

  private forgetUnchecked(): void {
    this.unchecked = null;
    this.firstUncheckedAt = null;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** `u` is shown and not checked: check the newest such library when idle (or at the latest after `maxWaitMs`). */
  private awaitCheck(u: Unchecked): void {
    this.unchecked = u;
    this.firstUncheckedAt ??= Date.now();
    this.scheduleCheck();
  }

  private scheduleCheck(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed || this.unchecked === null || this.checking) return;
    const deadline = (this.firstUncheckedAt ?? Date.now()) + this.policy.maxWaitMs;
    const delay = Math.max(0, Math.min(this.policy.idleMs, deadline - Date.now()));
    this.timer = setTimeout(() => void this.check(), delay);
  }

  private async check(): Promise<void> {
    const target = this.unchecked;
    if (this.closed || target === null || this.checking) return;
    this.checking = true;
    let actual: string;
    const text = canonicalJson(target.library);
    try {
      actual = await sha256Sliced(text, this.policy.pause);
    } finally {
      this.checking = false;
    }
    if (this.closed) return;
    if (target.epoch === this.epoch) {
      // The size now known (patches only estimated it): a library that shrank is checked before it is shown again.
      if (this.library === target.library) this.size = text.length;
      if (actual !== target.digest) {
        // What is shown (and every patch applied on it since) is not the server's library.
        if (target.answer) {
          this.distrust(`the snapshot of version ${target.library.version} that answered a resync does not hash to its digest`);
        } else {
          this.resync(`the library at version ${target.library.version} does not hash to its digest`, target.library.version, true);
        }
        return;
      }
      this.events.checked(target.library.version);
      if (this.unchecked === target) {
        this.unchecked = null;
        this.firstUncheckedAt = null;
        return;
      }
    }
    // A newer library came meanwhile: check it (its deadline may have passed already).
    this.scheduleCheck();
  }
}
