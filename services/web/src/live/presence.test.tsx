import { renderHook } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { PresentUser } from "../api/types";
import { FakeSocket } from "./FakeSocket";
import { type Presence, type PresenceMap, useLiveSocket } from "./useLiveSocket";

const grace: PresentUser = { id: 2, name: "Grace Hopper", state: "editing" };

function setup(presence: Presence | null) {
  const onPresence = vi.fn<(presence: PresenceMap) => void>();
  const hook = renderHook(
    ({ presence }) =>
      useLiveSocket({
        url: "ws://test/ws",
        connect: (url) => new FakeSocket(url),
        random: () => 1,
        onEvent: vi.fn(),
        onResync: vi.fn(),
        presence,
        onPresence,
      }),
    { initialProps: { presence } },
  );
  const latest = () => FakeSocket.all.at(-1)!;
  const lastMap = () => onPresence.mock.calls.at(-1)?.[0];
  return { hook, latest, lastMap };
}

describe("presence on the live socket", () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it("says where this tab is once greeted, each time that changes, and leaves the contact it moved from", () => {
    const { hook, latest } = setup({ contact_id: 7, state: "viewing" });
    expect(latest().sent).toEqual([]); // not before the hello
    latest().accept("e", 1);
    expect(latest().sent).toEqual([{ type: "presence", contact_id: 7, state: "viewing" }]);

    hook.rerender({ presence: { contact_id: 7, state: "editing" } });
    hook.rerender({ presence: { contact_id: 7, state: "editing" } }); // no change: nothing sent
    hook.rerender({ presence: { contact_id: 8, state: "viewing" } });
    hook.rerender({ presence: null });
    expect(latest().sent.slice(1)).toEqual([
      { type: "presence", contact_id: 7, state: "editing" },
      { type: "presence", contact_id: 7, state: null },
      { type: "presence", contact_id: 8, state: "viewing" },
      { type: "presence", contact_id: 8, state: null },
    ]);
  });

  it("hands over who is where as the server says, and forgets it all when the connection goes", () => {
    const { latest, lastMap } = setup(null);
    latest().accept("e", 1);
    latest().receive({ type: "presence", contact_id: 7, users: [grace] });
    latest().receive({ type: "presence", contact_id: 8, users: [{ ...grace, state: "viewing" }] });
    latest().receive({ type: "presence", contact_id: 8, users: [] });
    expect([...lastMap()!]).toEqual([[7, [grace]]]);
    latest().receive({ type: "error", detail: "too many presence messages" }); // no event, no crash

    latest().drop();
    expect(lastMap()!.size).toBe(0);
  });

  it("tells a new connection where this tab is, after resuming", () => {
    const { latest } = setup({ contact_id: 7, state: "editing" });
    latest().accept("e", 1);
    latest().drop();
    vi.advanceTimersByTime(30_000);
    const second = latest();
    second.accept("e", 1);
    expect(second.sent).toEqual([
      { type: "resume", epoch: "e", after: 1 },
      { type: "presence", contact_id: 7, state: "editing" },
    ]);
  });
});
