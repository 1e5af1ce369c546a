import { QueryClientProvider } from "@tanstack/react-query";
import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createQueryClient } from "./api/session";
import { FakeSocket } from "./live/FakeSocket";
import { SESSION_REVOKED } from "./live/useLiveSocket";
import { Root } from "./Root";
import { ada, fakeApi, reply } from "./test-api";

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
  afterEach(() => vi.unstubAllGlobals());

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
});
