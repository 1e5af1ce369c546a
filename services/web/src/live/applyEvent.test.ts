import { InfiniteQueryObserver, QueryClient } from "@tanstack/react-query";
import { describe, expect, it, vi } from "vitest";
import type { ContactPages } from "../api/queries";
import { keys } from "../api/queries";
import type { Contact, ContactEvent, ListParams } from "../api/types";
import { applyEvent } from "./applyEvent";

const contact = (id: number, last_name: string, version = 1): Contact => ({
  id,
  first_name: "Ann",
  last_name,
  email: `${last_name.toLowerCase()}@example.com`,
  phone: "+1 555 0100",
  version,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: `2026-01-01T00:00:0${version}Z`,
});

const event = (type: ContactEvent["type"], c: Contact, seq = 1): ContactEvent => ({
  type,
  seq,
  event_id: `e${seq}`,
  contact_id: c.id,
  version: c.version,
  contact: type === "contact.deleted" ? null : c,
  changed_fields: [],
  source: "console",
  at: c.updated_at,
});

const byName: ListParams = { search: "", sort: "last_name" };

function setup(pages: { items: Contact[]; next_cursor: string | null }[], params = byName) {
  const client = new QueryClient();
  client.setQueryData<ContactPages>(keys.list(params), { pages, pageParams: pages.map((_, i) => `${i}`) });
  const names = () => client.getQueryData<ContactPages>(keys.list(params))!.pages.map((p) => p.items.map((c) => c.last_name));
  return { client, names };
}

describe("applyEvent", () => {
  it("fetches a list again when an event arrives while the list is being fetched", async () => {
    const client = new QueryClient();
    const created = contact(7, "Hopper");
    let release = () => {};
    const answeredBeforeTheCreate = new Promise<void>((resolve) => (release = resolve));
    let fetches = 0;
    const observer = new InfiniteQueryObserver(client, {
      queryKey: keys.list(byName),
      queryFn: async () => {
        fetches += 1;
        if (fetches > 1) return { items: [created], next_cursor: null };
        await answeredBeforeTheCreate; // the server read the list before the contact was committed
        return { items: [], next_cursor: null };
      },
      initialPageParam: undefined as string | undefined,
      getNextPageParam: (page: { next_cursor: string | null }) => page.next_cursor ?? undefined,
    });
    const unsubscribe = observer.subscribe(() => {});
    await vi.waitFor(() => expect(fetches).toBe(1));

    expect(applyEvent(client, event("contact.created", created))).toBe(true);
    release();

    await vi.waitFor(() =>
      expect(client.getQueryData<ContactPages>(keys.list(byName))?.pages[0]?.items.map((c) => c.id)).toEqual([7]),
    );
    unsubscribe();
  });

  it("replaces a contact in place when a newer version arrives", () => {
    const { client, names } = setup([{ items: [contact(1, "Adams"), contact(2, "Brown")], next_cursor: null }]);
    const renamed = { ...contact(1, "Adams", 2), first_name: "Anna" };

    expect(applyEvent(client, event("contact.updated", renamed))).toBe(true);

    const first = client.getQueryData<ContactPages>(keys.list(byName))!.pages[0]!.items[0]!;
    expect(first).toMatchObject({ id: 1, first_name: "Anna", version: 2 });
    expect(names()).toEqual([["Adams", "Brown"]]);
  });

  it("ignores an event whose version is not newer than the cached one", () => {
    const { client } = setup([{ items: [contact(1, "Adams", 3)], next_cursor: null }]);

    expect(applyEvent(client, event("contact.updated", contact(1, "Zed", 3)))).toBe(false);
    expect(applyEvent(client, event("contact.updated", contact(1, "Zed", 2)))).toBe(false);

    expect(client.getQueryData<ContactPages>(keys.list(byName))!.pages[0]!.items[0]!.last_name).toBe("Adams");
  });

  it("inserts a created contact at its sorted place among the loaded rows", () => {
    const { client, names } = setup([
      { items: [contact(1, "Adams"), contact(2, "Brown")], next_cursor: "c1" },
      { items: [contact(3, "Davis"), contact(4, "Evans")], next_cursor: "c2" },
    ]);

    applyEvent(client, event("contact.created", contact(5, "Clark")));
    applyEvent(client, event("contact.created", contact(6, "Young")));

    // Young sorts after the last loaded row and more pages exist: that page will bring it.
    expect(names()).toEqual([["Adams", "Brown"], ["Clark", "Davis", "Evans"]]);
  });

  it("appends after the last row once the list is fully loaded", () => {
    const { client, names } = setup([{ items: [contact(1, "Adams")], next_cursor: null }]);
    applyEvent(client, event("contact.created", contact(2, "Young")));
    expect(names()).toEqual([["Adams", "Young"]]);
  });

  it("moves a contact whose sort field changed, and drops it from a search it no longer matches", () => {
    const { client, names } = setup([{ items: [contact(1, "Adams"), contact(2, "Brown")], next_cursor: null }]);
    const search = { search: "adams", sort: "last_name" } as const;
    client.setQueryData<ContactPages>(keys.list(search), {
      pages: [{ items: [contact(1, "Adams")], next_cursor: null }],
      pageParams: [undefined],
    });

    applyEvent(client, event("contact.updated", contact(1, "Cooper", 2)));

    expect(names()).toEqual([["Brown", "Cooper"]]);
    expect(client.getQueryData<ContactPages>(keys.list(search))!.pages[0]!.items).toEqual([]);
  });

  it("removes a deleted contact from every list and marks its own entry gone", () => {
    const { client, names } = setup([{ items: [contact(1, "Adams"), contact(2, "Brown")], next_cursor: null }]);
    client.setQueryData(keys.detail(2), contact(2, "Brown"));

    expect(applyEvent(client, event("contact.deleted", contact(2, "Brown", 2)))).toBe(true);

    expect(names()).toEqual([["Adams"]]);
    expect(client.getQueryData(keys.detail(2))).toBeNull();
  });

  it("updates the single-contact cache too", () => {
    const { client } = setup([{ items: [], next_cursor: null }]);
    client.setQueryData(keys.detail(7), contact(7, "Hill", 1));

    applyEvent(client, event("contact.updated", contact(7, "Hall", 2)));

    expect(client.getQueryData<Contact>(keys.detail(7))).toMatchObject({ last_name: "Hall", version: 2 });
  });

  it("sorts descending lists in reverse", () => {
    const params: ListParams = { search: "", sort: "-last_name" };
    const { client, names } = setup([{ items: [contact(1, "Young"), contact(2, "Adams")], next_cursor: null }], params);
    applyEvent(client, event("contact.created", contact(3, "Miller")));
    expect(names()).toEqual([["Young", "Miller", "Adams"]]);
  });
});
