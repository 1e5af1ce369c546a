import { QueryClientProvider } from "@tanstack/react-query";
import { fireEvent, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createQueryClient } from "../api/session";
import type { User } from "../api/types";
import { ada, fakeApi, reply } from "../test-api";
import { UsersPage } from "./UsersPage";

const bob: User = { id: 2, username: "bob", name: "Bob Kahn", role: "viewer", disabled: false };

function renderPage() {
  const users = new Map<number, User>([
    [ada.id, ada],
    [bob.id, bob],
  ]);
  const fetch = fakeApi({
    "GET /api/users": () => reply(200, { items: [...users.values()] }),
    "POST /api/users": (init) => {
      const { password: _, ...fields } = JSON.parse(init.body as string);
      const user = { ...fields, id: 3, disabled: false };
      users.set(user.id, user);
      return reply(201, user);
    },
    "PATCH /api/users/2": (init) => {
      const user = { ...users.get(2)!, ...JSON.parse(init.body as string) };
      users.set(2, user);
      return reply(200, user);
    },
  });
  render(
    <QueryClientProvider client={createQueryClient()}>
      <UsersPage me={ada} />
    </QueryClientProvider>,
  );
  return fetch;
}

const sent = (fetch: ReturnType<typeof fakeApi>, method: string) =>
  fetch.mock.calls.filter(([, init]) => init?.method === method).map(([url, init]) => [url, JSON.parse(init!.body as string)]);

describe("UsersPage", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("lists the users; an admin cannot demote or disable themself", async () => {
    renderPage();
    const rows = await screen.findAllByTestId("user-row");
    expect(rows.map((row) => row.textContent)).toEqual([expect.stringContaining("Ada Lovelace (you)"), expect.stringContaining("Bob Kahn")]);
    expect(within(rows[0]!).getByLabelText("Role of Ada Lovelace")).toBeDisabled();
    expect(within(rows[0]!).getByRole("button", { name: "Disable" })).toBeDisabled();
  });

  it("changes a role and disables a user, and says so", async () => {
    const fetch = renderPage();
    fireEvent.change(await screen.findByLabelText("Role of Bob Kahn"), { target: { value: "editor" } });
    expect(await screen.findByTestId("users-status")).toHaveTextContent("Bob Kahn is now editor.");

    const disable = screen.getByRole("button", { name: "Disable", description: /Bob Kahn/ });
    fireEvent.click(disable);
    expect(await screen.findByText("Bob Kahn is disabled and signed out.")).toBeVisible();
    expect(screen.getByRole("button", { name: "Enable", description: /Bob Kahn/ })).toBeVisible();
    expect(sent(fetch, "PATCH")).toEqual([
      ["/api/users/2", { role: "editor" }],
      ["/api/users/2", { disabled: true }],
    ]);
  });

  it("adds a user with the role chosen", async () => {
    const fetch = renderPage();
    await screen.findAllByTestId("user-row");
    const form = screen.getByRole("form", { name: "Add a user" });
    fireEvent.change(within(form).getByLabelText("Username"), { target: { value: "grace" } });
    fireEvent.change(within(form).getByLabelText("Full name"), { target: { value: "Grace Hopper" } });
    fireEvent.change(within(form).getByLabelText(/^Password/), { target: { value: "a long enough password" } });
    fireEvent.change(within(form).getByLabelText("Role"), { target: { value: "admin" } });
    fireEvent.click(within(form).getByRole("button", { name: "Add user" }));

    expect(await screen.findByText("Added Grace Hopper (grace), admin.")).toBeVisible();
    expect(screen.getAllByTestId("user-row")).toHaveLength(3);
    expect(within(form).getByLabelText("Username")).toHaveValue("");
    expect(sent(fetch, "POST")).toEqual([
      ["/api/users", { username: "grace", name: "Grace Hopper", password: "a long enough password", role: "admin" }],
    ]);
  });
});
