// librarian.js: the browser client of Librarian, with the same semantics as the Rust SDK.
//
// - One WebSocket session, reconnecting with backoff and `since_version`.
// - `snapshot` and `status` change only from what the server sends: nothing is shown before
//   the server confirmed it (no optimistic state).
// - A mutation's promise resolves once the server acknowledged it AND this client holds a
//   snapshot at least as new as its version (read-your-writes); it rejects with the server's
//   problem document. Mutations not yet acknowledged when the connection drops are sent again
//   with the same `mutation_id`, which the server applies at most once.
// - At most `hello.max_inflight_mutations` mutations are unanswered on a session; the rest
//   wait in order and go as answers arrive. A reject that means "not now" (`too_many_mutations`,
//   any 503) is resent with the same `mutation_id` after a backoff, never reported: an earlier
//   attempt of it may have committed.
// - Never a step back (G9): a snapshot older than the one held is ignored, unless the server
//   marks it `reset` (its database went back, restored from a backup).
// - Temporary blocks live only here: merged into `view()`, marked `temporary`, never sent,
//   kept across snapshots until saved (a create) or discarded.

// The same backoff as librarian_core::backoff::Backoff::DEFAULT (the Rust side of every retry).
const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 5000;

/** The one backoff (reconnects and deferred mutations): exponential, capped, with jitter. */
function retryDelay(failures) {
  const exp = Math.min(RETRY_BASE_MS * 2 ** Math.min(Math.max(failures - 1, 0), 10), RETRY_MAX_MS);
  return Math.round(exp * (0.5 + Math.random() / 2));
}

/** A reject that says "not now" rather than "no". */
function retryable(problem) {
  return problem?.status === 503 || problem?.code === "too_many_mutations";
}

function uuid() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A refused mutation: `problem` is the server's problem+json document. */
export class MutationError extends Error {
  constructor(problem) {
    super(problem?.detail || problem?.title || "rejected");
    this.problem = problem;
  }
}

/** Asks a dev-mode server for a token (absent in jwt mode: rejects). */
export async function devToken(baseUrl, user) {
  const res = await fetch(new URL("/api/v1/dev/token", baseUrl), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new MutationError(body);
  return body.token;
}

export class Library extends EventTarget {
  /**
   * @param {string} baseUrl the server, e.g. location.origin
   * @param {string} token a bearer token
   */
  constructor(baseUrl, token) {
    super();
    this.baseUrl = baseUrl;
    this.token = token;
    /** The latest snapshot ({version, projects, context_blocks, saved_prompts}) or null. */
    this.snapshot = null;
    /** {state: "connecting"|"loading"|"live"|"syncing"|"error"|"reconnecting", ...} */
    this.status = { state: "connecting" };
    /** Unresolved mutations by id; a Map keeps the order they were issued (and are sent) in. */
    this.pending = new Map();
    /** The current session's `max_inflight_mutations`; null until its `hello`. */
    this.maxInflight = null;
    this.retryTimer = null;
    this.temporary = [];
    this.failures = 0;
    this.closed = false;
    this.ws = null;
    this.#connect();
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.ws?.close(1000);
    for (const p of this.pending.values()) p.reject(new MutationError({ detail: "closed" }));
    this.pending.clear();
  }

  /** The library as shown: the snapshot plus temporary blocks (marked `temporary: true`). */
  view() {
    const s = this.snapshot;
    return {
      version: s ? s.version : null,
      projects: s ? s.projects : [],
      context_blocks: [
        ...(s ? s.context_blocks.map((b) => ({ ...b, temporary: false })) : []),
        ...this.temporary.map((t) => ({ ...t, temporary: true })),
      ],
      saved_prompts: s ? s.saved_prompts : [],
    };
  }

  // ---- mutations ------------------------------------------------------------------------

  mutate(op, id, data, ifVersion) {
    const mutation_id = uuid();
    const frame = { type: "mutate", mutation_id, op };
    if (id) frame.id = id;
    if (ifVersion != null) frame.if_version = ifVersion;
    if (data !== undefined) frame.data = data;
    return new Promise((resolve, reject) => {
      this.pending.set(mutation_id, { frame, resolve, reject, acked: null, inFlight: false, retries: 0, notBefore: 0 });
      this.#pump();
    });
  }

  createProject(data) { return this.mutate("project.create", null, data); }
  updateProject(id, patch, ifVersion) { return this.mutate("project.update", id, patch, ifVersion); }
  deleteProject(id, ifVersion) { return this.mutate("project.delete", id, undefined, ifVersion); }
  createContextBlock(data) { return this.mutate("context_block.create", null, data); }
  updateContextBlock(id, patch, ifVersion) { return this.mutate("context_block.update", id, patch, ifVersion); }
  deleteContextBlock(id, ifVersion) { return this.mutate("context_block.delete", id, undefined, ifVersion); }
  createSavedPrompt(data) { return this.mutate("saved_prompt.create", null, data); }
  updateSavedPrompt(id, patch, ifVersion) { return this.mutate("saved_prompt.update", id, patch, ifVersion); }
  deleteSavedPrompt(id, ifVersion) { return this.mutate("saved_prompt.delete", id, undefined, ifVersion); }

  // ---- temporary blocks -----------------------------------------------------------------

  addTemporaryBlock({ title = "", content = "", tags = [], project_id = null }) {
    const id = `temp-${uuid()}`;
    this.temporary.push({ id, title, content, tags, project_id });
    this.#changed();
    return id;
  }

  editTemporaryBlock(id, fields) {
    const t = this.temporary.find((b) => b.id === id);
    if (!t) throw new Error("no such temporary block");
    Object.assign(t, fields);
    this.#changed();
  }

  discardTemporaryBlock(id) {
    this.temporary = this.temporary.filter((b) => b.id !== id);
    this.#changed();
  }

  /** Saves a temporary block as a real one; resolves with the created block. */
  async saveTemporaryBlock(id) {
    const t = this.temporary.find((b) => b.id === id);
    if (!t) throw new Error("no such temporary block");
    const { title, content, tags, project_id } = t;
    const applied = await this.createContextBlock({ title, content, tags, project_id });
    this.temporary = this.temporary.filter((b) => b.id !== id);
    this.#changed();
    return applied.data;
  }

  // ---- the session ----------------------------------------------------------------------

  #connect() {
    if (this.closed) return;
    const url = new URL("/api/v1/ws", this.baseUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("access_token", this.token);
    // Resume from the version held (the snapshot shown).
    if (this.snapshot) url.searchParams.set("since_version", String(this.snapshot.version));
    const ws = new WebSocket(url);
    this.ws = ws;
    // A new session: nothing is in flight on it; unacknowledged mutations go again, paced,
    // once its `hello` gives the limit.
    this.maxInflight = null;
    for (const p of this.pending.values()) p.inFlight = false;
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "snapshot") {
        if (frame.reset || !this.snapshot || frame.version > this.snapshot.version) {
          delete frame.type;
          delete frame.reset;
          this.snapshot = frame;
          this.#resolveVisible();
          this.#changed();
        }
      } else {
        this.#onFrame(frame);
      }
    };
    ws.onclose = () => {
      if (this.closed || this.ws !== ws) return;
      this.failures += 1;
      const delay = retryDelay(this.failures);
      this.#setStatus({ state: "reconnecting", retry_in_ms: delay, since: Date.now() });
      setTimeout(() => this.#connect(), delay);
    };
  }

  #onFrame(frame) {
    switch (frame.type) {
      case "hello":
        this.failures = 0;
        this.maxInflight = Math.max(1, frame.max_inflight_mutations ?? 32);
        if (!this.snapshot) this.#setStatus({ state: "loading" });
        this.#pump();
        break;
      case "status": {
        const { type, ...status } = frame;
        if (status.state === "live") {
          status.synced_at = Date.now();
          this.#resolveVisible();
        }
        if (status.state === "error") status.since = Date.now();
        this.#setStatus(status);
        break;
      }
      case "ack": {
        const p = this.pending.get(frame.mutation_id);
        if (p) {
          p.inFlight = false;
          p.acked = { data: frame.data, library_version: frame.library_version };
        }
        this.#resolveVisible();
        this.#pump();
        break;
      }
      case "reject": {
        const p = this.pending.get(frame.mutation_id);
        if (!p || p.acked) break;
        if (retryable(frame.error)) {
          p.inFlight = false;
          p.retries += 1;
          p.notBefore = Date.now() + retryDelay(p.retries);
        } else {
          this.pending.delete(frame.mutation_id);
          p.reject(new MutationError(frame.error));
        }
        this.#pump();
        break;
      }
      case "error":
        console.warn("librarian: the server refused a frame:", frame.code, frame.message);
        break;
    }
  }

  /** Sends the queued mutations the limit allows now, oldest first; wakes for the next backoff. */
  #pump() {
    const ws = this.ws;
    if (this.closed || this.maxInflight == null || ws?.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    let inFlight = 0;
    for (const p of this.pending.values()) if (p.inFlight) inFlight += 1;
    let wake = Infinity;
    for (const p of this.pending.values()) {
      if (inFlight >= this.maxInflight) break;
      if (p.inFlight || p.acked) continue;
      if (p.notBefore > now) {
        wake = Math.min(wake, p.notBefore);
        continue;
      }
      p.inFlight = true;
      inFlight += 1;
      ws.send(JSON.stringify(p.frame));
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = wake === Infinity ? null : setTimeout(() => this.#pump(), wake - now);
  }

  #resolveVisible() {
    const held = this.snapshot?.version;
    if (held == null) return;
    for (const [id, p] of this.pending) {
      if (p.acked && p.acked.library_version <= held) {
        this.pending.delete(id);
        p.resolve(p.acked);
      }
    }
  }

  #setStatus(status) {
    this.status = status;
    this.dispatchEvent(new Event("status"));
  }

  #changed() {
    this.dispatchEvent(new Event("change"));
  }
}
