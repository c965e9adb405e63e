// librarian.js: @librarian/client (clients/js/packages/client), bundled for the page the server
// embeds. Built by `npm run bundle` in clients/js (scripts/bundle.mjs, esbuild 0.28.2):
// do not edit; change the TypeScript sources and rebuild. CI fails when this file differs.

var __defProp = Object.defineProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

// packages/client/src/cache.ts
var DB_NAME = "librarian";
var DB_VERSION = 1;
var STORE = "snapshots";
function cacheKey(url, user, library) {
  return JSON.stringify([url, user, library ?? null]);
}
function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}
function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}
function open(idb) {
  const request = idb.open(DB_NAME, DB_VERSION);
  request.onupgradeneeded = () => {
    if (!request.result.objectStoreNames.contains(STORE)) request.result.createObjectStore(STORE);
  };
  return done(request);
}
var SnapshotCache = class {
  constructor(idb, key) {
    __publicField(this, "idb");
    __publicField(this, "key");
    __publicField(this, "db", null);
    __publicField(this, "writing", null);
    __publicField(this, "next", null);
    this.idb = idb;
    this.key = key;
  }
  database() {
    if (!this.db) {
      this.db = open(this.idb);
      void this.db.then((db) => db.onversionchange = () => db.close()).catch(() => {
      });
    }
    return this.db;
  }
  async read() {
    const db = await this.database();
    const value = await done(db.transaction(STORE, "readonly").objectStore(STORE).get(this.key));
    return isEntry(value) ? value : void 0;
  }
  /** Writes `entry` soon: after the write in flight, if any, replacing any other waiting one. */
  write(entry) {
    this.next = entry;
    if (!this.writing) this.writing = this.drain();
  }
  async remove() {
    this.next = null;
    await this.flush();
    const db = await this.database();
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).delete(this.key);
    await committed(tx);
  }
  /** Resolves once nothing is written or waiting. */
  flush() {
    return this.writing ?? Promise.resolve();
  }
  /** Drops a waiting write (the one in flight finishes). */
  cancel() {
    this.next = null;
  }
  async close() {
    await this.flush();
    if (this.db) (await this.db.catch(() => null))?.close();
    this.db = null;
  }
  async drain() {
    try {
      while (this.next) {
        const entry = this.next;
        this.next = null;
        try {
          const db = await this.database();
          const tx = db.transaction(STORE, "readwrite");
          tx.objectStore(STORE).put(entry, this.key);
          await committed(tx);
        } catch {
        }
      }
    } finally {
      this.writing = null;
    }
  }
};
async function clearLibraryCache(idb = globalThis.indexedDB) {
  if (!idb) return;
  const db = await open(idb);
  try {
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).clear();
    await committed(tx);
  } finally {
    db.close();
  }
}
function isEntry(value) {
  if (!value || typeof value !== "object") return false;
  const s = value.snapshot;
  return !!s && typeof s.version === "number" && Array.isArray(s.projects) && Array.isArray(s.context_blocks) && Array.isArray(s.saved_prompts);
}

// packages/client/src/errors.ts
var LibraryError = class _LibraryError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || problem.code || "rejected");
    /** The problem document: the server's, or the client's own (see `ClientErrorCode`). */
    __publicField(this, "problem");
    /** HTTP-like status: the server's (422, 412, 404, 503, …), 0 for the client's own problems. */
    __publicField(this, "status");
    /** e.g. `validation`, `version_mismatch`, `not_found`, `closed`, `connection_lost`. */
    __publicField(this, "code");
    /** For validation problems: every broken rule, by field (`title`, `tags[3]`, …). */
    __publicField(this, "fieldErrors");
    /** The same as a map, field → message (the first message of each field). */
    __publicField(this, "fields");
    /** For a 412 (`ifVersion` mismatch): the row as it is now. */
    __publicField(this, "current");
    this.name = "LibraryError";
    this.problem = problem;
    this.status = problem.status;
    this.code = problem.code;
    this.fieldErrors = problem.errors ?? [];
    const fields = {};
    for (const e of this.fieldErrors) if (!(e.field in fields)) fields[e.field] = e.message;
    this.fields = fields;
    this.current = problem.current ?? null;
  }
  /** One of the client's own problems. */
  static client(code, detail, status = 0) {
    return new _LibraryError({
      type: `urn:librarian:problem:${code}`,
      title: code.replace(/_/g, " "),
      status,
      detail,
      code
    });
  }
};
function toProblem(value) {
  if (value && typeof value === "object") {
    const p = value;
    return {
      type: typeof p.type === "string" ? p.type : "about:blank",
      title: typeof p.title === "string" ? p.title : "rejected",
      status: typeof p.status === "number" ? p.status : 0,
      detail: typeof p.detail === "string" ? p.detail : "",
      code: typeof p.code === "string" ? p.code : "rejected",
      ...Array.isArray(p.errors) ? { errors: p.errors } : {},
      ...p.current !== void 0 ? { current: p.current } : {}
    };
  }
  return { type: "about:blank", title: "rejected", status: 0, detail: "", code: "rejected" };
}

// packages/client/src/ids.ts
function uuid() {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = b[6] & 15 | 64;
  b[8] = b[8] & 63 | 128;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// packages/client/src/libraries.ts
var LibrariesApi = class {
  constructor(options) {
    /** The server's origin, as given. */
    __publicField(this, "url");
    /** The token provider, as given. */
    __publicField(this, "getToken");
    __publicField(this, "base");
    __publicField(this, "fetchImpl");
    if (!options || typeof options.url !== "string" || !/^https?:\/\//.test(options.url)) {
      throw new TypeError("LibrariesApi: `url` must be the server's http(s) origin");
    }
    if (typeof options.getToken !== "function") {
      throw new TypeError("LibrariesApi: `getToken` must be a function returning a token");
    }
    this.url = options.url;
    this.base = options.url.endsWith("/") ? options.url : `${options.url}/`;
    this.getToken = options.getToken;
    this.fetchImpl = options.fetch;
  }
  /** `GET /libraries`: every library the caller is a member of, their own (default) one first, then by name. */
  async list() {
    const { body } = await this.call("GET", "libraries");
    return body.libraries;
  }
  /** `POST /libraries`: a new library owned by the caller. */
  async create(name) {
    const { body } = await this.call("POST", "libraries", { name });
    return body.data;
  }
  /** `PATCH /libraries/{id}` (owner). */
  async rename(libraryId, name) {
    const { body } = await this.call("PATCH", `libraries/${seg(libraryId)}`, { name });
    return body.data;
  }
  /** `DELETE /libraries/{id}` (owner; not their default library: 409). Its sessions are revoked. */
  async delete(libraryId) {
    const { body } = await this.call("DELETE", `libraries/${seg(libraryId)}`);
    return { libraryVersion: body.library_version };
  }
  /** `GET /libraries/{id}/members` (any member). */
  async members(libraryId) {
    const { body } = await this.call("GET", `libraries/${seg(libraryId)}/members`);
    return body.members;
  }
  /** `PUT /libraries/{id}/members/{user}` (owner): adds `userId` with `role`, or changes their role. */
  async setMember(libraryId, userId, role) {
    const { status, body } = await this.call("PUT", `libraries/${seg(libraryId)}/members/${seg(userId)}`, {
      role
    });
    if (!body.data) throw LibraryError.client("rejected", "the server answered no member");
    return { member: body.data, created: status === 201, libraryVersion: body.library_version };
  }
  /**
   * `DELETE /libraries/{id}/members/{user}`: the owner removes a member, or a member leaves
   * (their own user id). Their sessions on the library end with `access_revoked`.
   */
  async removeMember(libraryId, userId) {
    const { body } = await this.call("DELETE", `libraries/${seg(libraryId)}/members/${seg(userId)}`);
    return { libraryVersion: body.library_version };
  }
  async call(method, path, json) {
    let token;
    try {
      token = await this.getToken();
    } catch (e) {
      throw LibraryError.client("unauthorized", `getToken failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    const headers = { authorization: `Bearer ${token}`, accept: "application/json" };
    if (json !== void 0) headers["content-type"] = "application/json";
    const fetchImpl = this.fetchImpl ?? globalThis.fetch;
    let res;
    try {
      res = await fetchImpl(new URL(`api/v1/${path}`, this.base), {
        method,
        headers,
        ...json !== void 0 ? { body: JSON.stringify(json) } : {}
      });
    } catch (e) {
      throw LibraryError.client("unreachable", `could not reach the server: ${e instanceof Error ? e.message : String(e)}`);
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const problem = toProblem(body);
      throw new LibraryError({
        ...problem,
        status: problem.status || res.status,
        ...problem.detail ? {} : { detail: `${method} /api/v1/${path}: HTTP ${res.status}` }
      });
    }
    return { status: res.status, body };
  }
};
function seg(value) {
  return encodeURIComponent(value);
}
function countDelivered(sessions, version) {
  let held = 0;
  for (const s of sessions) if (s.seen_version !== null && s.seen_version >= version) held += 1;
  return { held, total: sessions.length };
}

// packages/client/src/pending.ts
var Pending = class {
  constructor() {
    /** In the order issued. */
    __publicField(this, "waiters", /* @__PURE__ */ new Map());
  }
  /** A promise for `frame`'s outcome. */
  add(frame) {
    return new Promise((resolve, reject) => {
      this.waiters.set(frame.mutation_id, { frame, resolve, reject, acked: null });
    });
  }
  has(mutationId) {
    return this.waiters.has(mutationId);
  }
  /** The server committed it; it resolves once `held` reaches its version. */
  ack(mutationId, applied, held) {
    const w = this.waiters.get(mutationId);
    if (!w || w.acked) return;
    w.acked = applied;
    this.settle(held);
  }
  reject(mutationId, error) {
    const w = this.waiters.get(mutationId);
    if (!w || w.acked) return;
    this.waiters.delete(mutationId);
    w.reject(error);
  }
  /** Resolves every acknowledged mutation whose version is held now. */
  settle(held) {
    if (held === null) return;
    for (const [id, w] of this.waiters) {
      if (w.acked && w.acked.version <= held) {
        this.waiters.delete(id);
        w.resolve(w.acked);
      }
    }
  }
  /** The frames with no answer yet, in the order issued (to send, or send again). */
  unanswered() {
    return [...this.waiters.values()].filter((w) => !w.acked).map((w) => w.frame);
  }
  /**
   * Resolves every acknowledged mutation now, held or not: they committed, and no snapshot
   * will come any more (access to the library ended). Never report a committed write as failed.
   */
  resolveAcked() {
    for (const [id, w] of this.waiters) {
      if (w.acked) {
        this.waiters.delete(id);
        w.resolve(w.acked);
      }
    }
  }
  rejectAll(error) {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const w of all) w.reject(error);
  }
};

// packages/client/src/rows.ts
function shareRows(prev, next) {
  if (prev === next || prev.length === 0 && next.length === 0) return prev;
  const held = /* @__PURE__ */ new Map();
  for (const row of prev) held.set(row.id, row);
  let same = prev.length === next.length;
  const out = next.map((row, i) => {
    const old = held.get(row.id);
    if (old !== void 0 && (old === row || sameRow(old, row))) {
      if (prev[i] !== old) same = false;
      return old;
    }
    same = false;
    return row;
  });
  return same ? prev : out;
}
function sameRow(a, b) {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    const x = a[k];
    const y = b[k];
    if (x === y) continue;
    if (Array.isArray(x) && Array.isArray(y)) {
      if (x.length !== y.length || x.some((v, i) => v !== y[i])) return false;
      continue;
    }
    return false;
  }
  return true;
}

// packages/client/src/backoff.ts
var BASE_MS = 100;
var MAX_MS = 5e3;
function retryDelay(failures, random = Math.random()) {
  const exp = Math.min(BASE_MS * 2 ** Math.min(Math.max(failures - 1, 0), 10), MAX_MS);
  return Math.round(exp * (0.5 + random / 2));
}
function retryable(problem) {
  return problem.status === 503 || problem.code === "too_many_mutations";
}

// packages/client/src/refresh.ts
var MAX_MARGIN_MS = 6e4;
var MIN_MARGIN_MS = 1e3;
function refreshAt(expiresAt, now) {
  const left = expiresAt - now;
  const margin = Math.min(MAX_MARGIN_MS, Math.max(MIN_MARGIN_MS, left / 5));
  return Math.max(now, Math.round(expiresAt - margin));
}
var MAX_TIMER_MS = 2 ** 31 - 1;
function parseExpiry(value) {
  if (typeof value !== "string") return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

// node_modules/@noble/hashes/_u64.js
var fromNumH = (n) => n / 2 ** 32 | 0;
var fromNumL = (n) => n >>> 0;
function setU64FromNum(view, byteOffset, n, isLE) {
  const h = fromNumH(n);
  const l = fromNumL(n);
  view.setUint32(byteOffset, isLE ? l : h, isLE);
  view.setUint32(byteOffset + 4, isLE ? h : l, isLE);
}

// node_modules/@noble/hashes/utils.js
function isBytes(a) {
  return a instanceof Uint8Array || ArrayBuffer.isView(a) && a.constructor.name === "Uint8Array" && "BYTES_PER_ELEMENT" in a && a.BYTES_PER_ELEMENT === 1;
}
var atitle = (title) => title ? `"${title}" ` : "";
function anumber(n, title = "") {
  if (typeof n !== "number")
    throw new TypeError(atitle(title) + "expected number, got " + typeof n);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(atitle(title) + "expected integer >= 0, got " + n);
  return n;
}
function abytes(value, length, title = "") {
  if (isBytes(value) && (length === void 0 || value.length === length))
    return value;
  if (length !== void 0)
    anumber(length, "length");
  const bytes = isBytes(value);
  const ofLen = length !== void 0 ? ` of length ${length}` : "";
  const got = bytes ? `length=${value.length}` : `type=${typeof value}`;
  const message2 = atitle(title) + "expected Uint8Array" + ofLen + ", got " + got;
  if (!bytes)
    throw new TypeError(message2);
  throw new RangeError(message2);
}
var aobject = (value, label) => {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new TypeError((label === "object" ? "" : `"${label}" `) + "expected object, got type=" + typeof value);
};
var aopts = (value, label) => {
  aobject(value, label);
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null)
    throw new TypeError(`"${label}" expected plain object`);
  if (Object.hasOwn(value, "__proto__"))
    throw new TypeError(`"${label}.__proto__" is not allowed`);
};
function aexists(instance, checkFinished = true) {
  if (instance.destroyed)
    throw new Error("hash was destroyed");
  if (checkFinished && instance.finished)
    throw new Error("digest() was already called");
}
function aoutput(out, instance) {
  abytes(out, void 0, "output");
  const min = instance.outputLen;
  if (!(out.length >= min)) {
    throw new RangeError('"output" expected length >= ' + min);
  }
}
function clean(...arrays) {
  for (let i = 0; i < arrays.length; i++) {
    arrays[i].fill(0);
  }
}
function createView(arr) {
  return new DataView(arr.buffer, arr.byteOffset, arr.byteLength);
}
function rotr(word, shift) {
  return word << 32 - shift | word >>> shift;
}
var hasHexBuiltin = /* @__PURE__ */ (() => (
  // @ts-ignore
  typeof Uint8Array.from([]).toHex === "function" && typeof Uint8Array.fromHex === "function"
))();
var hexes = /* @__PURE__ */ Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
function bytesToHex(bytes) {
  abytes(bytes);
  if (hasHexBuiltin)
    return bytes.toHex();
  let hex = "";
  for (let i = 0; i < bytes.length; i++) {
    hex += hexes[bytes[i]];
  }
  return hex;
}
function checkOpts(defaults, opts, title = "opts") {
  aopts(defaults, "defaults");
  if (opts !== void 0)
    aopts(opts, title);
  const merged = Object.assign(/* @__PURE__ */ Object.create(null), defaults, opts);
  return merged;
}
function createHasher(hashCons, info = {}) {
  if (typeof hashCons !== "function")
    throw new TypeError('"hashCons" expected function, got type=' + typeof hashCons);
  info = checkOpts({}, info, "info");
  const hashC = (msg, opts) => hashCons(opts).update(msg).digest();
  const tmp = hashCons(void 0);
  hashC.outputLen = tmp.outputLen;
  hashC.blockLen = tmp.blockLen;
  hashC.canXOF = tmp.canXOF;
  hashC.create = (opts) => hashCons(opts);
  Object.assign(hashC, info);
  return Object.freeze(hashC);
}
var oidNist = (suffix) => ({
  // Current NIST hashAlgs suffixes used here fit in one DER subidentifier octet.
  // Larger suffix values would need base-128 OID encoding and a different length byte.
  oid: Uint8Array.from([6, 9, 96, 134, 72, 1, 101, 3, 4, 2, suffix])
});

// node_modules/@noble/hashes/_md.js
function Chi(a, b, c) {
  return a & b ^ ~a & c;
}
function Maj(a, b, c) {
  return a & b ^ a & c ^ b & c;
}
var HashMD = class {
  constructor(blockLen, outputLen, padOffset, isLE) {
    __publicField(this, "blockLen");
    __publicField(this, "outputLen");
    __publicField(this, "canXOF", false);
    __publicField(this, "padOffset");
    __publicField(this, "isLE");
    // For partial updates less than block size
    __publicField(this, "buffer");
    __publicField(this, "view");
    __publicField(this, "finished", false);
    __publicField(this, "length", 0);
    __publicField(this, "pos", 0);
    __publicField(this, "destroyed", false);
    this.blockLen = blockLen;
    this.outputLen = outputLen;
    this.padOffset = padOffset;
    this.isLE = isLE;
    this.buffer = new Uint8Array(blockLen);
    this.view = createView(this.buffer);
  }
  update(data) {
    aexists(this);
    abytes(data);
    const { view, buffer, blockLen } = this;
    const len = data.length;
    let processed = false;
    for (let pos = 0; pos < len; ) {
      const take = Math.min(blockLen - this.pos, len - pos);
      if (take === blockLen) {
        const dataView = createView(data);
        for (; blockLen <= len - pos; pos += blockLen)
          this.process(dataView, pos);
        processed = true;
        continue;
      }
      buffer.set(pos === 0 && take === len ? data : data.subarray(pos, pos + take), this.pos);
      this.pos += take;
      pos += take;
      if (this.pos === blockLen) {
        this.process(view, 0);
        this.pos = 0;
        processed = true;
      }
    }
    this.length += data.length;
    if (processed)
      this.roundClean();
    return this;
  }
  digestInto(out) {
    aexists(this);
    aoutput(out, this);
    this.finished = true;
    const { buffer, view, blockLen, isLE } = this;
    let { pos } = this;
    buffer[pos++] = 128;
    buffer.fill(0, pos);
    if (this.padOffset > blockLen - pos) {
      this.process(view, 0);
      buffer.fill(0);
    }
    setU64FromNum(view, blockLen - 8, this.length * 8, isLE);
    this.process(view, 0);
    this.roundClean();
    const oview = out === buffer ? view : createView(out);
    const len = this.outputLen;
    const outLen = len / 4;
    const state = this.get();
    if (len % 4 || outLen > state.length)
      throw new Error("invalid outputLen");
    for (let i = 0; i < outLen; i++)
      oview.setUint32(4 * i, state[i], isLE);
  }
  digest() {
    const { buffer, outputLen } = this;
    this.digestInto(buffer);
    const res = buffer.slice(0, outputLen);
    this.destroy();
    return res;
  }
  _cloneIntoMeta(to) {
    const { buffer, length, finished, destroyed, pos } = this;
    to.destroyed = destroyed;
    to.finished = finished;
    to.length = length;
    to.pos = pos;
    if (pos)
      to.buffer.set(buffer);
    return to;
  }
  clone() {
    return this._cloneInto();
  }
};
var SHA256_IV = /* @__PURE__ */ Uint32Array.from([
  1779033703,
  3144134277,
  1013904242,
  2773480762,
  1359893119,
  2600822924,
  528734635,
  1541459225
]);

// node_modules/@noble/hashes/sha2.js
var SHA256_K = /* @__PURE__ */ Uint32Array.from([
  1116352408,
  1899447441,
  3049323471,
  3921009573,
  961987163,
  1508970993,
  2453635748,
  2870763221,
  3624381080,
  310598401,
  607225278,
  1426881987,
  1925078388,
  2162078206,
  2614888103,
  3248222580,
  3835390401,
  4022224774,
  264347078,
  604807628,
  770255983,
  1249150122,
  1555081692,
  1996064986,
  2554220882,
  2821834349,
  2952996808,
  3210313671,
  3336571891,
  3584528711,
  113926993,
  338241895,
  666307205,
  773529912,
  1294757372,
  1396182291,
  1695183700,
  1986661051,
  2177026350,
  2456956037,
  2730485921,
  2820302411,
  3259730800,
  3345764771,
  3516065817,
  3600352804,
  4094571909,
  275423344,
  430227734,
  506948616,
  659060556,
  883997877,
  958139571,
  1322822218,
  1537002063,
  1747873779,
  1955562222,
  2024104815,
  2227730452,
  2361852424,
  2428436474,
  2756734187,
  3204031479,
  3329325298
]);
var SHA256_W = /* @__PURE__ */ new Uint32Array(64);
var SHA2_32B = class extends HashMD {
  constructor(outputLen, IV) {
    super(64, outputLen, 8, false);
    // We cannot use array here since array allows indexing by variable
    // which means optimizer/compiler cannot use registers.
    // Numeric initializers matter: starting the fields as `undefined` changes
    // V8's field representation and makes sha256 3x slower (measured).
    __publicField(this, "A", 0);
    __publicField(this, "B", 0);
    __publicField(this, "C", 0);
    __publicField(this, "D", 0);
    __publicField(this, "E", 0);
    __publicField(this, "F", 0);
    __publicField(this, "G", 0);
    __publicField(this, "H", 0);
    this.A = IV[0] | 0;
    this.B = IV[1] | 0;
    this.C = IV[2] | 0;
    this.D = IV[3] | 0;
    this.E = IV[4] | 0;
    this.F = IV[5] | 0;
    this.G = IV[6] | 0;
    this.H = IV[7] | 0;
  }
  get() {
    const { A, B, C, D, E, F, G, H } = this;
    return [A, B, C, D, E, F, G, H];
  }
  // prettier-ignore
  set(A, B, C, D, E, F, G, H) {
    this.A = A | 0;
    this.B = B | 0;
    this.C = C | 0;
    this.D = D | 0;
    this.E = E | 0;
    this.F = F | 0;
    this.G = G | 0;
    this.H = H | 0;
  }
  _cloneInto(to) {
    (to || (to = new this.constructor())).set(...this.get());
    return this._cloneIntoMeta(to);
  }
  process(view, offset) {
    for (let i = 0; i < 16; i++, offset += 4)
      SHA256_W[i] = view.getUint32(offset, false);
    for (let i = 16; i < 64; i++) {
      const W15 = SHA256_W[i - 15];
      const W2 = SHA256_W[i - 2];
      const s0 = rotr(W15, 7) ^ rotr(W15, 18) ^ W15 >>> 3;
      const s1 = rotr(W2, 17) ^ rotr(W2, 19) ^ W2 >>> 10;
      SHA256_W[i] = s1 + SHA256_W[i - 7] + s0 + SHA256_W[i - 16] | 0;
    }
    let { A, B, C, D, E, F, G, H } = this;
    for (let i = 0; i < 64; i++) {
      const sigma1 = rotr(E, 6) ^ rotr(E, 11) ^ rotr(E, 25);
      const T1 = H + sigma1 + Chi(E, F, G) + SHA256_K[i] + SHA256_W[i] | 0;
      const sigma0 = rotr(A, 2) ^ rotr(A, 13) ^ rotr(A, 22);
      const T2 = sigma0 + Maj(A, B, C) | 0;
      H = G;
      G = F;
      F = E;
      E = D + T1 | 0;
      D = C;
      C = B;
      B = A;
      A = T1 + T2 | 0;
    }
    A = A + this.A | 0;
    B = B + this.B | 0;
    C = C + this.C | 0;
    D = D + this.D | 0;
    E = E + this.E | 0;
    F = F + this.F | 0;
    G = G + this.G | 0;
    H = H + this.H | 0;
    this.set(A, B, C, D, E, F, G, H);
  }
  roundClean() {
    clean(SHA256_W);
  }
  destroy() {
    this.destroyed = true;
    this.set(0, 0, 0, 0, 0, 0, 0, 0);
    clean(this.buffer);
  }
};
var _SHA256 = class extends SHA2_32B {
  constructor() {
    super(32, SHA256_IV);
  }
};
var sha256 = /* @__PURE__ */ createHasher(
  () => new _SHA256(),
  /* @__PURE__ */ oidNist(1)
);

// packages/client/src/patch.ts
function applyPatch(held, patch) {
  if (patch.from_version !== held.version) {
    return { ok: false, wrongBase: true, reason: `the patch starts at version ${patch.from_version}, the library held is at ${held.version}` };
  }
  const projects = applyList(held.projects, patch.projects, "project");
  if (typeof projects === "string") return { ok: false, wrongBase: false, reason: projects };
  const contextBlocks = applyList(held.context_blocks, patch.context_blocks, "context block");
  if (typeof contextBlocks === "string") return { ok: false, wrongBase: false, reason: contextBlocks };
  const savedPrompts = applyList(held.saved_prompts, patch.saved_prompts, "saved prompt");
  if (typeof savedPrompts === "string") return { ok: false, wrongBase: false, reason: savedPrompts };
  return {
    ok: true,
    library: {
      version: patch.version,
      projects,
      context_blocks: contextBlocks,
      saved_prompts: savedPrompts,
      members: patch.members ?? held.members ?? []
    }
  };
}
function compareRows(a, b) {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  return 0;
}
function applyList(list, changes, kind) {
  if (!changes || changes.upsert.length === 0 && changes.delete.length === 0) return list;
  if (changes.delete.length > 0) {
    const held = new Set(list.map((r) => r.id));
    const missing = changes.delete.find((id) => !held.has(id));
    if (missing !== void 0) return `the patch deletes ${kind} ${missing}, which the library does not hold`;
  }
  const gone = new Set(changes.delete);
  for (const row of changes.upsert) gone.add(row.id);
  const kept = list.filter((r) => !gone.has(r.id));
  if (changes.upsert.length === 0) return kept;
  const added = [...changes.upsert].sort(compareRows);
  const out = new Array(kept.length + added.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < kept.length && j < added.length) {
    out[k++] = compareRows(kept[i], added[j]) <= 0 ? kept[i++] : added[j++];
  }
  while (i < kept.length) out[k++] = kept[i++];
  while (j < added.length) out[k++] = added[j++];
  return out;
}
var rowText = /* @__PURE__ */ new WeakMap();
function cached(row, text) {
  let s = rowText.get(row);
  if (s === void 0) {
    s = text(row);
    rowText.set(row, s);
  }
  return s;
}
var projectText = (p) => JSON.stringify({
  id: p.id,
  parent_id: p.parent_id,
  name: p.name,
  description: p.description,
  version: p.version,
  created_at: p.created_at,
  updated_at: p.updated_at
});
var blockText = (b) => JSON.stringify({
  id: b.id,
  project_id: b.project_id,
  title: b.title,
  content: b.content,
  tags: b.tags,
  version: b.version,
  created_at: b.created_at,
  updated_at: b.updated_at
});
var promptText = (p) => JSON.stringify({
  id: p.id,
  project_id: p.project_id,
  title: p.title,
  content: p.content,
  tags: p.tags,
  context_block_ids: p.context_block_ids,
  version: p.version,
  created_at: p.created_at,
  updated_at: p.updated_at
});
var memberText = (m) => JSON.stringify({ user_id: m.user_id, role: m.role });
function canonicalJson(library) {
  const projects = library.projects.map((p) => cached(p, projectText)).join(",");
  const blocks = library.context_blocks.map((b) => cached(b, blockText)).join(",");
  const prompts = library.saved_prompts.map((p) => cached(p, promptText)).join(",");
  const members = (library.members ?? []).map(memberText).join(",");
  return `{"projects":[${projects}],"context_blocks":[${blocks}],"saved_prompts":[${prompts}],"members":[${members}],"version":${JSON.stringify(library.version)}}`;
}
var encoder = new TextEncoder();
function sha256Digest(text) {
  return `sha256:${bytesToHex(sha256(encoder.encode(text)))}`;
}
var SLICE_CHARS = 256 * 1024;
async function sha256Sliced(text, pause = macrotask) {
  const hash = sha256.create();
  for (let at = 0; at < text.length; ) {
    let end = Math.min(text.length, at + SLICE_CHARS);
    if (end < text.length && isHighSurrogate(text.charCodeAt(end - 1))) end += 1;
    hash.update(encoder.encode(text.slice(at, end)));
    at = end;
    if (at < text.length) await pause();
  }
  return `sha256:${bytesToHex(hash.digest())}`;
}
function isHighSurrogate(code) {
  return code >= 55296 && code <= 56319;
}
function macrotask() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

// packages/client/src/replica.ts
var DEFAULT_VERIFY = { syncMaxBytes: 1024 * 1024, idleMs: 200, maxWaitMs: 2e3 };
var Replica = class {
  constructor(held, events2, policy = {}) {
    /** The library held (and shown), null before the first. */
    __publicField(this, "library");
    /** A `resync` was asked for and no snapshot has answered it yet. */
    __publicField(this, "resyncing", false);
    /**
     * The library held is known not to be the server's at its version (a late check failed, or
     * a patch deleted a row it lacks): a new connection asks for a `resync` again. Otherwise
     * (a mismatch never shown, a patch from elsewhere) the library held is right at its version
     * and a resume from it brings what is newer.
     */
    __publicField(this, "suspect", false);
    __publicField(this, "events");
    __publicField(this, "policy");
    /** Check digests (false once even a resync's answer did not match). */
    __publicField(this, "trust", true);
    /** The size of the library held (canonical JSON, UTF-16 units), exact or estimated; null: not known. */
    __publicField(this, "size", null);
    /** The newest library shown but not checked yet (a large one). */
    __publicField(this, "unchecked", null);
    /** When the first library not checked yet was shown (`maxWaitMs` counts from it). */
    __publicField(this, "firstUncheckedAt", null);
    __publicField(this, "timer");
    __publicField(this, "checking", false);
    /** Moves with every snapshot taken and every resync: a check of an older epoch is moot. */
    __publicField(this, "epoch", 0);
    __publicField(this, "closed", false);
    this.library = held;
    this.events = events2;
    const pick = (n, d) => typeof n === "number" && n >= 0 ? n : d;
    this.policy = {
      syncMaxBytes: pick(policy.syncMaxBytes, DEFAULT_VERIFY.syncMaxBytes),
      idleMs: pick(policy.idleMs, DEFAULT_VERIFY.idleMs),
      maxWaitMs: pick(policy.maxWaitMs, DEFAULT_VERIFY.maxWaitMs),
      ...policy.pause ? { pause: policy.pause } : {}
    };
  }
  get version() {
    return this.library?.version ?? null;
  }
  /** Forgets the library held (the next connection loads it whole). */
  drop() {
    this.library = null;
    this.size = null;
    this.resyncing = false;
    this.suspect = false;
    this.forgetUnchecked();
    this.epoch += 1;
  }
  close() {
    this.closed = true;
    this.forgetUnchecked();
  }
  /**
   * A `snapshot` frame (`bytes`: its length). Returns whether it was taken (shown, or held back
   * for a resync because it did not match).
   */
  snapshot(snapshot, opts) {
    const held = this.version;
    const answer = this.resyncing;
    if (!(opts.reset || held === null || snapshot.version > held || answer && snapshot.version >= held)) return;
    const digest = this.trust && typeof opts.digest === "string" ? opts.digest : null;
    if (digest !== null && opts.bytes <= this.policy.syncMaxBytes) {
      const text = canonicalJson(snapshot);
      if (sha256Digest(text) !== digest) {
        if (!answer) {
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
  patch(patch, bytes) {
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
    this.size ?? (this.size = canonicalJson(held).length);
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
  take(snapshot, size, checked) {
    this.resyncing = false;
    this.suspect = false;
    this.epoch += 1;
    this.forgetUnchecked();
    this.hold(snapshot, size);
    this.events.show(snapshot, checked);
  }
  hold(library, size) {
    this.library = library;
    this.size = size;
  }
  resync(reason, version, suspect) {
    this.resyncing = true;
    this.suspect = suspect;
    this.epoch += 1;
    this.forgetUnchecked();
    this.events.resync(reason, version);
  }
  distrust(reason) {
    this.trust = false;
    this.forgetUnchecked();
    this.events.distrust(reason);
  }
  forgetUnchecked() {
    this.unchecked = null;
    this.firstUncheckedAt = null;
    clearTimeout(this.timer);
    this.timer = void 0;
  }
  /** `u` is shown and not checked: check the newest such library when idle (or at the latest after `maxWaitMs`). */
  awaitCheck(u) {
    this.unchecked = u;
    this.firstUncheckedAt ?? (this.firstUncheckedAt = Date.now());
    this.scheduleCheck();
  }
  scheduleCheck() {
    clearTimeout(this.timer);
    this.timer = void 0;
    if (this.closed || this.unchecked === null || this.checking) return;
    const deadline = (this.firstUncheckedAt ?? Date.now()) + this.policy.maxWaitMs;
    const delay = Math.max(0, Math.min(this.policy.idleMs, deadline - Date.now()));
    this.timer = setTimeout(() => void this.check(), delay);
  }
  async check() {
    const target = this.unchecked;
    if (this.closed || target === null || this.checking) return;
    this.checking = true;
    let actual;
    const text = canonicalJson(target.library);
    try {
      actual = await sha256Sliced(text, this.policy.pause);
    } finally {
      this.checking = false;
    }
    if (this.closed) return;
    if (target.epoch === this.epoch) {
      if (this.library === target.library) this.size = text.length;
      if (actual !== target.digest) {
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
    this.scheduleCheck();
  }
};

// packages/client/src/wire.ts
var CloseCode = {
  GoingAway: 1001,
  /** The server cannot check tokens right now (`auth_unavailable`: its JWKS is unreachable). */
  TryAgainLater: 1013,
  Malformed: 4400,
  AuthExpired: 4401,
  /** The user was removed from the library, or it was deleted (after `error access_revoked`). */
  AccessRevoked: 4403,
  Idle: 4408,
  TooSlow: 4429
};

// packages/client/src/session.ts
var DEFAULT_MAX_INFLIGHT = 32;
var FRAME_RATE_SHARE = 0.8;
var DEFAULT_FRAMES_PER_SECOND = 100;
var DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
var RESYNC_WAIT_MS = 15e3;
var CLOSE_WAIT_MS = 2e3;
var OPEN = 1;
var Session = class {
  constructor(opts) {
    /** The library held; the next connection resumes from its version. */
    __publicField(this, "replica");
    __publicField(this, "opts");
    __publicField(this, "ws", null);
    /** In the order issued, which is the order they are sent in. */
    __publicField(this, "queue", /* @__PURE__ */ new Map());
    /** This connection's limit; null until its `hello` (the next server's may differ). */
    __publicField(this, "maxInflight", null);
    __publicField(this, "failures", 0);
    __publicField(this, "attempt", 0);
    __publicField(this, "closed", false);
    __publicField(this, "retryTimer");
    __publicField(this, "pumpTimer");
    __publicField(this, "spareToken");
    /** The largest frame the server takes (the last `hello` said). */
    __publicField(this, "maxFrameBytes", DEFAULT_MAX_FRAME_BYTES);
    /** Token bucket for outgoing frames. */
    __publicField(this, "rate", Math.floor(DEFAULT_FRAMES_PER_SECOND * FRAME_RATE_SHARE));
    __publicField(this, "tokens", this.rate);
    __publicField(this, "refilledAt", Date.now());
    __publicField(this, "lastStatus", null);
    /** The token the current connection's session runs on (the last one the server took). */
    __publicField(this, "sessionToken", null);
    /** Epoch ms the current session's token expires (`hello` / `auth_ok`); null: not announced. */
    __publicField(this, "expiresAt", null);
    __publicField(this, "refreshTimer");
    /** Failed or fruitless refreshes of this connection in a row (drives their backoff). */
    __publicField(this, "refreshFailures", 0);
    /** An `auth` frame waiting for the frame rate (it goes before any mutation). */
    __publicField(this, "authOut", null);
    /** The token sent in `auth`, until its `auth_ok`. */
    __publicField(this, "authSent", null);
    /** The server's `error` frame on this connection (the close that follows says what it was about). */
    __publicField(this, "lastError", null);
    /** This connection's server takes `seen` frames (its `hello` has `role`: it knows shared libraries). */
    __publicField(this, "receipts", false);
    /** The `seen` waiting for the frame rate (only the newest goes). */
    __publicField(this, "seenOut", null);
    /** The version of the last `seen` sent or queued on this connection. */
    __publicField(this, "seenLast", null);
    /** Greeted on this library at least once: a later refusal is a revocation, not "not found". */
    __publicField(this, "everGreeted", false);
    /** The status before an `offline` event, shown again if the socket outlives it. */
    __publicField(this, "beforeOffline", null);
    /** No `?patches=1` any more: even a resync's answer did not match its digest (`replica.ts`). */
    __publicField(this, "patchesOff", false);
    /** This connection's `hello` said `patches: true`. */
    __publicField(this, "patching", false);
    /** This server sent a digest (it takes `resync`). */
    __publicField(this, "digests", false);
    /** A `resync` waiting for the frame rate. */
    __publicField(this, "resyncOut", false);
    /** A resync was wanted on this connection before its `hello`: the `hello` asks. */
    __publicField(this, "resyncAtHello", false);
    /** Frames that came since the last `resync` went out, and the watch on its answer. */
    __publicField(this, "framesSinceResync", 0);
    __publicField(this, "resyncTimer");
    /** What the server said last (`hello`, `status`), shown once a resync is answered. */
    __publicField(this, "serverSaid", null);
    __publicField(this, "onOnline", () => this.online());
    __publicField(this, "onOffline", () => this.offline());
    this.opts = opts;
    this.spareToken = opts.token;
    this.replica = new Replica(
      opts.held,
      {
        show: (library, checked) => this.show(library, checked),
        checked: (version) => this.opts.handlers.checked(version),
        resync: (reason, version) => this.askResync(reason, version),
        distrust: (reason) => this.distrust(reason)
      },
      opts.verify
    );
  }
  /** The version of the library held; the next connection resumes from it. */
  get held() {
    return this.replica.version;
  }
  start() {
    const g = globalThis;
    g.addEventListener?.("online", this.onOnline);
    g.addEventListener?.("offline", this.onOffline);
    this.status({ state: "connecting" });
    void this.connect();
  }
  /** Queues a mutation (a `mutation_id` already queued is not queued twice). */
  mutate(frame) {
    if (this.closed || this.queue.has(frame.mutation_id)) return;
    const text = JSON.stringify(frame);
    const bytes = new TextEncoder().encode(text).length;
    if (bytes > this.maxFrameBytes) {
      queueMicrotask(() => this.tooLarge(frame.mutation_id, bytes));
      return;
    }
    this.queue.set(frame.mutation_id, { frame, text, bytes, inFlight: false, retries: 0, notBefore: 0 });
    this.pump();
  }
  /**
   * Refuses a mutation larger than the server's frame limit, here: the server would close the
   * session (4400) and the resend would close the next one, for ever.
   */
  tooLarge(mutationId, bytes) {
    this.queue.delete(mutationId);
    const problem = {
      type: "urn:librarian:problem:too_large",
      title: "Payload Too Large",
      status: 413,
      code: "too_large",
      detail: `the mutation is ${bytes} bytes; the server takes frames of at most ${this.maxFrameBytes} bytes`
    };
    this.opts.handlers.result(mutationId, { ok: false, problem });
  }
  /**
   * Stops on the current connection until `reconnect()`: the socket closes, nothing more is
   * sent (queued mutations stay queued), and the status is a terminal error.
   */
  halt(code, message2) {
    if (this.closed) return;
    this.detach()?.close(1e3);
    this.status({ state: "error", code, message: message2, retryAt: null });
  }
  /** Drops the connection and connects again now; `dropHeld`: without `since_version` (shows nothing held). */
  reconnect(opts = {}) {
    if (this.closed) return;
    if (opts.dropHeld) this.replica.drop();
    this.failures = 0;
    this.detach()?.close(1e3);
    this.status({ state: "connecting" });
    void this.connect();
  }
  /** Ends the session; resolves once the socket closed (or after a short guard). */
  close() {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.pumpTimer);
    clearTimeout(this.resyncTimer);
    this.endRefresh();
    this.replica.close();
    const g = globalThis;
    g.removeEventListener?.("online", this.onOnline);
    g.removeEventListener?.("offline", this.onOffline);
    this.queue.clear();
    const ws = this.detach();
    if (!ws) return Promise.resolve();
    return new Promise((resolve) => {
      const guard = setTimeout(resolve, CLOSE_WAIT_MS);
      ws.onclose = () => {
        clearTimeout(guard);
        resolve();
      };
      ws.onerror = () => {
      };
      try {
        ws.close(1e3);
      } catch {
        clearTimeout(guard);
        resolve();
      }
    });
  }
  // ---- the connection ----------------------------------------------------------------------
  async connect() {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    const attempt = ++this.attempt;
    if (isOffline()) {
      this.status({ state: "offline" });
      return;
    }
    let token;
    try {
      token = this.spareToken ?? await this.opts.getToken();
    } catch (e) {
      if (!this.closed && attempt === this.attempt) {
        this.status({ state: "error", code: "unauthorized", message: `getToken failed: ${message(e)}`, retryAt: null });
      }
      return;
    } finally {
      this.spareToken = void 0;
    }
    if (this.closed || attempt !== this.attempt) return;
    let ws;
    try {
      ws = new this.opts.WebSocket(this.socketUrl(token));
    } catch (e) {
      void this.dropped(null, false, message(e));
      return;
    }
    this.ws = ws;
    this.endRefresh();
    this.sessionToken = token;
    this.lastError = null;
    this.maxInflight = null;
    for (const q of this.queue.values()) q.inFlight = false;
    this.receipts = false;
    this.seenOut = null;
    this.seenLast = null;
    this.patching = false;
    this.resyncOut = false;
    this.resyncAtHello = false;
    this.serverSaid = null;
    let greeted = false;
    ws.onmessage = (event) => {
      if (this.ws !== ws || typeof event.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "hello") greeted = true;
      this.framesSinceResync += 1;
      this.onFrame(frame, ws, event.data.length);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.maxInflight = null;
      this.endRefresh();
      if (greeted) this.opts.handlers.presence([]);
      void this.dropped(event.code ?? null, greeted, event.reason ?? "", this.lastError, token);
    };
    ws.onerror = () => {
    };
  }
  socketUrl(token) {
    const base = this.opts.url.endsWith("/") ? this.opts.url : `${this.opts.url}/`;
    const url = new URL("api/v1/ws", base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("access_token", token);
    if (this.held !== null) url.searchParams.set("since_version", String(this.held));
    if (this.opts.patches && !this.patchesOff) url.searchParams.set("patches", "1");
    if (this.opts.library) url.searchParams.set("library", this.opts.library);
    return url.toString();
  }
  async dropped(code, greeted, reason, error = null, token = null) {
    if (this.closed) return;
    if (code === CloseCode.AccessRevoked || error?.code === "access_revoked") {
      this.revoked(error?.message || reason || "access to this library was revoked");
      return;
    }
    if (isOffline()) {
      this.status({ state: "offline" });
      return;
    }
    if (!greeted && token !== null && this.opts.library && this.opts.libraryGone) {
      const attempt = this.attempt;
      const gone = await this.opts.libraryGone(token).catch(() => false);
      if (this.closed || attempt !== this.attempt || this.ws !== null) return;
      if (gone) {
        if (this.everGreeted) this.revoked("access to this library was revoked");
        else this.stop("library_not_found", "no such library, or you are not a member of it");
        return;
      }
    }
    this.failures += 1;
    const delay = retryDelay(this.failures);
    this.status({ state: "error", ...describeClose(code, greeted, reason, error), retryAt: Date.now() + delay });
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }
  /** Access to the library ended: nothing queued goes anywhere, nothing reconnects. */
  revoked(message2) {
    this.stop("access_revoked", message2);
  }
  /** A terminal error: the queue is dropped (the owner rejects what was pending), no retry. */
  stop(code, message2) {
    this.queue.clear();
    clearTimeout(this.pumpTimer);
    this.status({ state: "error", code, message: message2, retryAt: null });
  }
  /** Detaches the current socket (its events are ignored from now on) and returns it. */
  detach() {
    const ws = this.ws;
    this.ws = null;
    this.maxInflight = null;
    clearTimeout(this.retryTimer);
    this.endRefresh();
    if (ws) this.opts.handlers.presence([]);
    return ws;
  }
  online() {
    if (this.closed) return;
    if (this.ws) {
      if (this.lastStatus?.state === "offline") this.status(this.beforeOffline ?? { state: "loading" });
      return;
    }
    this.failures = 0;
    this.status({ state: "connecting" });
    void this.connect();
  }
  offline() {
    if (this.closed) return;
    if (this.lastStatus?.state !== "offline") this.beforeOffline = this.lastStatus;
    this.status({ state: "offline" });
  }
  status(status) {
    this.lastStatus = status;
    this.opts.handlers.status(status);
  }
  // ---- frames ------------------------------------------------------------------------------
  onFrame(frame, ws, frameBytes) {
    const h = this.opts.handlers;
    if (this.lastError?.code === "access_revoked") return;
    switch (frame.type) {
      case "hello": {
        this.failures = 0;
        this.maxInflight = Math.max(1, frame.max_inflight_mutations ?? DEFAULT_MAX_INFLIGHT);
        this.maxFrameBytes = Math.max(1, frame.max_frame_bytes ?? DEFAULT_MAX_FRAME_BYTES);
        this.rate = Math.max(1, Math.floor((frame.max_frames_per_second ?? DEFAULT_FRAMES_PER_SECOND) * FRAME_RATE_SHARE));
        this.tokens = Math.min(this.tokens, this.rate);
        for (const [id, q] of [...this.queue]) if (q.bytes > this.maxFrameBytes) this.tooLarge(id, q.bytes);
        this.receipts = frame.role !== void 0;
        this.everGreeted = true;
        this.patching = frame.patches === true;
        if (this.replica.resyncing) {
          if ((this.replica.suspect || this.resyncAtHello) && (this.patching || this.digests)) {
            this.resyncOut = true;
            this.status({ state: "syncing", targetVersion: this.held ?? 0 });
          } else {
            this.replica.resyncing = false;
          }
        }
        this.serverStatus({ state: "loading" });
        const expiresAt = parseExpiry(frame.expires_at);
        if (expiresAt !== null) this.scheduleRefresh(ws, expiresAt);
        h.hello(frame);
        if (this.ws === ws) this.pump();
        break;
      }
      case "snapshot": {
        const { type: _type, reset, digest, ...snapshot } = frame;
        if (typeof digest === "string") this.digests = true;
        this.replica.snapshot(snapshot, { reset: reset === true, digest, bytes: frameBytes });
        break;
      }
      case "patch": {
        const { type: _type, ...patch } = frame;
        this.digests = true;
        this.replica.patch(patch, frameBytes);
        break;
      }
      case "status":
        switch (frame.state) {
          case "live":
            this.serverStatus({ state: "live" });
            if (this.ws === ws && !this.replica.resyncing && this.held !== null && this.seenLast !== this.held) this.seen(this.held);
            break;
          case "loading":
            this.serverStatus({ state: "loading" });
            break;
          case "syncing":
            this.serverStatus({ state: "syncing", targetVersion: frame.target_version });
            break;
          case "error":
            this.serverStatus({ state: "error", code: frame.code, message: frame.message, retryAt: Date.now() + frame.retry_in_ms });
            break;
        }
        break;
      case "ack": {
        if (!this.queue.delete(frame.mutation_id)) break;
        h.result(frame.mutation_id, { ok: true, version: frame.library_version, data: frame.data ?? null });
        this.pump();
        break;
      }
      case "reject": {
        const q = this.queue.get(frame.mutation_id);
        if (!q) break;
        const problem = toProblem(frame.error);
        if (retryable(problem)) {
          q.inFlight = false;
          q.retries += 1;
          q.notBefore = Date.now() + retryDelay(q.retries);
        } else {
          this.queue.delete(frame.mutation_id);
          h.result(frame.mutation_id, { ok: false, problem });
        }
        this.pump();
        break;
      }
      case "auth_ok":
        this.authAccepted(ws, frame.expires_at);
        break;
      case "access":
        h.access(frame.role);
        break;
      case "presence":
        h.presence(frame.sessions);
        break;
      case "error":
        this.lastError = { code: frame.code, message: frame.message };
        if (frame.code === "invalid_token" || frame.code === "auth_unavailable" || frame.code === "access_revoked") break;
        console.warn(`librarian: the server refused a frame: ${frame.code}: ${frame.message}`);
        break;
    }
  }
  // ---- the library held ----------------------------------------------------------------------
  /** The replica has a library to show (synchronously, within the frame that brought it). */
  show(library, checked) {
    clearTimeout(this.resyncTimer);
    this.opts.handlers.snapshot(library, checked);
    if (this.serverSaid !== null && this.lastStatus?.state === "syncing" && !sameStatus(this.lastStatus, this.serverSaid)) {
      this.status(this.serverSaid);
    }
    if (this.ws !== null) this.seen(library.version);
  }
  /** The replica wants the whole library: `resync` on this connection (or the next one's `hello`). */
  askResync(_reason, version) {
    if (this.ws === null) return;
    this.status({ state: "syncing", targetVersion: Math.max(version, this.held ?? version) });
    if (this.maxInflight === null) {
      this.resyncAtHello = true;
      return;
    }
    this.resyncOut = true;
    this.pump();
  }
  /** Reconnects if the `resync` just sent on `ws` is not answered (see `RESYNC_WAIT_MS`). */
  watchResync(ws) {
    clearTimeout(this.resyncTimer);
    this.framesSinceResync = 0;
    this.resyncTimer = setTimeout(() => {
      if (this.closed || this.ws !== ws || !this.replica.resyncing) return;
      if (this.framesSinceResync === 0) this.watchResync(ws);
      else this.reconnect();
    }, RESYNC_WAIT_MS);
  }
  /** Even the answer to a resync did not match: this client cannot check this server's digests. */
  distrust(reason) {
    console.warn(`librarian: ${reason}; patch frames are turned off for this client`);
    if (this.patchesOff) return;
    this.patchesOff = true;
    if (this.patching && this.ws !== null) queueMicrotask(() => this.reconnect());
  }
  /** A status from the server: shown, unless a resync is outstanding (then once it is answered). */
  serverStatus(status) {
    this.serverSaid = status;
    if (this.replica.resyncing && status.state !== "error") return;
    this.status(status);
  }
  // ---- token refresh -----------------------------------------------------------------------
  /** The session on `ws` expires at `expiresAt`: refresh ahead of it (`refresh.ts`). */
  scheduleRefresh(ws, expiresAt) {
    this.expiresAt = expiresAt;
    this.refreshFailures = 0;
    this.refreshLater(ws, refreshAt(expiresAt, Date.now()));
  }
  /** Calls `refresh` at `at` (epoch ms), in steps no timer overflows. */
  refreshLater(ws, at) {
    clearTimeout(this.refreshTimer);
    const delay = Math.max(0, at - Date.now());
    this.refreshTimer = delay > MAX_TIMER_MS ? setTimeout(() => this.refreshLater(ws, at), MAX_TIMER_MS) : setTimeout(() => void this.refresh(ws), delay);
  }
  /** Asks the provider for a token and sends it as `auth` (once the frame rate allows). */
  async refresh(ws) {
    if (this.closed || this.ws !== ws) return;
    let token;
    try {
      token = await this.opts.getToken();
    } catch {
      if (this.ws === ws) this.retryRefresh(ws);
      return;
    }
    if (this.closed || this.ws !== ws) return;
    if (typeof token !== "string" || token === "" || token === this.sessionToken) {
      this.retryRefresh(ws);
      return;
    }
    const frame = { type: "auth", token };
    this.authOut = { token, text: JSON.stringify(frame) };
    this.pump();
  }
  retryRefresh(ws) {
    this.refreshFailures += 1;
    this.refreshLater(ws, Date.now() + retryDelay(this.refreshFailures));
  }
  /** `auth_ok`: the session runs on the token sent, until its `expires_at`. */
  authAccepted(ws, expires) {
    if (this.authSent !== null) this.sessionToken = this.authSent;
    this.authSent = null;
    const expiresAt = parseExpiry(expires);
    if (expiresAt === null) return;
    const now = Date.now();
    if (this.expiresAt !== null && expiresAt <= this.expiresAt || refreshAt(expiresAt, now) <= now) {
      this.expiresAt = expiresAt;
      this.retryRefresh(ws);
      return;
    }
    this.scheduleRefresh(ws, expiresAt);
  }
  /** Forgets the refresh of the connection that ended (or is about to be replaced). */
  endRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = void 0;
    this.expiresAt = null;
    this.refreshFailures = 0;
    this.authOut = null;
    this.authSent = null;
  }
  /** Queues the delivery receipt of `version` (replacing one not sent yet), if this server takes them. */
  seen(version) {
    if (!this.receipts || version === this.seenLast) return;
    this.seenLast = version;
    this.seenOut = version;
    this.pump();
  }
  /** Sends the queued mutations the limits allow now, oldest first; wakes for the next backoff. */
  pump() {
    clearTimeout(this.pumpTimer);
    this.pumpTimer = void 0;
    const ws = this.ws;
    const limit = this.maxInflight;
    if (this.closed || !ws || ws.readyState !== OPEN || limit === null) return;
    const now = Date.now();
    this.tokens = Math.min(this.rate, this.tokens + (now - this.refilledAt) * this.rate / 1e3);
    this.refilledAt = now;
    let wake = Infinity;
    if (this.authOut) {
      if (this.tokens < 1) {
        this.pumpTimer = setTimeout(() => this.pump(), Math.ceil((1 - this.tokens) * 1e3 / this.rate));
        return;
      }
      this.tokens -= 1;
      this.authSent = this.authOut.token;
      ws.send(this.authOut.text);
      this.authOut = null;
    }
    if (this.resyncOut) {
      if (this.tokens < 1) {
        this.pumpTimer = setTimeout(() => this.pump(), Math.ceil((1 - this.tokens) * 1e3 / this.rate));
        return;
      }
      this.tokens -= 1;
      const frame = { type: "resync" };
      ws.send(JSON.stringify(frame));
      this.resyncOut = false;
      this.watchResync(ws);
    }
    if (this.seenOut !== null) {
      const frame = { type: "seen", version: this.seenOut };
      ws.send(JSON.stringify(frame));
      this.seenOut = null;
    }
    let inFlight = 0;
    for (const q of this.queue.values()) if (q.inFlight) inFlight += 1;
    for (const q of this.queue.values()) {
      if (inFlight >= limit) break;
      if (q.inFlight) continue;
      if (q.notBefore > now) {
        wake = Math.min(wake, q.notBefore);
        continue;
      }
      if (this.tokens < 1) {
        wake = Math.min(wake, now + Math.ceil((1 - this.tokens) * 1e3 / this.rate));
        break;
      }
      this.tokens -= 1;
      q.inFlight = true;
      q.notBefore = 0;
      inFlight += 1;
      ws.send(q.text);
    }
    if (wake !== Infinity) this.pumpTimer = setTimeout(() => this.pump(), Math.max(0, wake - now));
  }
};
function sameStatus(a, b) {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
function isOffline() {
  const nav = globalThis.navigator;
  return nav?.onLine === false;
}
function describeClose(code, greeted, reason, error) {
  if (code === CloseCode.AuthExpired && error?.code === "invalid_token") {
    return { code: "invalid_token", message: `the server refused the new token${error.message ? `: ${error.message}` : ""}` };
  }
  if (code === CloseCode.AuthExpired) return { code: "token_expired", message: "the token expired" };
  if (code === CloseCode.TryAgainLater && error?.code === "auth_unavailable") {
    return { code: "auth_unavailable", message: `the server cannot check the token right now${error.message ? `: ${error.message}` : ""}` };
  }
  if (code === CloseCode.GoingAway) return { code: "connection_lost", message: "the server is shutting down" };
  if (greeted) {
    const why = reason ? `: ${reason}` : code !== null ? ` (close ${code})` : "";
    return { code: "connection_lost", message: `the connection to the server was lost${why}` };
  }
  return { code: "unreachable", message: "could not connect to the server" };
}
function message(e) {
  return e instanceof Error ? e.message : String(e);
}

// packages/client/src/tabs.ts
var Tabs = class {
  constructor(name, locks, BroadcastChannel, handlers) {
    __publicField(this, "name", name);
    __publicField(this, "locks", locks);
    __publicField(this, "handlers", handlers);
    /** This tab's id in messages. */
    __publicField(this, "id", uuid());
    __publicField(this, "leading", false);
    __publicField(this, "channel");
    __publicField(this, "abort", new AbortController());
    __publicField(this, "release", null);
    __publicField(this, "closed", false);
    this.channel = new BroadcastChannel(name);
    this.channel.onmessage = (event) => {
      const message2 = event.data;
      if (this.closed || !message2 || typeof message2 !== "object" || message2.from === this.id) return;
      this.handlers.message(message2);
    };
  }
  /** Joins: asks for the lock (granted now or when the leader goes). */
  start() {
    this.locks.request(this.name, { signal: this.abort.signal }, () => {
      if (this.closed) return Promise.resolve();
      this.leading = true;
      this.handlers.leader();
      return new Promise((resolve) => this.release = resolve);
    }).catch(() => {
    });
  }
  post(message2) {
    if (this.closed) return;
    this.channel.postMessage({ ...message2, from: this.id });
  }
  close() {
    if (this.closed) return;
    this.closed = true;
    this.channel.close();
    this.abort.abort();
    this.release?.();
  }
};
function tabSupport(locks, BroadcastChannel) {
  const g = globalThis;
  const l = locks ?? g.navigator?.locks;
  const bc = BroadcastChannel ?? g.BroadcastChannel;
  return l && bc ? { locks: l, BroadcastChannel: bc } : null;
}

// packages/client/src/temporary.ts
function newTemporaryBlock(fields = {}) {
  return {
    id: `temp-${uuid()}`,
    title: fields.title ?? "",
    content: fields.content ?? "",
    tags: fields.tags ? [...fields.tags] : [],
    project_id: fields.project_id ?? null,
    temporary: true,
    saving: false
  };
}
function changeTemporary(list, id, change) {
  const i = list.findIndex((b) => b.id === id);
  if (i < 0) return list;
  const next = list.slice();
  next[i] = change(list[i]);
  return next;
}
function withoutTemporary(list, ids) {
  const drop = new Set(ids);
  if (!list.some((b) => drop.has(b.id))) return list;
  return list.filter((b) => !drop.has(b.id));
}
function pickFields(changes) {
  const out = {};
  if (changes.title !== void 0) out.title = changes.title;
  if (changes.content !== void 0) out.content = changes.content;
  if (changes.tags !== void 0) out.tags = [...changes.tags];
  if (changes.project_id !== void 0) out.project_id = changes.project_id;
  return out;
}

// packages/client/src/token.ts
function tokenSubject(token) {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "=".repeat((4 - b64.length % 4) % 4));
    const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    const sub = payload && typeof payload === "object" ? payload.sub : void 0;
    return typeof sub === "string" && sub !== "" ? sub : null;
  } catch {
    return null;
  }
}

// packages/client/src/client.ts
var EMPTY = [];
var ACCESS_ENDED = /* @__PURE__ */ new Map([
  ["access_revoked", 403],
  ["library_not_found", 404]
]);
var LIBRARY_PROBE_MS = 5e3;
var CACHE_READ_WAIT_MS = 2e3;
var LibraryClient = class {
  constructor(options) {
    __publicField(this, "options");
    __publicField(this, "url");
    __publicField(this, "WebSocket");
    __publicField(this, "state");
    __publicField(this, "listeners", /* @__PURE__ */ new Set());
    __publicField(this, "pending", new Pending());
    // What is shown, and where it stands.
    __publicField(this, "snapshot", null);
    __publicField(this, "sync", { state: "connecting" });
    /** What is shown is the IndexedDB copy, not yet confirmed by the server in this run. */
    __publicField(this, "cached", false);
    /**
     * What is shown is a large library whose digest is still being checked (`replica.ts`): not
     * cached until it is (a mismatch asks for the whole library, which replaces it).
     */
    __publicField(this, "unchecked", false);
    __publicField(this, "temporary", EMPTY);
    __publicField(this, "lastSyncedAt", null);
    /** The library of what is shown (from the cache entry, `hello`, or the leader). */
    __publicField(this, "libraryId", null);
    /** The user's role in it (`hello`, `access`, or the leader); null before and after access ended. */
    __publicField(this, "role", null);
    /** The session the snapshots come from (`hello.session_id`, or the leader's). */
    __publicField(this, "sessionId", null);
    /** The sessions open on the library (`presence`, or the leader's); `[]` while unknown. */
    __publicField(this, "presence", EMPTY);
    /** `setMember` / `removeMember` waiting for a snapshot at least as new as their change. */
    __publicField(this, "versionWaiters", /* @__PURE__ */ new Set());
    __publicField(this, "apiInstance", null);
    /** Access to the library ended (revoked, or never there): writes reject with this until `reconnect()`. */
    __publicField(this, "ended", null);
    /** The highest library version a write of this client produced (state `lastWriteVersion`). */
    __publicField(this, "lastWriteVersion", null);
    /** Temporary blocks being saved: id of the block created → id of the temporary one. */
    __publicField(this, "saving", /* @__PURE__ */ new Map());
    __publicField(this, "saves", /* @__PURE__ */ new Map());
    __publicField(this, "user", null);
    /** The user the last `hello` named: a different one means the provider switched users. */
    __publicField(this, "helloUser", null);
    __publicField(this, "cache", null);
    /** The IndexedDB factory, kept until `hello` names the user (when the token is not a JWT). */
    __publicField(this, "cacheForUser", null);
    __publicField(this, "session", null);
    __publicField(this, "tabs", null);
    /** Leader: which follower each relayed mutation came from. */
    __publicField(this, "origins", /* @__PURE__ */ new Map());
    /** Leader: the snapshot last relayed (a `state` carries it only when it changed). */
    __publicField(this, "relayed", null);
    __publicField(this, "closed", false);
    __publicField(this, "closing", null);
    // ---- reading -----------------------------------------------------------------------------
    /** The current state: a new object after every change, the same object otherwise. */
    __publicField(this, "getState", () => this.state);
    /** Calls `listener` after every change of `getState()`; returns the unsubscribe function. */
    __publicField(this, "subscribe", (listener) => {
      this.listeners.add(listener);
      return () => {
        this.listeners.delete(listener);
      };
    });
    /**
     * The delivery receipt of `version` (e.g. a write's `library_version`): how many of the
     * sessions open on the library hold it or newer (`held`), of how many (`total`), from the
     * latest `presence`. It grows as the other sessions apply the snapshot: read it again on
     * every state change.
     */
    __publicField(this, "deliveredTo", (version) => countDelivered(this.presence, version));
    if (!options || typeof options.url !== "string" || !/^https?:\/\//.test(options.url)) {
      throw new TypeError("LibraryClient: `url` must be the server's http(s) origin");
    }
    if (typeof options.getToken !== "function") {
      throw new TypeError("LibraryClient: `getToken` must be a function returning a token");
    }
    this.options = options;
    this.url = options.url.replace(/\/+$/, "");
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.state = {
      version: null,
      projects: EMPTY,
      contextBlocks: EMPTY,
      savedPrompts: EMPTY,
      temporaryBlocks: this.temporary,
      status: { state: "connecting", cached: false },
      isLoading: true,
      error: null,
      lastSyncedAt: null,
      lastWriteVersion: null,
      libraryId: null,
      role: null,
      sessionId: null,
      members: EMPTY,
      presence: EMPTY
    };
    void this.start();
  }
  /** The REST side on this client's url and token provider: libraries and their members. */
  get api() {
    this.apiInstance ?? (this.apiInstance = new LibrariesApi({ url: this.url, getToken: this.options.getToken }));
    return this.apiInstance;
  }
  // ---- members of this client's library -------------------------------------------------------
  /**
   * Gives `userId` the role `role` in this client's library (owner only; adds them if they
   * are not a member). Resolves once the server committed it and the state shows it
   * (`members`); rejects with a `LibraryError` (403 for a non-owner, 409 for the owner).
   */
  async setMember(userId, role) {
    const change = await this.api.setMember(this.currentLibrary(), userId, role);
    await this.whenHeld(change.libraryVersion);
    this.wrote(change.libraryVersion);
    return change;
  }
  /**
   * Removes `userId` from this client's library (owner), or leaves it (the user's own id):
   * then this client ends as `access_revoked`. Resolves once the state shows the change (for
   * someone else), or at once when leaving.
   */
  async removeMember(userId) {
    const removal = await this.api.removeMember(this.currentLibrary(), userId);
    if (userId !== this.helloUser && userId !== this.user) {
      await this.whenHeld(removal.libraryVersion);
      this.wrote(removal.libraryVersion);
    }
    return removal;
  }
  // ---- actions -----------------------------------------------------------------------------
  createProject(fields) {
    return this.write("project.create", void 0, fields);
  }
  updateProject(id, changes, options) {
    return this.write("project.update", id, changes, options);
  }
  deleteProject(id, options) {
    return this.write("project.delete", id, void 0, options).then(() => void 0);
  }
  createContextBlock(fields) {
    return this.write("context_block.create", void 0, fields);
  }
  updateContextBlock(id, changes, options) {
    return this.write("context_block.update", id, changes, options);
  }
  deleteContextBlock(id, options) {
    return this.write("context_block.delete", id, void 0, options).then(() => void 0);
  }
  createSavedPrompt(fields) {
    return this.write("saved_prompt.create", void 0, fields);
  }
  updateSavedPrompt(id, changes, options) {
    return this.write("saved_prompt.update", id, changes, options);
  }
  deleteSavedPrompt(id, options) {
    return this.write("saved_prompt.delete", id, void 0, options).then(() => void 0);
  }
  // ---- temporary blocks --------------------------------------------------------------------
  /** A block only this client sees (never sent); returns it, with its local id. */
  addTemporaryBlock(fields = {}) {
    const block = newTemporaryBlock(pickFields(fields));
    this.temporary = [...this.temporary, block];
    this.commit();
    return block;
  }
  /** Changes a temporary block's fields; returns it as it is now. */
  updateTemporaryBlock(id, changes) {
    if (!this.temporary.some((b) => b.id === id)) throw noTemporary(id);
    const fields = pickFields(changes);
    this.temporary = changeTemporary(this.temporary, id, (b) => ({ ...b, ...fields }));
    this.commit();
    return this.temporary.find((b) => b.id === id);
  }
  removeTemporaryBlock(id) {
    this.temporary = withoutTemporary(this.temporary, [id]);
    this.commit();
  }
  /**
   * Creates the block on the server and resolves to it. The state update that first shows
   * the saved block is the one that removes the temporary block: no state has both, none has
   * neither. Meanwhile the temporary block has `saving: true`; on a reject it stays, unmarked.
   */
  saveTemporaryBlock(id) {
    const already = this.saves.get(id);
    if (already) return already;
    const block = this.temporary.find((b) => b.id === id);
    if (!block) return Promise.reject(noTemporary(id));
    const blockId = uuid();
    this.saving.set(blockId, id);
    this.temporary = changeTemporary(this.temporary, id, (b) => ({ ...b, saving: true }));
    this.commit();
    const save = this.createContextBlock({
      id: blockId,
      title: block.title,
      content: block.content,
      tags: block.tags,
      project_id: block.project_id
    }).then(
      (saved) => {
        this.saving.delete(blockId);
        this.saves.delete(id);
        this.removeTemporaryBlock(id);
        return saved;
      },
      (error) => {
        this.saving.delete(blockId);
        this.saves.delete(id);
        this.temporary = changeTemporary(this.temporary, id, (b) => ({ ...b, saving: false }));
        this.commit();
        throw error;
      }
    );
    this.saves.set(id, save);
    return save;
  }
  // ---- lifecycle ---------------------------------------------------------------------------
  /**
   * Ends the client: the socket closes (another tab takes over if this one led), pending
   * actions reject with code `closed` (one already sent may still have been applied).
   * Resolves once the socket closed and the last cache write finished.
   */
  close() {
    if (this.closing) return this.closing;
    this.closed = true;
    this.pending.rejectAll(LibraryError.client("closed", "the client was closed"));
    this.rejectWaiters(LibraryError.client("closed", "the client was closed"));
    this.tabs?.close();
    const session = this.session?.close() ?? Promise.resolve();
    this.closing = session.then(async () => {
      await this.cache?.close().catch(() => {
      });
    });
    this.listeners.clear();
    return this.closing;
  }
  /**
   * Connects again now, without waiting for the backoff (after `unauthorized`, or for a
   * "retry now" button). In a tab that does not lead, it asks the leader to.
   */
  reconnect() {
    if (this.closed) return;
    this.ended = null;
    if (this.session) this.session.reconnect();
    else if (this.tabs?.leading) this.startSession();
    else this.tabs?.post({ t: "reconnect" });
  }
  /**
   * Deletes what Librarian cached in this origin's IndexedDB: every user's and library's copy
   * (what sign-out wants), not only this client's. What is shown stays until `close()`; the
   * next snapshot is cached again unless the client is closed.
   */
  async clearCache() {
    this.cache?.cancel();
    await this.cache?.flush();
    await clearLibraryCache(this.options.indexedDB ?? globalThis.indexedDB);
  }
  // ---- start -------------------------------------------------------------------------------
  async start() {
    const idb = this.options.cache === "indexeddb" ? this.options.indexedDB ?? globalThis.indexedDB : void 0;
    const tabs = this.options.shareAcrossTabs ? tabSupport(this.options.locks, this.options.BroadcastChannel) : null;
    let token;
    if (idb || tabs) {
      try {
        token = await this.options.getToken();
        this.user = tokenSubject(token);
      } catch {
        token = void 0;
      }
      if (this.closed) return;
    }
    if (idb && this.user) {
      this.cache = new SnapshotCache(idb, cacheKey(this.url, this.user, this.options.library));
      let timer;
      await Promise.race([this.showCached(null), new Promise((r) => timer = setTimeout(r, CACHE_READ_WAIT_MS))]);
      clearTimeout(timer);
      if (this.closed) return;
    } else if (idb) {
      this.cacheForUser = idb;
    }
    if (tabs && this.user) {
      const name = `librarian:${cacheKey(this.url, this.user, this.options.library)}`;
      this.tabs = new Tabs(name, tabs.locks, tabs.BroadcastChannel, {
        leader: () => this.lead(),
        message: (m) => this.onTabMessage(m)
      });
      this.tabs.post({ t: "ask" });
      for (const frame of this.pending.unanswered()) this.tabs.post({ t: "mutate", frame });
      this.tabs.start();
    } else {
      this.startSession(token);
    }
  }
  /** Shows the cached copy if nothing is shown yet (and, given `libraryId`, only of that library). */
  async showCached(libraryId) {
    let entry;
    try {
      entry = await this.cache?.read();
    } catch {
      return;
    }
    if (!entry || this.closed || this.snapshot !== null) return;
    if (libraryId !== null && entry.libraryId !== libraryId) return;
    this.showSnapshot(entry.snapshot, true);
    this.libraryId = entry.libraryId;
    this.lastSyncedAt = entry.lastSyncedAt;
    this.commit();
  }
  startSession(token) {
    if (this.closed) return;
    if (!this.WebSocket) {
      this.setSync({ state: "error", code: "unreachable", message: "no WebSocket: pass the `WebSocket` option", retryAt: null });
      this.commit();
      return;
    }
    this.session = new Session({
      url: this.url,
      library: this.options.library,
      getToken: this.options.getToken,
      WebSocket: this.WebSocket,
      held: this.snapshot,
      patches: this.options.patches !== false,
      ...this.options.verify ? { verify: this.options.verify } : {},
      token,
      handlers: {
        hello: (frame) => this.onHello(frame),
        snapshot: (snapshot, checked) => this.onServerSnapshot(snapshot, checked),
        checked: (version) => this.onChecked(version),
        status: (status) => this.onServerStatus(status),
        result: (id, result) => this.onResult(id, result),
        access: (role) => this.onAccess(role),
        presence: (sessions) => this.onPresence(sessions)
      },
      ...this.options.library ? { libraryGone: (token2) => this.libraryGone(token2) } : {}
    });
    this.session.start();
    for (const frame of this.pending.unanswered()) this.session.mutate(frame);
  }
  // ---- from the server (this client's own session) ------------------------------------------
  /** Asked by the session after a refused upgrade: does the server say the user is no member? */
  async libraryGone(token) {
    const library = this.options.library;
    if (!library) return false;
    let timer;
    try {
      const ask = new LibrariesApi({ url: this.url, getToken: () => token }).members(library);
      const late = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("no answer")), LIBRARY_PROBE_MS);
      });
      await Promise.race([ask, late]);
      return false;
    } catch (e) {
      return e instanceof LibraryError && e.status === 404 && e.code === "library_not_found";
    } finally {
      clearTimeout(timer);
    }
  }
  onHello(frame) {
    const libraryId = frame.library_id;
    const userId = frame.user_id;
    if (this.helloUser !== null && this.helloUser !== userId) {
      this.session?.halt(
        "unauthorized",
        "the token is for another user than this client's; make a new client for them"
      );
      return;
    }
    this.helloUser = userId;
    this.role = frame.role ?? "owner";
    this.sessionId = frame.session_id;
    if (this.cacheForUser && !this.cache) {
      this.user = userId;
      this.cache = new SnapshotCache(this.cacheForUser, cacheKey(this.url, userId, this.options.library));
      this.cacheForUser = null;
      void this.showCached(libraryId);
    }
    if (this.snapshot !== null && this.libraryId !== null && this.libraryId !== libraryId) {
      this.snapshot = null;
      this.cached = false;
      this.libraryId = libraryId;
      void this.cache?.remove().catch(() => {
      });
      this.commit();
      this.relay(true);
      this.session?.reconnect({ dropHeld: true });
      return;
    }
    this.libraryId = libraryId;
    if (this.commit()) this.relay(false);
  }
  onAccess(role) {
    this.role = role;
    if (this.commit()) this.relay(false);
  }
  onPresence(sessions) {
    this.presence = sessions.length > 0 ? sessions : EMPTY;
    if (sessions.length === 0) this.sessionId = null;
    if (this.commit()) this.relay(false);
  }
  onServerSnapshot(snapshot, checked) {
    const before = this.snapshot?.version ?? null;
    this.showSnapshot(snapshot, false);
    this.unchecked = !checked;
    if (this.sync.state === "live") this.lastSyncedAt = Date.now();
    this.commit();
    this.settle();
    this.relay(before === null || snapshot.version <= before);
    this.writeCache();
  }
  /** The large library shown at `version` matched its digest: it may be cached now. */
  onChecked(version) {
    if (this.snapshot?.version !== version || !this.unchecked) return;
    this.unchecked = false;
    this.writeCache();
    this.relay(false);
  }
  onServerStatus(status) {
    const becameLive = status.state === "live" && (this.sync.state !== "live" || this.cached);
    this.setSync(status);
    if (status.state === "error" && ACCESS_ENDED.has(status.code)) this.accessEnded(status.code, status.message);
    if (becameLive) {
      this.cached = false;
      this.lastSyncedAt = Date.now();
    }
    if (this.commit()) this.relay(false);
    if (becameLive) this.writeCache();
  }
  onResult(mutationId, result) {
    const follower = this.origins.get(mutationId);
    if (follower !== void 0) {
      this.origins.delete(mutationId);
      this.tabs?.post({ t: "result", to: follower, mutationId, result });
      if (!this.pending.has(mutationId)) return;
    }
    if (result.ok) {
      this.pending.ack(mutationId, { version: result.version, data: result.data }, this.snapshot?.version ?? null);
    } else {
      this.pending.reject(mutationId, new LibraryError(result.problem));
    }
  }
  /**
   * Access to the library ended (revoked, deleted, or never there): what committed resolves,
   * the rest rejects, the cached copy goes (the user may not read it any more).
   */
  accessEnded(code, message2) {
    this.role = null;
    this.presence = EMPTY;
    this.sessionId = null;
    this.origins.clear();
    const error = LibraryError.client(code, message2, ACCESS_ENDED.get(code) ?? 0);
    this.ended = error;
    this.pending.resolveAcked();
    this.pending.rejectAll(error);
    this.rejectWaiters(error);
    if (this.tabs?.leading !== false) void this.cache?.remove().catch(() => {
    });
  }
  writeCache() {
    if (!this.cache || !this.snapshot || this.cached || this.unchecked) return;
    this.cache.write({
      snapshot: this.snapshot,
      libraryId: this.libraryId,
      lastSyncedAt: this.lastSyncedAt,
      savedAt: Date.now()
    });
  }
  // ---- tabs --------------------------------------------------------------------------------
  /** This tab took the lock: it holds the socket now, resuming from what it shows. */
  lead() {
    if (this.closed) return;
    this.tabs?.post({ t: "leader" });
    if (!this.ended) this.startSession();
    this.relay(true);
  }
  onTabMessage(m) {
    const leading = this.tabs?.leading ?? false;
    switch (m.t) {
      case "ask":
        if (leading) this.relay(true, true);
        break;
      case "mutate":
        if (leading) {
          this.origins.set(m.frame.mutation_id, m.from);
          this.session?.mutate(m.frame);
        }
        break;
      case "reconnect":
        if (leading) {
          this.ended = null;
          if (this.session) this.session.reconnect();
          else this.startSession();
        }
        break;
      case "leader":
        for (const frame of this.pending.unanswered()) this.tabs?.post({ t: "mutate", frame });
        break;
      case "result":
        if (m.to === this.tabs?.id) this.onResult(m.mutationId, m.result);
        break;
      case "state":
        if (!leading) this.onRelayedState(m);
        break;
    }
  }
  onRelayedState(m) {
    const held = this.snapshot?.version ?? null;
    if (m.snapshot && (m.force || held === null || m.snapshot.version > held)) {
      this.showSnapshot(m.snapshot, m.cached);
      this.libraryId = m.libraryId;
      this.unchecked = m.unchecked === true;
    } else if (m.version !== null && m.version === held) {
      if (!m.cached) this.cached = false;
      if (m.unchecked !== true) this.unchecked = false;
    }
    this.setSync(m.status);
    if (m.lastSyncedAt !== null && (this.lastSyncedAt === null || m.lastSyncedAt > this.lastSyncedAt)) {
      this.lastSyncedAt = m.lastSyncedAt;
    }
    this.role = m.role ?? null;
    this.sessionId = m.sessionId ?? null;
    this.presence = Array.isArray(m.presence) && m.presence.length > 0 ? m.presence : EMPTY;
    if (m.status.state === "error" && ACCESS_ENDED.has(m.status.code)) {
      if (!this.ended) this.accessEnded(m.status.code, m.status.message);
    } else {
      this.ended = null;
    }
    this.commit();
    this.settle();
  }
  /** Leader: tells the other tabs where it stands (with the snapshot when it changed, or `full`). */
  relay(force, full = false) {
    const tabs = this.tabs;
    if (!tabs?.leading || this.closed) return;
    const withSnapshot = full || force || this.snapshot !== this.relayed;
    this.relayed = this.snapshot;
    tabs.post({
      t: "state",
      ...withSnapshot && this.snapshot ? { snapshot: this.snapshot } : {},
      force,
      version: this.snapshot?.version ?? null,
      libraryId: this.libraryId,
      status: this.sync,
      cached: this.cached,
      unchecked: this.unchecked,
      lastSyncedAt: this.lastSyncedAt,
      role: this.role,
      sessionId: this.sessionId,
      presence: this.presence
    });
  }
  // ---- mutations ---------------------------------------------------------------------------
  write(op, id, data, options) {
    if (this.closed) return Promise.reject(LibraryError.client("closed", "the client was closed"));
    if (this.ended) return Promise.reject(this.ended);
    const frame = { type: "mutate", mutation_id: uuid(), op };
    if (id !== void 0) frame.id = id;
    if (options?.ifVersion !== void 0) frame.if_version = options.ifVersion;
    if (data !== void 0) frame.data = JSON.parse(JSON.stringify(data));
    const done2 = this.pending.add(frame);
    if (this.session) this.session.mutate(frame);
    else if (this.tabs) this.tabs.post({ t: "mutate", frame });
    return done2.then((applied) => {
      this.wrote(applied.version);
      return applied.data;
    });
  }
  /** A write of this client committed as `version` (and is shown, unless access ended). */
  wrote(version) {
    if (this.lastWriteVersion !== null && this.lastWriteVersion >= version) return;
    this.lastWriteVersion = version;
    this.commit();
  }
  // ---- the state ---------------------------------------------------------------------------
  /** Shows `next` (rows equal to the ones shown keep their objects), and drops the temporary blocks it saved. */
  showSnapshot(next, fromCache) {
    const prev = this.snapshot;
    this.snapshot = {
      version: next.version,
      projects: shareRows(prev?.projects ?? EMPTY, next.projects),
      context_blocks: shareRows(prev?.context_blocks ?? EMPTY, next.context_blocks),
      saved_prompts: shareRows(prev?.saved_prompts ?? EMPTY, next.saved_prompts),
      // Absent from servers (and cached copies) before shared libraries.
      members: shareMembers(prev?.members ?? EMPTY, next.members ?? EMPTY)
    };
    this.cached = fromCache;
    if (this.saving.size > 0) {
      const ids = new Set(this.snapshot.context_blocks.map((b) => b.id));
      const saved = [...this.saving].filter(([blockId]) => ids.has(blockId)).map(([, tempId]) => tempId);
      this.temporary = withoutTemporary(this.temporary, saved);
    }
  }
  /** Resolves what waited for the version now held: acknowledged writes, member changes. */
  settle() {
    const held = this.snapshot?.version ?? null;
    this.pending.settle(held);
    if (held === null) return;
    for (const w of [...this.versionWaiters]) {
      if (w.version <= held) {
        this.versionWaiters.delete(w);
        w.resolve();
      }
    }
  }
  /** Resolves once the state shows a snapshot at least `version` new. */
  whenHeld(version) {
    if ((this.snapshot?.version ?? -1) >= version && !this.cached) return Promise.resolve();
    if (this.closed) return Promise.reject(LibraryError.client("closed", "the client was closed"));
    return new Promise((resolve, reject) => this.versionWaiters.add({ version, resolve, reject }));
  }
  rejectWaiters(error) {
    const all = [...this.versionWaiters];
    this.versionWaiters.clear();
    for (const w of all) w.reject(error);
  }
  /** The library this client is on: the `library` option, else the one `hello` named. */
  currentLibrary() {
    const id = this.options.library ?? this.libraryId;
    if (!id) throw LibraryError.client("loading", "the library is not known yet: wait until the client is loading or live");
    return id;
  }
  setSync(status) {
    if (!sameShallow(status, this.sync)) this.sync = status;
  }
  /** Builds the next state from the fields above; emits (and returns true) only if something changed. */
  commit() {
    if (this.closed) return false;
    const s = this.state;
    const snap = this.snapshot;
    const cached2 = this.cached && snap !== null;
    const status = s.status.cached === cached2 && sameShallowExcept(s.status, this.sync, "cached") ? s.status : { ...this.sync, cached: cached2 };
    const next = {
      version: snap?.version ?? null,
      projects: snap?.projects ?? EMPTY,
      contextBlocks: snap?.context_blocks ?? EMPTY,
      savedPrompts: snap?.saved_prompts ?? EMPTY,
      temporaryBlocks: this.temporary,
      status,
      isLoading: snap === null,
      error: status === s.status ? s.error : status.state === "error" ? statusError(status) : null,
      lastSyncedAt: this.lastSyncedAt,
      lastWriteVersion: this.lastWriteVersion,
      libraryId: this.libraryId,
      role: this.role,
      sessionId: this.sessionId,
      members: snap?.members ?? EMPTY,
      presence: this.presence
    };
    if (Object.keys(next).every((k) => next[k] === s[k])) return false;
    this.state = next;
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
    return true;
  }
};
function statusError(status) {
  const httpLike = status.code === "database_unavailable" ? 503 : ACCESS_ENDED.get(status.code) ?? 0;
  return LibraryError.client(status.code, status.message, httpLike);
}
function noTemporary(id) {
  return LibraryError.client("not_found", `no temporary block ${id}`);
}
function shareMembers(prev, next) {
  const same = prev.length === next.length && prev.every((m, i) => m.user_id === next[i].user_id && m.role === next[i].role);
  return same ? prev : next;
}
function sameShallow(a, b) {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
function sameShallowExcept(withKey, without, key) {
  const ka = Object.keys(withKey).filter((k) => k !== key);
  return ka.length === Object.keys(without).length && ka.every((k) => withKey[k] === without[k]);
}

// packages/client/src/list.ts
var DEFAULT_POLL_MS = 5e3;
var LibraryList = class {
  constructor(api, options = {}) {
    __publicField(this, "api");
    __publicField(this, "state", { libraries: [], isLoading: true, error: null });
    __publicField(this, "listeners", /* @__PURE__ */ new Set());
    __publicField(this, "pollMs");
    __publicField(this, "timer");
    __publicField(this, "inFlight", null);
    /** A fetch was asked for while one was in flight: one more follows it. */
    __publicField(this, "again", false);
    __publicField(this, "onWake", () => {
      const doc = globalThis.document;
      if (doc?.visibilityState !== "hidden") void this.refresh();
    });
    __publicField(this, "getState", () => this.state);
    /** Listens for changes; the first listener starts the fetching, the last one to leave stops it. */
    __publicField(this, "subscribe", (listener) => {
      this.listeners.add(listener);
      if (this.listeners.size === 1) this.wake();
      return () => {
        if (!this.listeners.delete(listener) || this.listeners.size > 0) return;
        this.sleep();
      };
    });
    this.api = api instanceof LibrariesApi ? api : new LibrariesApi(api);
    this.pollMs = options.pollIntervalMs ?? DEFAULT_POLL_MS;
  }
  /** Fetches the list now (resolves when this fetch, or the one in flight and one after it, ended). */
  refresh() {
    if (this.inFlight) {
      this.again = true;
      return this.inFlight;
    }
    clearTimeout(this.timer);
    this.inFlight = this.fetch().finally(() => {
      this.inFlight = null;
      if (this.again) {
        this.again = false;
        void this.refresh();
      } else {
        this.schedule();
      }
    });
    return this.inFlight;
  }
  /** Creates a library (owned by the caller) and resolves once the list shows it. */
  async create(name) {
    const made = await this.api.create(name);
    await this.refresh();
    return made;
  }
  async rename(libraryId, name) {
    const renamed = await this.api.rename(libraryId, name);
    await this.refresh();
    return renamed;
  }
  async delete(libraryId) {
    await this.api.delete(libraryId);
    await this.refresh();
  }
  /** Stops fetching and forgets the listeners (a later `subscribe` starts again). */
  close() {
    this.sleep();
    this.listeners.clear();
  }
  async fetch() {
    try {
      const libraries = await this.api.list();
      const same = sameList(this.state.libraries, libraries);
      this.set({ libraries: same ? this.state.libraries : libraries, isLoading: false, error: null });
    } catch (e) {
      const error = e instanceof LibraryError ? e : LibraryError.client("unreachable", String(e));
      this.set({ ...this.state, isLoading: false, error });
    }
  }
  set(next) {
    const s = this.state;
    if (next.libraries === s.libraries && next.isLoading === s.isLoading && next.error === s.error) return;
    if (next.error && s.error && next.error.code === s.error.code && next.error.message === s.error.message) next.error = s.error;
    if (next.libraries === s.libraries && next.isLoading === s.isLoading && next.error === s.error) return;
    this.state = next;
    for (const listener of [...this.listeners]) listener();
  }
  schedule() {
    clearTimeout(this.timer);
    if (this.listeners.size === 0 || this.pollMs <= 0) return;
    this.timer = setTimeout(() => void this.refresh(), this.pollMs);
  }
  wake() {
    const { window, document } = events();
    window?.addEventListener?.("online", this.onWake);
    document?.addEventListener?.("visibilitychange", this.onWake);
    void this.refresh();
  }
  sleep() {
    clearTimeout(this.timer);
    this.timer = void 0;
    const { window, document } = events();
    window?.removeEventListener?.("online", this.onWake);
    document?.removeEventListener?.("visibilitychange", this.onWake);
  }
};
function events() {
  return { window: globalThis, document: globalThis.document };
}
function sameList(a, b) {
  return a.length === b.length && a.every((x, i) => {
    const y = b[i];
    return x.id === y.id && x.name === y.name && x.role === y.role && x.version === y.version && x.owner_id === y.owner_id;
  });
}

// packages/client/src/dev.ts
async function devToken(url, user) {
  const base = url.endsWith("/") ? url : `${url}/`;
  const res = await fetch(new URL("api/v1/dev/token", base), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user })
  });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const problem = toProblem(body);
    throw new LibraryError({ ...problem, status: problem.status || res.status });
  }
  const token = body?.token;
  if (typeof token !== "string") throw LibraryError.client("unauthorized", "the server sent no token");
  return token;
}
export {
  CloseCode,
  LibrariesApi,
  LibraryClient,
  LibraryError,
  LibraryList,
  clearLibraryCache,
  countDelivered,
  devToken
};
