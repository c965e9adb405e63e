// Shared libraries in React against the real `librarian` binary: useLibrary() says the role,
// members and presence and counts receipts; useDeliveredTo(); useLibraries() for a switcher.
import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { afterAll, afterEach, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import WebSocket from "ws";
import { LibrariesApi, LibraryClient, type LibraryInfo, type Role } from "@librarian/client";
import { startServer, waitForState, type LibrarianServer } from "../../../testing/index.js";
import { LibraryProvider, useDeliveredTo, useLibraries, useLibrary, type UseLibrariesResult, type UseLibraryResult } from "../src/index.js";

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
  for (const c of clients.splice(0)) void c.close();
});

async function person(label: string): Promise<{ name: string; token: string; api: LibrariesApi }> {
  const name = `${label}-${process.pid}-${++users}`;
  const token = await server.token(name);
  return { name, token, api: new LibrariesApi({ url: server.url, getToken: () => token }) };
}

async function liveOn(token: string, library: string): Promise<LibraryClient> {
  const client = new LibraryClient({ url: server.url, getToken: () => token, library, WebSocket: WebSocket as never });
  clients.push(client);
  await waitForState(client, (s) => s.status.state === "live", "live on the shared library");
  return client;
}

describe("useLibrary on a shared library", () => {
  it("shows the role, members and presence, and 'on k of n' after a save", async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const team = await alice.api.create("Team");
    await alice.api.setMember(team.id, bob.name, "editor");
    const a = await liveOn(alice.token, team.id);
    const b = await liveOn(bob.token, team.id);

    let result!: UseLibraryResult;
    function Collab() {
      result = useLibrary();
      const { role, members, presence, lastWriteVersion, deliveredTo } = result;
      const receipt = lastWriteVersion === null ? null : deliveredTo(lastWriteVersion);
      return (
        <div>
          <span data-testid="role">{role}</span>
          <span data-testid="members">{members.map((m) => `${m.user_id}:${m.role}`).join(",")}</span>
          <span data-testid="here">{presence.length}</span>
          <span data-testid="receipt">{receipt ? `on ${receipt.held} of ${receipt.total}` : "-"}</span>
        </div>
      );
    }
    function Receipt({ version }: { version: number | null }) {
      const receipt = useDeliveredTo(version);
      return <span data-testid="hook-receipt">{receipt ? `${receipt.held}/${receipt.total}` : "none"}</span>;
    }
    const view = render(
      <LibraryProvider client={a}>
        <Collab />
        <Receipt version={null} />
      </LibraryProvider>,
    );
    expect(screen.getByTestId("role").textContent).toBe("owner");
    expect(screen.getByTestId("members").textContent).toBe(
      [`${alice.name}:owner`, `${bob.name}:editor`].sort().join(","),
    );
    expect(screen.getByTestId("hook-receipt").textContent).toBe("none");
    await waitFor(() => expect(screen.getByTestId("here").textContent).toBe("2"), { timeout: 20_000 });

    await act(async () => {
      await result.createContextBlock({ title: "Delivered" });
    });
    const v = result.lastWriteVersion!;
    expect(v).toBe(a.getState().version);
    await waitFor(() => expect(screen.getByTestId("receipt").textContent).toBe("on 2 of 2"), { timeout: 20_000 });
    view.rerender(
      <LibraryProvider client={a}>
        <Collab />
        <Receipt version={v} />
      </LibraryProvider>,
    );
    expect(screen.getByTestId("hook-receipt").textContent).toBe("2/2");
    expect(b.getState().contextBlocks.map((x) => x.title)).toContain("Delivered");

    // A member change through the hook's action: shown once it resolves.
    await act(async () => {
      await result.setMember(bob.name, "viewer");
    });
    expect(screen.getByTestId("members").textContent).toContain(`${bob.name}:viewer`);
    await waitForState(b, (s) => s.role === "viewer", "bob is a viewer now");
  });

  it("types: role, members, presence, deliveredTo", () => {
    const typed = () => {
      const r = useLibrary();
      expectTypeOf(r.role).toEqualTypeOf<Role | null>();
      expectTypeOf(r.deliveredTo(1)).toEqualTypeOf<{ held: number; total: number }>();
      expectTypeOf(r.presence[0]!.seen_version).toEqualTypeOf<number | null>();
      expectTypeOf(useDeliveredTo(3)).toEqualTypeOf<{ held: number; total: number } | null>();
      expectTypeOf(useLibraries().libraries).toEqualTypeOf<LibraryInfo[]>();
    };
    expect(typeof typed).toBe("function");
  });
});

describe("useLibraries", () => {
  it("lists the caller's libraries outside a provider, creates one, and shows one shared meanwhile", async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    let result!: UseLibrariesResult;
    function Switcher() {
      result = useLibraries({ url: server.url, getToken: () => bob.token, pollIntervalMs: 200 });
      if (result.isLoading) return <p>loading</p>;
      return (
        <ul>
          {result.libraries.map((l) => (
            <li key={l.id} data-testid="library" data-role={l.role}>
              {l.name}
            </li>
          ))}
        </ul>
      );
    }
    render(<Switcher />);
    await waitFor(() => expect(screen.getAllByTestId("library")).toHaveLength(1), { timeout: 20_000 });
    expect(screen.getAllByTestId("library")[0]!.dataset.role).toBe("owner");

    await act(async () => {
      await result.createLibrary("Bob's notes");
    });
    expect(screen.getByText("Bob's notes")).toBeTruthy();

    const team = await alice.api.create("Alice's team");
    await alice.api.setMember(team.id, bob.name, "viewer");
    await screen.findByText("Alice's team", undefined, { timeout: 20_000 });
    expect(result.libraries.find((l) => l.id === team.id)?.role).toBe("viewer");
  });

  it("inside a provider it uses the provider's client", async () => {
    const alice = await person("alice");
    const team = await alice.api.create("Inside");
    const a = await liveOn(alice.token, team.id);
    function Names() {
      const { libraries } = useLibraries();
      return <p data-testid="names">{libraries.map((l) => l.name).join("|")}</p>;
    }
    render(
      <LibraryProvider client={a}>
        <Names />
      </LibraryProvider>,
    );
    await waitFor(() => expect(screen.getByTestId("names").textContent).toContain("Inside"), { timeout: 20_000 });
  });
});
