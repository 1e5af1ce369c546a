import { act, renderHook } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ContactEvent } from "../api/types";
import { FakeSocket } from "./FakeSocket";
import { SESSION_REVOKED, TOKEN_EXPIRED, backoffDelay, useLiveSocket } from "./useLiveSocket";

const event = (seq: number, version = 1): ContactEvent => ({
  type: "contact.updated",
  seq,
  event_id: `e${seq}`,
  contact_id: 42,
  version,
  contact: null,
  changed_fields: ["phone"],
  source: "console",
  at: "2026-01-01T00:00:00Z",
});

function setup(session?: { checkSession: () => Promise<boolean> }) {
  const onEvent = vi.fn();
  const onResync = vi.fn();
  const onSignedOut = vi.fn();
  const hook = renderHook(
    ({ signedIn }) =>
      useLiveSocket({
        url: "ws://test/ws",
        connect: (url) => new FakeSocket(url),
        random: () => 1,
        onEvent,
        onResync,
        onSignedOut,
        signedIn,
        ...session,
      }),
    { initialProps: { signedIn: true } },
  );
  const latest = () => FakeSocket.all.at(-1)!;
  return { onEvent, onResync, onSignedOut, hook, latest };
}

/** Lets the reconnect backoff run out. */
const waitForReconnect = () => act(() => vi.advanceTimersByTime(30_000));

describe("useLiveSocket", () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it("goes live on hello and hands over events once each, in seq order", () => {
    const { onEvent, hook, latest } = setup();
    expect(hook.result.current).toBe("connecting");

    latest().accept("epoch-1", 10);
    expect(hook.result.current).toBe("live");
    expect(latest().sent).toEqual([]); // first connection: nothing to resume

    latest().receive(event(11));
    latest().receive(event(11)); // duplicate
    latest().receive(event(9)); // older than the hello position
    latest().receive(event(12));

    expect(onEvent.mock.calls.map(([e]) => e.seq)).toEqual([11, 12]);
  });

  it("reconnects with backoff and resumes after the last seq seen, first thing", () => {
    const { onEvent, onResync, hook, latest } = setup();
    latest().accept("epoch-1", 10);
    latest().receive(event(11));

    latest().drop();
    expect(hook.result.current).toBe("reconnecting");
    expect(FakeSocket.all).toHaveLength(1);

    waitForReconnect();
    expect(FakeSocket.all).toHaveLength(2);
    latest().accept("epoch-1", 15);

    expect(latest().sent[0]).toEqual({ type: "resume", epoch: "epoch-1", after: 11 });
    expect(hook.result.current).toBe("live");

    // Missed events are replayed after the hello, and applied.
    latest().receive(event(12));
    latest().receive(event(15));
    expect(onEvent.mock.calls.map(([e]) => e.seq)).toEqual([11, 12, 15]);
    expect(onResync).not.toHaveBeenCalled();
  });

  it("reloads when the server answers resync", () => {
    const { onResync, latest } = setup();
    latest().accept("epoch-1", 10);
    latest().drop();
    waitForReconnect();
    latest().accept("epoch-1", 500);

    latest().receive({ type: "resync" });

    expect(onResync).toHaveBeenCalledTimes(1);
  });

  it("reloads when the stream's epoch changed, then counts in the new epoch", () => {
    const { onEvent, onResync, latest } = setup();
    latest().accept("epoch-1", 100);
    latest().drop();
    waitForReconnect();

    latest().accept("epoch-2", 3);
    expect(onResync).toHaveBeenCalledTimes(1);

    latest().receive(event(4));
    expect(onEvent).toHaveBeenCalledWith(expect.objectContaining({ seq: 4 }));

    latest().drop();
    waitForReconnect();
    latest().accept("epoch-2", 4);
    expect(latest().sent[0]).toEqual({ type: "resume", epoch: "epoch-2", after: 4 });
  });

  it("calls itself offline after repeated failures, and keeps trying", () => {
    const { hook, latest } = setup();
    for (let i = 0; i < 4; i++) {
      latest().drop();
      waitForReconnect();
    }
    expect(hook.result.current).toBe("offline");
    expect(FakeSocket.all).toHaveLength(5);

    latest().accept("epoch-1", 1);
    expect(hook.result.current).toBe("live");
  });

  it("closes the socket and stops reconnecting on unmount", () => {
    const { hook, latest } = setup();
    const socket = latest();
    hook.unmount();
    expect(socket.closed).toBe(true);
    socket.drop();
    waitForReconnect();
    expect(FakeSocket.all).toHaveLength(1);
  });
});

describe("useLiveSocket and the session", () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it("on 4001 (token expired) checks the session, reconnects at once and resumes", async () => {
    const checkSession = vi.fn(() => Promise.resolve(true));
    const { onEvent, onSignedOut, hook, latest } = setup({ checkSession });
    latest().accept("epoch-1", 10);
    latest().receive(event(11));

    await act(async () => latest().drop(TOKEN_EXPIRED));

    expect(checkSession).toHaveBeenCalledTimes(1);
    expect(FakeSocket.all).toHaveLength(2); // no backoff
    latest().accept("epoch-1", 12);
    expect(latest().sent[0]).toEqual({ type: "resume", epoch: "epoch-1", after: 11 });
    latest().receive(event(12));
    expect(onEvent.mock.calls.map(([e]) => e.seq)).toEqual([11, 12]);
    expect(hook.result.current).toBe("live");
    expect(onSignedOut).not.toHaveBeenCalled();
  });

  it("on 4001 with the session gone waits for sign-in, then resumes where it was", async () => {
    const { onSignedOut, hook, latest } = setup({ checkSession: () => Promise.resolve(false) });
    latest().accept("epoch-1", 10);

    await act(async () => latest().drop(TOKEN_EXPIRED));
    waitForReconnect();

    expect(hook.result.current).toBe("signed-out");
    expect(onSignedOut).toHaveBeenCalledTimes(1);
    expect(FakeSocket.all).toHaveLength(1);

    hook.rerender({ signedIn: false });
    hook.rerender({ signedIn: true });
    expect(FakeSocket.all).toHaveLength(2);
    latest().accept("epoch-1", 20);
    expect(latest().sent[0]).toEqual({ type: "resume", epoch: "epoch-1", after: 10 });
    expect(hook.result.current).toBe("live");
  });

  it("on 4003 (session revoked) shows sign-in without asking, and does not reconnect until signed in", () => {
    const checkSession = vi.fn(() => Promise.resolve(true));
    const { onSignedOut, hook, latest } = setup({ checkSession });
    latest().accept("epoch-1", 10);

    latest().drop(SESSION_REVOKED);
    waitForReconnect();

    expect(hook.result.current).toBe("signed-out");
    expect(onSignedOut).toHaveBeenCalledTimes(1);
    expect(checkSession).not.toHaveBeenCalled();
    expect(FakeSocket.all).toHaveLength(1);

    hook.rerender({ signedIn: false });
    hook.rerender({ signedIn: true });
    latest().accept("epoch-1", 10);
    expect(latest().sent[0]).toEqual({ type: "resume", epoch: "epoch-1", after: 10 });
  });

  it("asks after an upgrade that was refused, and keeps retrying while the session holds", async () => {
    const valid = { now: true };
    const { hook, latest } = setup({ checkSession: () => Promise.resolve(valid.now) });

    await act(async () => latest().drop()); // the notifier is down: the session still holds
    expect(hook.result.current).toBe("reconnecting");
    waitForReconnect();
    expect(FakeSocket.all).toHaveLength(2);

    valid.now = false; // refused with 401: the cookie's session is over
    await act(async () => latest().drop());
    waitForReconnect();
    expect(hook.result.current).toBe("signed-out");
    expect(FakeSocket.all).toHaveLength(2);
  });
});

describe("backoffDelay", () => {
  it("doubles per attempt, is capped at 30 s, and jitters within the upper half", () => {
    expect(backoffDelay(0, () => 1)).toBe(500);
    expect(backoffDelay(3, () => 1)).toBe(4000);
    expect(backoffDelay(3, () => 0)).toBe(2000);
    expect(backoffDelay(20, () => 1)).toBe(30_000);
  });
});
