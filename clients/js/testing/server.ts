/**
 * The real `librarian` binary for tests: started on a free port in a fresh directory, with
 * JSON logs kept in memory, and the few HTTP calls tests need (dev tokens, the library,
 * /metrics). Never a mock server.
 *
 * ```ts
 * const server = await startServer();            // target/debug/librarian serve, port 0
 * const token = await server.token("alice");     // POST /api/v1/dev/token (dev auth, the default)
 * const snapshot = await server.library(token);  // GET /api/v1/library
 * await server.metric("librarian_sessions_open"); // one sample of /metrics
 * await server.kill(); await server.restart();   // kill -9, then the same dir, port and env
 * await server.stop();                           // SIGTERM, wait for the exit
 * ```
 *
 * The binary is `$LIBRARIAN_BIN`, else `<repo>/target/debug/librarian` (build it with
 * `cargo build --bin librarian`). Logs are printed only by `printLogs()`, or as they come when
 * `LIBRARIAN_TEST_LOGS=1`.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The repository's root (this file is `clients/js/testing/server.ts`). */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** The binary tests run: `$LIBRARIAN_BIN`, else `<repo>/target/debug/librarian`. */
export function librarianBin(): string {
  return process.env.LIBRARIAN_BIN ?? join(REPO_ROOT, "target", "debug", "librarian");
}

/** Hang guard for a server to say it is listening (a cold debug binary on a busy machine). */
const START_TIMEOUT_MS = 60_000;
/** Hang guard for a server to exit after a signal. */
const EXIT_TIMEOUT_MS = 20_000;
/** How long `restart()` keeps trying while the old port is not free yet. */
const REBIND_TIMEOUT_MS = 30_000;

export interface ServerOptions {
  /** Extra environment, e.g. `{LIBRARIAN__WS__MAX_INFLIGHT_MUTATIONS: "2"}`; wins over the defaults below. */
  env?: Record<string, string>;
  /** The port to bind (default 0: any free port). */
  port?: number;
  /** The working directory (SQLite file, dev secret); default a fresh temporary directory. */
  dir?: string;
}

/** One log line: the JSON object the server wrote, or `{raw}` for a line that was not JSON. */
export type LogLine = { message?: string; raw?: string; [key: string]: unknown };

/** What the server answered to an HTTP call. */
export interface Answer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

/** No server outlives the test process, whatever happens to the test. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of children) child.kill("SIGKILL");
  });
}

export class LibrarianServer {
  /** `http://127.0.0.1:PORT` */
  url = "";
  port = 0;
  readonly dir: string;
  readonly env: Record<string, string>;
  #child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();
  #logs: LogLine[] = [];
  #logWaiters = new Set<() => void>();

  constructor(dir: string, env: Record<string, string>) {
    this.dir = dir;
    this.env = env;
  }

  /** Every log line so far (all runs: a restart appends). */
  logs(): LogLine[] {
    return [...this.#logs];
  }

  /** Prints the logs (e.g. when a test failed). */
  printLogs(label = "librarian"): void {
    const text = this.#logs.map((l) => l.raw ?? JSON.stringify(l)).join("\n");
    process.stderr.write(`---- ${label} logs (${this.url || "not started"}) ----\n${text}\n---- end ----\n`);
  }

  /** Resolves with the first log line (from now on or already logged) that `match` accepts. */
  waitForLog(match: (line: LogLine) => boolean, what = "a log line", timeoutMs = 20_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.#logs.find(match);
        if (!line) return false;
        done();
        resolve(line);
        return true;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no log line: ${what} (within ${timeoutMs} ms)`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#logWaiters.delete(waiter);
      };
      const waiter = () => void check();
      this.#logWaiters.add(waiter);
      check();
    });
  }

  /** Starts the binary (on `this.port`, 0 the first time) and waits for its "listening" line. */
  async start(): Promise<void> {
    installExitHook();
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      // Hermetic: no inherited server settings or log filter.
      if (v === undefined || k === "RUST_LOG" || k.startsWith("LIBRARIAN__")) continue;
      env[k] = v;
    }
    Object.assign(env, {
      LIBRARIAN__SERVER__BIND: `127.0.0.1:${this.port}`,
      LIBRARIAN__LOG__FORMAT: "json",
      ...this.env,
    });
    const bin = librarianBin();
    if (!existsSync(bin)) {
      throw new Error(`no librarian binary at ${bin}: run \`cargo build --bin librarian\` or set LIBRARIAN_BIN`);
    }
    const child = spawn(bin, ["serve"], { cwd: this.dir, env, stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    children.add(child);
    this.#exited = new Promise((resolve) => {
      child.once("exit", () => {
        children.delete(child);
        resolve();
      });
    });
    const echo = process.env.LIBRARIAN_TEST_LOGS === "1";
    const listening = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`librarian did not say "listening" within ${START_TIMEOUT_MS} ms`));
      }, START_TIMEOUT_MS);
      const onLine = (raw: string, stream: string) => {
        let line: LogLine;
        try {
          const parsed: unknown = JSON.parse(raw);
          line = parsed && typeof parsed === "object" ? (parsed as LogLine) : { raw };
        } catch {
          line = { raw };
        }
        this.#logs.push(line);
        if (echo) process.stderr.write(`[librarian ${stream}] ${raw}\n`);
        for (const waiter of [...this.#logWaiters]) waiter();
        if (line.message === "listening" && typeof line.address === "string") {
          clearTimeout(timer);
          const port = Number(line.address.split(":").pop());
          resolve(port);
        }
      };
      createInterface({ input: child.stderr! }).on("line", (l) => onLine(l, "stderr"));
      createInterface({ input: child.stdout! }).on("line", (l) => onLine(l, "stdout"));
      child.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`librarian exited before listening (code ${code}, signal ${signal})`));
      });
    });
    try {
      this.port = await listening;
    } catch (e) {
      // The reason is in the last lines (e.g. the port is taken, a bad setting).
      const tail = this.#logs.slice(-20).map((l) => l.raw ?? JSON.stringify(l)).join("\n");
      throw new Error(`${e instanceof Error ? e.message : String(e)}; last log lines:\n${tail}`);
    }
    this.url = `http://127.0.0.1:${this.port}`;
  }

  /** kill -9, and wait until the process is gone. */
  async kill(): Promise<void> {
    await this.#signal("SIGKILL");
  }

  /** SIGTERM (graceful shutdown), and wait until the process is gone (SIGKILL past a guard). */
  async stop(): Promise<void> {
    await this.#signal("SIGTERM");
  }

  /** Starts again after `kill()`/`stop()`: same directory, port and environment. */
  async restart(): Promise<void> {
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) {
      await this.stop();
    }
    await this.startRetrying();
  }

  /** `start()`, tried again for a while if it fails (a port that is not free yet). */
  async startRetrying(): Promise<void> {
    const deadline = Date.now() + REBIND_TIMEOUT_MS;
    for (;;) {
      try {
        await this.start();
        return;
      } catch (e) {
        // The old socket may hold the port for a moment: try again briefly.
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async #signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const guard = setTimeout(() => child.kill("SIGKILL"), EXIT_TIMEOUT_MS);
    await this.#exited;
    clearTimeout(guard);
  }

  /** Any HTTP call; `token` becomes a bearer header, `body` JSON. */
  async request<T = unknown>(
    method: string,
    path: string,
    opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<Answer<T>> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(new URL(path, this.url), {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // not JSON (e.g. /metrics): the text
    }
    return { status: res.status, headers: res.headers, body: body as T };
  }

  /** A dev-mode token for `user` (POST /api/v1/dev/token). */
  async token(user: string): Promise<string> {
    const res = await this.request<{ token: string }>("POST", "/api/v1/dev/token", { body: { user } });
    if (res.status !== 200) throw new Error(`dev token for ${user}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.token;
  }

  /** GET /api/v1/library: the user's snapshot. */
  async library<T = LibrarySnapshotJson>(token: string): Promise<T> {
    const res = await this.request<T>("GET", "/api/v1/library", { token });
    if (res.status !== 200) throw new Error(`GET /library: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /** GET /metrics: the Prometheus text. */
  async metrics(): Promise<string> {
    const res = await this.request<string>("GET", "/metrics");
    return String(res.body);
  }

  /**
   * One sample of /metrics: `name` with exactly these labels (none: the unlabelled sample, or
   * the first one). Undefined when absent.
   */
  async metric(name: string, labels?: Record<string, string>): Promise<number | undefined> {
    return sample(await this.metrics(), name, labels);
  }

  /** WebSocket sessions open on this server (`librarian_sessions_open`). */
  async sessionsOpen(): Promise<number> {
    return (await this.metric("librarian_sessions_open")) ?? 0;
  }
}

/** The snapshot as JSON (the client package has the precise types). */
export interface LibrarySnapshotJson {
  version: number;
  projects: Array<Record<string, unknown> & { id: string }>;
  context_blocks: Array<Record<string, unknown> & { id: string }>;
  saved_prompts: Array<Record<string, unknown> & { id: string }>;
}

/** Reads one sample from Prometheus text. */
export function sample(text: string, name: string, labels?: Record<string, string>): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    if (labels) {
      const have: Record<string, string> = {};
      for (const pair of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        have[pair[1]!] = pair[2]!;
      }
      const want = Object.entries(labels);
      if (want.length !== Object.keys(have).length || want.some(([k, v]) => have[k] !== v)) continue;
    }
    return Number(m[4]);
  }
  return undefined;
}

/** Starts a server (see the module doc). */
export async function startServer(opts: ServerOptions = {}): Promise<LibrarianServer> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), "librarian-test-")));
  const server = new LibrarianServer(dir, opts.env ?? {});
  server.port = opts.port ?? 0;
  // A given port may still be held by a server that just stopped: retry briefly.
  await (server.port ? server.startRetrying() : server.start());
  return server;
}
