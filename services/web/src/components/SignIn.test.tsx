import { QueryClientProvider } from "@tanstack/react-query";
import { act, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createQueryClient } from "../api/session";
import { fakeApi, reply } from "../test-api";
import { SignIn } from "./SignIn";

function signIn(username = "ada", password = "correct horse battery") {
  render(
    <QueryClientProvider client={createQueryClient()}>
      <SignIn />
    </QueryClientProvider>,
  );
  fireEvent.change(screen.getByLabelText("Username"), { target: { value: username } });
  fireEvent.change(screen.getByLabelText("Password"), { target: { value: password } });
  fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
}

describe("SignIn", () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it("sends the username and password, and says plainly when they are wrong", async () => {
    const fetch = fakeApi({
      "POST /api/session": () => reply(401, { title: "Unauthorized", status: 401, detail: "wrong username or password" }),
    });
    signIn(" ada ", "not the password");

    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Wrong username or password.");
    expect(JSON.parse(fetch.mock.calls[0]![1]!.body as string)).toEqual({ username: "ada", password: "not the password" });
    expect(screen.getByLabelText("Password")).toHaveAttribute("aria-invalid", "true");
    expect(screen.getByLabelText("Password")).toHaveAccessibleDescription("Wrong username or password.");
    expect(screen.getByRole("button", { name: "Sign in" })).toBeEnabled();
  });

  it("after too many attempts counts down the wait the server asked for, the button waiting too", async () => {
    vi.useFakeTimers();
    fakeApi({
      "POST /api/session": () => reply(429, { title: "Too Many Requests", status: 429 }, { "Retry-After": "3" }),
    });
    signIn();
    await act(() => vi.advanceTimersByTimeAsync(0));

    const button = screen.getByRole("button", { name: "Sign in" });
    expect(screen.getByRole("alert")).toHaveTextContent("Too many attempts. Try again in 3 seconds.");
    expect(button).toBeDisabled();

    await act(() => vi.advanceTimersByTimeAsync(2_000));
    expect(screen.getByRole("alert")).toHaveTextContent("Try again in 1 second.");
    expect(button).toBeDisabled();

    await act(() => vi.advanceTimersByTimeAsync(1_000));
    expect(screen.getByRole("alert")).toHaveTextContent("You can try again now.");
    expect(button).toBeEnabled();
  });
});
