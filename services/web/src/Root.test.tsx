import { QueryClientProvider } from "@tanstack/react-query";
import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createQueryClient } from "./api/session";
import { FakeSocket } from "./live/FakeSocket";
import { SESSION_REVOKED } from "./live/useLiveSocket";
import { Root } from "./Root";
import { ada, fakeApi, grace, reply } from "./test-api";

const unauthorized = () => reply(401, { title: "Unauthorized", status: 401 });

function renderRoot() {
  render(
    <QueryClientProvider client={createQueryClient()}>
      <Root />
    </QueryClientProvider>,
  );
}

async function signInAs(password = "correct horse battery") {
  fireEvent.change(screen.getByLabelText("Username"), { target: { value: "ada" } });
  fireEvent.change(screen.getByLabelText("Password"), { target: { value: password } });
  fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
  await waitFor(() => expect(screen.queryByLabelText("Password")).toBeNull());
}

describe("Root", () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.stubGlobal("WebSocket", FakeSocket);
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
  });

  it("asks to sign in first, then shows who is signed in", async () => {
    const session = { user: null as typeof ada | null };
    fakeApi({
      "GET /api/session": () => (session.user ? reply(200, { user: session.user }) : unauthorized()),
      "POST /api/session": () => ((session.user = ada), reply(200, { user: ada, access_token: "t" })),
      "GET /api/contacts": () => reply(200, { items: [], next_cursor: null }),
    });
    renderRoot();

    expect(await screen.findByRole("heading", { name: "Contacts — sign in" })).toBeVisible();
    expect(FakeSocket.all).toHaveLength(0); // nothing live before anyone is signed in
    await signInAs();

    expect(screen.getByTestId("signed-in-as")).toHaveTextContent("Signed in as Ada Lovelace");
    expect(screen.getByRole("button", { name: "Sign out" })).toBeVisible();
    expect(await screen.findByText("No contacts yet.")).toBeVisible();
    expect(FakeSocket.all).toHaveLength(1);
  });

  it("on a 401 shows sign-in over the app, and after it the app is where it was", async () => {
    const state = { signedIn: true };
    fakeApi({
      "GET /api/session": () => reply(200, { user: ada }),
      "POST /api/session": () => ((state.signedIn = true), reply(200, { user: ada })),
      "GET /api/contacts": () =>
        state.signedIn ? reply(200, { items: [], next_cursor: null }) : unauthorized(),
    });
    renderRoot();
    await screen.findByText("No contacts yet.");

    state.signedIn = false; // the session ends on the server
    fireEvent.change(screen.getByLabelText("Search"), { target: { value: "grace" } });

    const dialog = await screen.findByRole("dialog", { name: "Sign in again" });
    expect(within(dialog).getByLabelText("Username")).toHaveValue("ada");
    expect(within(dialog).getByLabelText("Password")).toHaveFocus();
    expect(screen.getByLabelText("Search").closest("[inert]")).not.toBeNull(); // the app waits beneath
    await signInAs();

    expect(screen.queryByRole("dialog")).toBeNull();
    expect(screen.getByLabelText("Search")).toHaveValue("grace");
    expect(await screen.findByText("No contacts match “grace”.")).toBeVisible(); // the refused read, again
  });

  it("when the live connection's session is revoked, asks to sign in, then resumes the stream", async () => {
    fakeApi({
      "GET /api/session": () => reply(200, { user: ada }),
      "POST /api/session": () => reply(200, { user: ada }),
      "GET /api/contacts": () => reply(200, { items: [], next_cursor: null }),
    });
    renderRoot();
    await screen.findByText("No contacts yet.");
    FakeSocket.all[0]!.accept("epoch-1", 5);

    FakeSocket.all[0]!.drop(SESSION_REVOKED);

    expect(await screen.findByRole("dialog", { name: "Sign in again" })).toBeVisible();
    expect(screen.getByTestId("connection-status")).toHaveAttribute("data-status", "signed-out");
    expect(FakeSocket.all).toHaveLength(1);
    await signInAs();
    await act(async () => {});
    expect(FakeSocket.all).toHaveLength(2);
    FakeSocket.all[1]!.accept("epoch-1", 9);
    expect(FakeSocket.all[1]!.sent[0]).toEqual({ type: "resume", epoch: "epoch-1", after: 5 });
  });

  it("tells the notifier which contact is open and when it is being edited, and shows who else is there", async () => {
    // jsdom lays nothing out: give the virtualised list a height, so that it renders its rows.
    vi.spyOn(HTMLElement.prototype, "clientHeight", "get").mockReturnValue(800);
    vi.spyOn(HTMLElement.prototype, "clientWidth", "get").mockReturnValue(800);
    fakeApi({
      "GET /api/session": () => reply(200, { user: ada }),
      "GET /api/contacts": () => reply(200, { items: [grace], next_cursor: null }),
      "GET /api/contacts/7": () => reply(200, grace),
    });
    renderRoot();
    const row = await screen.findByRole("button", { name: /Grace Hopper/ });
    const socket = FakeSocket.all[0]!;
    socket.accept("epoch-1", 1);
    socket.receive({
      type: "presence",
      contact_id: 7,
      users: [
        { id: ada.id, name: ada.name, state: "viewing" }, // this user, in another tab: not shown
        { id: 9, name: "Linus Torvalds", state: "editing" },
      ],
    });
    expect(within(row).getByTitle("Linus Torvalds is editing")).toHaveTextContent("LT");
    expect(within(row).queryByTitle(/Ada Lovelace/)).toBeNull();
    expect(row).toHaveAccessibleName(/Linus Torvalds is editing/);

    fireEvent.click(row);
    expect(await screen.findByText("Linus Torvalds is editing this contact.")).toBeVisible();
    expect(socket.sent).toEqual([{ type: "presence", contact_id: 7, state: "viewing" }]);
    fireEvent.change(await screen.findByLabelText("Phone"), { target: { value: "+1 202 555 0199" } });
    expect(socket.sent.at(-1)).toEqual({ type: "presence", contact_id: 7, state: "editing" });
    fireEvent.click(screen.getByRole("button", { name: "Close panel" }));
    expect(socket.sent.at(-1)).toEqual({ type: "presence", contact_id: 7, state: null });
  });
});
