/**
 * A TCP proxy in front of a test server, to break and watch connections:
 *
 * - `cut()` destroys every open connection at once (a network drop: no close frame);
 *   `refuse(true)` refuses new ones until `refuse(false)`.
 * - Each connection records its HTTP request line (so a test can read a reconnect's
 *   `since_version`) and, once upgraded to a WebSocket, every text frame each way.
 * - `inject(text)` sends a text frame to the client as if the server had sent it (e.g. a stale
 *   snapshot, to prove the client ignores it). Server bytes are forwarded frame by frame, so
 *   an injected frame never lands inside one of the server's; injected from an `onFrame`
 *   listener of a server frame, it goes where that frame stands (before it, or instead of it
 *   when the listener drops it: a frame changed in transit).
 *
 * ```ts
 * const proxy = await startProxy(server.port);
 * const client = new LibraryClient({url: proxy.url, ...});
 * proxy.last()?.url.searchParams.get("since_version");
 * proxy.onFrame((conn, dir, text) => { if (dir === "client") ... });
 * proxy.cut();
 * ```
 */

import { createConnection, createServer, type Socket } from "node:net";

export type Direction = "client" | "server";
/** Called for each text frame as it passes; returning `"drop"` swallows it (it is still recorded). */
export type FrameListener = (conn: ProxyConnection, from: Direction, text: string) => void | "drop";

export interface ProxyConnection {
  /** 1, 2, … in the order they were accepted. */
  readonly id: number;
  /** The first line of the HTTP request, e.g. `GET /api/v1/ws?access_token=…&since_version=3 HTTP/1.1`. */
  requestLine: string;
  /** The request target as a URL (on `http://127.0.0.1`); null until the request line arrived. */
  url: URL | null;
  /** The status the server answered with (101 for a WebSocket); null until it did. */
  responseStatus: number | null;
  /** Text frames the client sent (unmasked), in order. */
  readonly clientFrames: string[];
  /** Text frames the server sent (and injected ones), in order. */
  readonly serverFrames: string[];
  /** Close codes seen, each way (a frame from the server that closes: `server`). */
  readonly closes: Array<{ from: Direction; code: number | null }>;
  /** Still connected. */
  readonly open: boolean;
  /** Sends a text frame to the client as if from the server. */
  inject(text: string): void;
  /** Destroys this connection (both sides). */
  cut(): void;
}

export interface Proxy {
  readonly port: number;
  /** `http://127.0.0.1:PORT`: give this to the client instead of the server's url. */
  readonly url: string;
  /** Every connection accepted, oldest first. */
  readonly connections: ProxyConnection[];
  /** The newest connection, if any. */
  last(): ProxyConnection | undefined;
  /** Connections still open. */
  openConnections(): ProxyConnection[];
  /**
   * Calls `listener` for each text frame, either way, as it passes (before it is forwarded);
   * returns an unsubscribe. A listener that returns `"drop"` swallows the frame.
   */
  onFrame(listener: FrameListener): () => void;
  /** Destroys every open connection now. */
  cut(): void;
  /** While true, new connections are destroyed as soon as they arrive. */
  refuse(on: boolean): void;
  close(): Promise<void>;
}

/** Reads WebSocket frames off a byte stream; forwards whole frames only. */
class FrameReader {
  #buf: Buffer = Buffer.alloc(0);
  #fragments: Buffer[] = [];
  #fragmentOpcode = 0;

  /**
   * Feeds bytes; returns the bytes of the whole frames now complete (to forward) and calls
   * `onText`/`onClose` for what they carry.
   */
  push(chunk: Buffer, onText: (text: string) => boolean, onClose: (code: number | null) => void, out: Buffer[] = []): Buffer {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    let start = 0;
    for (;;) {
      const frame = parseFrame(this.#buf, start);
      if (!frame) break;
      const { opcode, fin, payload, end } = frame;
      if (opcode === 0x1 || opcode === 0x2) {
        this.#fragmentOpcode = opcode;
        this.#fragments = [payload];
      } else if (opcode === 0x0) {
        this.#fragments.push(payload);
      } else if (opcode === 0x8) {
        onClose(payload.length >= 2 ? payload.readUInt16BE(0) : null);
      }
      let keep = true;
      if (fin && (opcode === 0x1 || opcode === 0x2 || opcode === 0x0)) {
        // (A dropped fragmented message would leave its first fragments forwarded: the
        // server and clients here send whole frames.)
        if (this.#fragmentOpcode === 0x1) keep = onText(Buffer.concat(this.#fragments).toString("utf8"));
        this.#fragments = [];
      }
      if (keep) out.push(this.#buf.subarray(start, end));
      start = end;
    }
    this.#buf = this.#buf.subarray(start);
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}

function parseFrame(buf: Buffer, at: number): { opcode: number; fin: boolean; payload: Buffer; end: number } | null {
  if (buf.length - at < 2) return null;
  const b0 = buf[at]!;
  const b1 = buf[at + 1]!;
  let len = b1 & 0x7f;
  let offset = at + 2;
  if (len === 126) {
    if (buf.length < offset + 2) return null;
    len = buf.readUInt16BE(offset);
    offset += 2;
  } else if (len === 127) {
    if (buf.length < offset + 8) return null;
    len = Number(buf.readBigUInt64BE(offset));
    offset += 8;
  }
  const masked = (b1 & 0x80) !== 0;
  let mask: Buffer | null = null;
  if (masked) {
    if (buf.length < offset + 4) return null;
    mask = buf.subarray(offset, offset + 4);
    offset += 4;
  }
  if (buf.length < offset + len) return null;
  let payload = buf.subarray(offset, offset + len);
  if (mask) {
    payload = Buffer.from(payload);
    for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
  }
  return { opcode: b0 & 0x0f, fin: (b0 & 0x80) !== 0, payload, end: offset + len };
}

/** An unmasked (server-to-client) text frame. */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text, "utf8");
  let header: Buffer;
  if (payload.length < 126) {
    header = Buffer.from([0x81, payload.length]);
  } else if (payload.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x81;
    header[1] = 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x81;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([header, payload]);
}

const HEADER_END = Buffer.from("\r\n\r\n");

/** Starts a proxy on a free port of 127.0.0.1 forwarding to `targetPort` there. */
export async function startProxy(targetPort: number): Promise<Proxy> {
  const connections: Conn[] = [];
  const listeners = new Set<FrameListener>();
  let refusing = false;
  let nextId = 1;

  class Conn implements ProxyConnection {
    readonly id = nextId++;
    requestLine = "";
    url: URL | null = null;
    responseStatus: number | null = null;
    readonly clientFrames: string[] = [];
    readonly serverFrames: string[] = [];
    readonly closes: Array<{ from: Direction; code: number | null }> = [];
    #open = true;
    readonly #client: Socket;
    readonly #upstream: Socket;
    /** While a chunk of server frames is read: what goes to the client, in order (`inject` adds to it). */
    #toClient: Buffer[] | null = null;

    constructor(client: Socket) {
      this.#client = client;
      this.#upstream = createConnection({ host: "127.0.0.1", port: targetPort });
      // Before the upgrade: HTTP (a head, and a plain request's body), passed through as it comes; after it, frames.
      let clientHead: Buffer | null = Buffer.alloc(0);
      let serverHead: Buffer | null = Buffer.alloc(0);
      const fromClient = new FrameReader();
      const fromServer = new FrameReader();
      let upgraded = false;

      client.on("data", (chunk: Buffer) => {
        if (clientHead) {
          clientHead = Buffer.concat([clientHead, chunk]);
          const end = clientHead.indexOf(HEADER_END);
          if (end < 0) {
            this.#upstream.write(chunk);
            return;
          }
          const head = clientHead.subarray(0, end).toString("latin1");
          this.requestLine = head.split("\r\n")[0] ?? "";
          const target = this.requestLine.split(" ")[1] ?? "/";
          this.url = new URL(target, "http://127.0.0.1");
          // Bytes of the head not yet forwarded go now; the rest (frames) below.
          const headBytes = chunk.length - (clientHead.length - (end + 4));
          this.#upstream.write(chunk.subarray(0, headBytes));
          const rest = clientHead.subarray(end + 4);
          clientHead = null;
          // A plain HTTP request's body (not frames): passed through as it comes.
          if (rest.length) this.#upstream.write(upgraded ? this.#readClient(fromClient, rest) : rest);
          return;
        }
        this.#upstream.write(upgraded ? this.#readClient(fromClient, chunk) : chunk);
      });
      this.#upstream.on("data", (chunk: Buffer) => {
        if (serverHead) {
          serverHead = Buffer.concat([serverHead, chunk]);
          const end = serverHead.indexOf(HEADER_END);
          if (end < 0) {
            client.write(chunk);
            return;
          }
          const head = serverHead.subarray(0, end).toString("latin1");
          this.responseStatus = Number(head.split(" ")[1]);
          upgraded = this.responseStatus === 101;
          const headBytes = chunk.length - (serverHead.length - (end + 4));
          client.write(chunk.subarray(0, headBytes));
          const rest = serverHead.subarray(end + 4);
          serverHead = null;
          if (rest.length) client.write(upgraded ? this.#readServer(fromServer, rest) : rest);
          return;
        }
        client.write(upgraded ? this.#readServer(fromServer, chunk) : chunk);
      });
      const end = () => this.cut();
      client.on("close", end);
      client.on("error", end);
      this.#upstream.on("close", end);
      this.#upstream.on("error", end);
    }

    #readClient(reader: FrameReader, bytes: Buffer): Buffer {
      return reader.push(
        bytes,
        (text) => {
          this.clientFrames.push(text);
          let keep = true;
          for (const l of [...listeners]) if (l(this, "client", text) === "drop") keep = false;
          return keep;
        },
        (code) => this.closes.push({ from: "client", code }),
      );
    }

    #readServer(reader: FrameReader, bytes: Buffer): Buffer {
      // A frame injected by a listener goes where the frame it was called for stands (before
      // it, or instead of it when dropped), after the frames of the chunk read before.
      const out: Buffer[] = [];
      this.#toClient = out;
      try {
        return this.#readServerInto(reader, bytes, out);
      } finally {
        this.#toClient = null;
      }
    }

    #readServerInto(reader: FrameReader, bytes: Buffer, out: Buffer[]): Buffer {
      return reader.push(
        bytes,
        (text) => {
          this.serverFrames.push(text);
          let keep = true;
          for (const l of [...listeners]) if (l(this, "server", text) === "drop") keep = false;
          return keep;
        },
        (code) => this.closes.push({ from: "server", code }),
        out,
      );
    }

    get open(): boolean {
      return this.#open;
    }

    inject(text: string): void {
      if (!this.#open) throw new Error(`proxy connection ${this.id} is closed`);
      this.serverFrames.push(text);
      if (this.#toClient) this.#toClient.push(textFrame(text));
      else this.#client.write(textFrame(text));
    }

    cut(): void {
      if (!this.#open) return;
      this.#open = false;
      this.#client.destroy();
      this.#upstream.destroy();
    }
  }

  const server = createServer((socket) => {
    if (refusing) {
      socket.destroy();
      return;
    }
    connections.push(new Conn(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    connections,
    last: () => connections[connections.length - 1],
    openConnections: () => connections.filter((c) => c.open),
    onFrame(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    cut() {
      for (const c of connections) c.cut();
    },
    refuse(on) {
      refusing = on;
    },
    close() {
      for (const c of connections) c.cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
