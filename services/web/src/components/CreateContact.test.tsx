import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CreateContact } from "./CreateContact";

const ada = {
  id: 7,
  first_name: "Ada",
  last_name: "Lovelace",
  email: "ada@example.com",
  phone: "+44 20 7946 0958",
  version: 1,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};

const json = (status: number, body: unknown, type = "application/json") =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": type } });

function renderForm() {
  const client = new QueryClient();
  render(
    <QueryClientProvider client={client}>
      <CreateContact onClose={() => {}} />
    </QueryClientProvider>,
  );
  for (const [label, value] of [
    ["First name", ada.first_name],
    ["Last name", ada.last_name],
    ["Email", ada.email],
    ["Phone", ada.phone],
  ] as const) {
    fireEvent.change(screen.getByLabelText(label), { target: { value } });
  }
  fireEvent.click(screen.getByRole("button", { name: "Save" }));
}

const sentKey = (call: unknown[]) => new Headers((call[1] as RequestInit).headers).get("Idempotency-Key");

describe("CreateContact", () => {
  const fetch = vi.fn<typeof globalThis.fetch>();
  beforeEach(() => vi.stubGlobal("fetch", fetch));
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
    fetch.mockReset();
  });

  it("shows the server's field errors next to their inputs and focuses the first", async () => {
    fetch.mockResolvedValue(
      json(
        409,
        {
          type: "about:blank",
          title: "Conflict",
          status: 409,
          detail: "A contact with this email exists.",
          errors: [{ field: "email", message: "is already used by another contact" }],
        },
        "application/problem+json",
      ),
    );
    renderForm();

    const email = screen.getByLabelText("Email");
    expect(await screen.findByText("is already used by another contact")).toBeVisible();
    expect(email).toHaveAttribute("aria-invalid", "true");
    expect(email).toHaveAccessibleDescription("is already used by another contact");
    expect(email).toHaveFocus();
    expect(screen.getByLabelText("First name")).not.toHaveAttribute("aria-invalid");
  });

  it("shows the wait honestly while the deferred 201 is pending, then confirms", async () => {
    vi.useFakeTimers();
    let reply!: (response: Response) => void;
    fetch.mockReturnValue(new Promise<Response>((resolve) => (reply = resolve)));
    renderForm();

    await act(() => vi.advanceTimersByTimeAsync(3_000));
    const status = screen.getByTestId("create-status");
    expect(status).toHaveTextContent("Saving… 3 s");
    expect(status).toHaveTextContent("about 20 seconds");
    expect(screen.getByLabelText("Email")).toHaveAttribute("readonly");
    expect(screen.getByRole("button", { name: "Save" })).toBeDisabled();

    await act(() => vi.advanceTimersByTimeAsync(17_000));
    expect(status).toHaveTextContent("Saving… 20 s");

    const [url, init] = fetch.mock.calls[0]!;
    expect(url).toBe("/api/contacts");
    expect(init?.method).toBe("POST");
    expect(JSON.parse(init?.body as string)).toEqual({
      first_name: "Ada",
      last_name: "Lovelace",
      email: "ada@example.com",
      phone: "+44 20 7946 0958",
    });
    expect(sentKey(fetch.mock.calls[0]!)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

    await act(async () => reply(json(201, ada)));
    expect(status).toHaveTextContent("Created Ada Lovelace (ada@example.com).");
    expect(status).not.toHaveTextContent("Saving");
    expect(screen.getByLabelText("Email")).toHaveValue("");
  });

  it("retries a request lost on the network with the same Idempotency-Key", async () => {
    vi.useFakeTimers();
    fetch.mockRejectedValueOnce(new TypeError("Failed to fetch")).mockResolvedValueOnce(json(201, ada));
    renderForm();

    await act(() => vi.advanceTimersByTimeAsync(5_000));

    expect(fetch).toHaveBeenCalledTimes(2);
    expect(sentKey(fetch.mock.calls[1]!)).toBe(sentKey(fetch.mock.calls[0]!));
    expect(screen.getByTestId("create-status")).toHaveTextContent("Created Ada Lovelace");
  });
});
