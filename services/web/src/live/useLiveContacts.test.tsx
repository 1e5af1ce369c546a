import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, renderHook } from "@testing-library/react";
import type { ReactNode } from "react";
import { beforeEach, describe, expect, it } from "vitest";
import type { ContactPages } from "../api/queries";
import { keys } from "../api/queries";
import type { Actor, Contact } from "../api/types";
import { FakeSocket } from "./FakeSocket";
import { OwnChanges, OwnChangesContext } from "./ownChanges";
import { useLiveContacts } from "./useLiveContacts";

const ada: Contact = {
  id: 1,
  first_name: "Ada",
  last_name: "Lovelace",
  email: "ada@example.com",
  phone: "+44 20 7946 0958",
  version: 1,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};

const updated = (seq: number, version: number, source = "console", actor: Actor | null = null) => ({
  type: "contact.updated",
  seq,
  event_id: `e${seq}`,
  contact_id: 1,
  version,
  contact: { ...ada, phone: `+1 555 010${version}`, version },
  changed_fields: ["phone"],
  source,
  actor,
  at: "2026-01-01T00:00:00Z",
});

function setup() {
  const client = new QueryClient();
  client.setQueryData<ContactPages>(keys.list({ search: "", sort: "last_name" }), {
    pages: [{ items: [ada], next_cursor: null }],
    pageParams: [undefined],
  });
  const own = new OwnChanges();
  const wrapper = ({ children }: { children: ReactNode }) => (
    <QueryClientProvider client={client}>
      <OwnChangesContext value={own}>{children}</OwnChangesContext>
    </QueryClientProvider>
  );
  const hook = renderHook(() => useLiveContacts({ connect: (url) => new FakeSocket(url) }), { wrapper });
  const socket = FakeSocket.all.at(-1)!;
  socket.accept("epoch", 0);
  return { client, own, hook, socket };
}

describe("useLiveContacts", () => {
  beforeEach(() => {
    FakeSocket.all = [];
  });

  it("applies someone else's change and shows who made it", () => {
    const { client, hook, socket } = setup();

    socket.receive(updated(1, 2, "console"));

    expect(client.getQueryData<ContactPages>(keys.list({ search: "", sort: "last_name" }))!.pages[0]!.items[0]!.phone).toBe(
      "+1 555 0102",
    );
    expect(hook.result.current.changes.get(1)).toMatchObject({ op: "updated", by: "console" });
    expect(hook.result.current.announcement).toBe("Ada Lovelace updated by console");
  });

  it("names the colleague who made the change", () => {
    const { hook, socket } = setup();

    socket.receive(updated(1, 2, "api", { id: 3, name: "Grace Hopper" }));

    expect(hook.result.current.changes.get(1)).toMatchObject({ op: "updated", by: "Grace Hopper" });
    expect(hook.result.current.announcement).toBe("Ada Lovelace updated by Grace Hopper");
  });

  it("gives no cue for this tab's own pending write", async () => {
    const { hook, own, socket } = setup();
    let finish!: () => void;
    const write = own.track({ id: 1 }, () => new Promise<void>((resolve) => (finish = resolve)));

    socket.receive(updated(1, 2, "api"));
    expect(hook.result.current.changes.size).toBe(0);

    await act(async () => {
      finish();
      await write;
    });
    socket.receive(updated(2, 3, "console"));
    expect(hook.result.current.changes.get(1)?.by).toBe("console");
  });

  it("gives no cue for the event of a write whose reply came first", () => {
    const { hook, own, socket } = setup();
    own.confirm(1, 2);

    socket.receive(updated(1, 2, "api"));

    expect(hook.result.current.changes.size).toBe(0);
  });
});
