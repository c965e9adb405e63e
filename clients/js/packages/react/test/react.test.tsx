// The React bindings against the real `librarian` binary (started on port 0 by the shared
// harness): no mock server, the client is the real @librarian/client with `ws` as its WebSocket.
import { StrictMode, type ReactNode } from "react";
import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { afterAll, afterEach, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import WebSocket from "ws";
import { LibraryClient, LibraryError, type LibraryState } from "@librarian/client";
import { startServer, until, waitForState, type LibrarianServer } from "../../../testing/index.js";
import {
  LibraryProvider,
  sameRows,
  shallowEqual,
  useLibrary,
  useLibraryClient,
  useLibrarySelector,
  type UseLibraryResult,
} from "../src/index.js";

let server: LibrarianServer;
let users = 0;
const clients: LibraryClient[] = [];

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => {
  cleanup();
  for (const c of clients.splice(0)) c.close();
});

/** A fresh user and a live client of theirs. */
async function newClient(): Promise<{ client: LibraryClient; user: string; token: string }> {
  const user = `react-${process.pid}-${++users}`;
  const token = await server.token(user);
  const client = new LibraryClient({ url: server.url, getToken: () => token, WebSocket: WebSocket as never });
  clients.push(client);
  await waitForState(client, (s) => s.status.state === "live" && !s.isLoading, `${user} live`);
  return { client, user, token };
}

/** A write through the REST API, as another device of the same user would make it. */
async function restCreateBlock(token: string, title: string): Promise<void> {
  const answer = await server.request("POST", "/api/v1/context-blocks", {
    token,
    body: { title, content: "from REST", tags: ["rest"] },
  });
  expect(answer.status).toBe(201);
}

/** Until the server counts `n` open WebSocket sessions (`librarian_sessions_open`). */
async function untilSessions(n: number): Promise<void> {
  await until(async () => (await server.sessionsOpen()) === n, `${n} open sessions`);
}

function withClient(client: LibraryClient) {
  return ({ children }: { children: ReactNode }) => <LibraryProvider client={client}>{children}</LibraryProvider>;
}

describe("useLibrary", () => {
  it("shows the library and converges after a write", async () => {
    const { client, token } = await newClient();
    await client.createContextBlock({ title: "Before", content: "", tags: [] });

    function Titles() {
      const { contextBlocks, status } = useLibrary();
      return (
        <div>
          <span data-testid="state">{status.state}</span>
          <ul>
            {contextBlocks.map((b) => (
              <li key={b.id}>{b.title}</li>
            ))}
          </ul>
        </div>
      );
    }
    render(<Titles />, { wrapper: withClient(client) });
    expect(screen.getByText("Before")).toBeTruthy();
    expect(screen.getByTestId("state").textContent).toBe("live");

    // Another device writes; this one converges on its snapshot.
    await restCreateBlock(token, "From elsewhere");
    await screen.findByText("From elsewhere", undefined, { timeout: 20_000 });

    // And its own action: shown once it resolved (acknowledged and in a snapshot), not before.
    let result!: UseLibraryResult;
    function Grab() {
      result = useLibrary();
      return null;
    }
    render(<Grab />, { wrapper: withClient(client) });
    await act(async () => {
      const saved = await result.createContextBlock({ title: "Mine", content: "", tags: ["x"] });
      expect(saved.title).toBe("Mine");
    });
    expect(screen.getByText("Mine")).toBeTruthy();
    expect(result.contextBlocks.map((b) => b.title)).toEqual(expect.arrayContaining(["Before", "From elsewhere", "Mine"]));
  });

  it("hands out the same action functions on every render", async () => {
    const { client } = await newClient();
    const seen: UseLibraryResult[] = [];
    function Spy() {
      seen.push(useLibrary());
      return null;
    }
    render(<Spy />, { wrapper: withClient(client) });
    await act(async () => {
      await client.createProject({ name: "P" });
    });
    expect(seen.length).toBeGreaterThan(1);
    const [first, last] = [seen[0]!, seen[seen.length - 1]!];
    expect(last.projects.map((p) => p.name)).toEqual(["P"]);
    expect(last.createProject).toBe(first.createProject);
    expect(last.saveTemporaryBlock).toBe(first.saveTemporaryBlock);
  });

  it("rejects an action with the server's field errors", async () => {
    const { client } = await newClient();
    let result!: UseLibraryResult;
    function Grab() {
      result = useLibrary();
      return null;
    }
    render(<Grab />, { wrapper: withClient(client) });

    let caught: unknown;
    await act(async () => {
      caught = await result.createContextBlock({ title: "", content: "", tags: [] }).then(
        () => null,
        (e: unknown) => e,
      );
    });
    expect(caught).toBeInstanceOf(LibraryError);
    const error = caught as LibraryError;
    expect(error.status).toBe(422);
    expect(error.problem.status).toBe(422);
    expect(error.fieldErrors).toEqual(expect.arrayContaining([expect.objectContaining({ field: "title" })]));
    // Nothing was shown or written.
    expect(result.contextBlocks).toEqual([]);

    // A saved prompt pointing at a block that does not exist names `context_block_ids`.
    await act(async () => {
      caught = await result
        .createSavedPrompt({ title: "P", context_block_ids: ["00000000-0000-7000-8000-000000000000"] })
        .then(
          () => null,
          (e: unknown) => e,
        );
    });
    expect((caught as LibraryError).fieldErrors.map((f) => f.field.split(/[.[]/)[0])).toContain("context_block_ids");
  });
});

describe("useLibrarySelector", () => {
  it("re-renders a component only when its slice changes", async () => {
    const { client } = await newClient();
    await client.createProject({ name: "Alpha" });
    await client.createSavedPrompt({ title: "Greeting" });
    const renders = { projects: 0, projectCount: 0, names: 0, blocks: 0, prompts: 0 };

    function Projects() {
      renders.projects++;
      const projects = useLibrarySelector((s) => s.projects, sameRows);
      return <p data-testid="projects">{projects.map((p) => p.name).join(",")}</p>;
    }
    function ProjectCount() {
      renders.projectCount++;
      const n = useLibrarySelector((s) => s.projects.length);
      return <p data-testid="count">{n}</p>;
    }
    function Names() {
      renders.names++;
      // A new array on every call: equal by shallowEqual.
      const names = useLibrarySelector((s) => s.projects.map((p) => p.name), shallowEqual);
      return <p>{names.join(",")}</p>;
    }
    function Prompts() {
      renders.prompts++;
      // The client keeps unchanged rows and lists as they were: plain Object.is is enough.
      const prompts = useLibrarySelector((s) => s.savedPrompts);
      return <p>{prompts.map((p) => p.title).join(",")}</p>;
    }
    function Blocks() {
      renders.blocks++;
      const titles = useLibrarySelector((s) => s.contextBlocks.map((b) => b.title), shallowEqual);
      return <p data-testid="blocks">{titles.join(",")}</p>;
    }
    render(
      <LibraryProvider client={client}>
        <Projects />
        <ProjectCount />
        <Names />
        <Prompts />
        <Blocks />
      </LibraryProvider>,
    );
    const before = { ...renders };

    // Three writes to another slice (blocks): each one a new state, a new snapshot version.
    const versionBefore = client.getState().version;
    for (const title of ["one", "two", "three"]) {
      await act(async () => {
        await client.createContextBlock({ title, content: "", tags: [] });
      });
    }
    expect(client.getState().version).toBeGreaterThan(versionBefore ?? 0);
    expect(screen.getByTestId("blocks").textContent).toBe("one,two,three");
    expect(renders.blocks).toBeGreaterThan(before.blocks);
    expect(renders.projects).toBe(before.projects);
    expect(renders.projectCount).toBe(before.projectCount);
    expect(renders.names).toBe(before.names);
    expect(renders.prompts).toBe(before.prompts);

    // Their own slice does re-render them.
    await act(async () => {
      await client.createProject({ name: "Beta" });
    });
    expect(screen.getByTestId("projects").textContent).toBe("Alpha,Beta");
    expect(screen.getByTestId("count").textContent).toBe("2");
    expect(renders.projects).toBeGreaterThan(before.projects);
    expect(renders.names).toBeGreaterThan(before.names);
  });

  it("infers the selector's type", () => {
    // Compile-time checks (the test typecheck runs them); nothing is rendered.
    const typed = () => {
      const n = useLibrarySelector((s) => s.projects.length);
      const titles = useLibrarySelector((s) => s.contextBlocks.map((b) => b.title), shallowEqual);
      const status = useLibrarySelector((s) => s.status);
      expectTypeOf(n).toEqualTypeOf<number>();
      expectTypeOf(titles).toEqualTypeOf<string[]>();
      expectTypeOf(status).toEqualTypeOf<LibraryState["status"]>();
      expectTypeOf(useLibraryClient()).toEqualTypeOf<LibraryClient>();
    };
    expect(typeof typed).toBe("function");
  });
});

describe("LibraryProvider with options", () => {
  it("makes one client under StrictMode and closes it on unmount", async () => {
    await untilSessions(0);
    const user = `react-${process.pid}-own`;
    const token = await server.token(user);
    const made: LibraryClient[] = [];
    let sockets = 0;
    class CountingWebSocket extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        sockets++;
      }
    }

    function Own() {
      const client = useLibraryClient();
      if (!made.includes(client)) made.push(client);
      const { status, projects } = useLibrary();
      return (
        <p data-testid="own">
          {status.state}:{projects.length}
        </p>
      );
    }
    // Inline options and a new getToken on every render, as apps write them.
    function App({ n }: { n: number }) {
      return (
        <StrictMode>
          <LibraryProvider
            options={{ url: server.url, getToken: () => token, WebSocket: CountingWebSocket as never, patches: true, verify: { syncMaxBytes: 1 << 20 } }}
          >
            <Own />
            <span>{n}</span>
          </LibraryProvider>
        </StrictMode>
      );
    }
    const view = render(<App n={1} />);
    await waitFor(() => expect(screen.getByTestId("own").textContent).toBe("live:0"), { timeout: 20_000 });
    expect(made).toHaveLength(1);
    expect(sockets).toBe(1); // StrictMode's remount did not reconnect
    await untilSessions(1);

    // A re-render with equal options keeps the client.
    view.rerender(<App n={2} />);
    await screen.findByText("2");
    expect(made).toHaveLength(1);
    expect(sockets).toBe(1);

    view.unmount();
    await untilSessions(0);
  });

  it("throws a clear error outside a provider", () => {
    function Lonely() {
      useLibrary();
      return null;
    }
    const spy = console.error;
    console.error = () => {};
    try {
      expect(() => render(<Lonely />)).toThrow(/LibraryProvider/);
    } finally {
      console.error = spy;
    }
  });
});
