import type { QueryClient } from "@tanstack/react-query";
import { type ContactPages, keys } from "./queries";
import type { Contact, ListParams, Sort, SortField } from "./types";

function sortValue(contact: Contact, field: SortField): string | number {
  return field === "updated_at" ? Date.parse(contact.updated_at) : contact[field].toLowerCase();
}

/** The list order the query API uses: the sort field, then id as tie-breaker. */
export function compareContacts(a: Contact, b: Contact, sort: Sort): number {
  const descending = sort.startsWith("-");
  const field = (descending ? sort.slice(1) : sort) as SortField;
  const [va, vb] = [sortValue(a, field), sortValue(b, field)];
  const order = va < vb ? -1 : va > vb ? 1 : a.id - b.id;
  return descending ? -order : order;
}

/** Mirrors the server's search: case-insensitive substring of names, email or phone. */
export function matchesSearch(contact: Contact, search: string): boolean {
  const needle = search.trim().toLowerCase();
  return (
    !needle ||
    [contact.first_name, contact.last_name, contact.email, contact.phone].some((v) =>
      v.toLowerCase().includes(needle),
    )
  );
}

/**
 * Puts `contact` (or nothing, when deleted) where it belongs in a loaded list:
 * in place when its sort position is unchanged (no jumping rows), otherwise
 * removed and re-inserted in order. A contact that sorts after the last loaded
 * row is left for the next page to bring.
 */
export function placeInList(
  data: ContactPages,
  id: number,
  contact: Contact | null,
  { search, sort }: ListParams,
): ContactPages {
  const wanted = contact && matchesSearch(contact, search) ? contact : null;
  let pages = data.pages;

  const pageIndex = pages.findIndex((p) => p.items.some((c) => c.id === id));
  if (pageIndex >= 0) {
    const page = pages[pageIndex]!;
    const old = page.items.find((c) => c.id === id)!;
    if (wanted && compareContacts(old, wanted, sort) === 0) {
      const items = page.items.map((c) => (c.id === id ? wanted : c));
      return { ...data, pages: pages.with(pageIndex, { ...page, items }) };
    }
    pages = pages.with(pageIndex, { ...page, items: page.items.filter((c) => c.id !== id) });
  }

  if (wanted) {
    const target = pages.findIndex((p) =>
      p.items.some((c) => compareContacts(wanted, c, sort) < 0),
    );
    const last = pages.length - 1;
    if (target >= 0) {
      const page = pages[target]!;
      const at = page.items.findIndex((c) => compareContacts(wanted, c, sort) < 0);
      pages = pages.with(target, { ...page, items: page.items.toSpliced(at, 0, wanted) });
    } else if (last >= 0 && pages[last]!.next_cursor === null) {
      const page = pages[last]!;
      pages = pages.with(last, { ...page, items: [...page.items, wanted] });
    }
  }
  return pages === data.pages ? data : { ...data, pages };
}

/** The newest copy of a contact held anywhere in the cache. */
export function findContact(client: QueryClient, id: number): Contact | undefined {
  let newest = client.getQueryData<Contact | null>(keys.detail(id)) ?? undefined;
  for (const [, data] of client.getQueriesData<ContactPages>({ queryKey: keys.lists })) {
    for (const page of data?.pages ?? []) {
      const found = page.items.find((c) => c.id === id);
      if (found && found.version > (newest?.version ?? 0)) newest = found;
    }
  }
  return newest;
}

/**
 * Writes a contact's new state (`null`: deleted) into every list and its own entry. A list being fetched
 * meanwhile (a search just typed, say) may be answered from before this change, and its answer would
 * overwrite it: such a list is fetched again.
 */
export function storeContact(client: QueryClient, id: number, contact: Contact | null): void {
  for (const [key, data] of client.getQueriesData<ContactPages>({ queryKey: keys.lists })) {
    const params = key[2] as ListParams;
    if (data) client.setQueryData<ContactPages>(key, placeInList(data, id, contact, params));
  }
  for (const { queryKey } of client.getQueryCache().findAll({ queryKey: keys.lists, fetchStatus: "fetching" })) {
    // Cancelled, not deduplicated: a list loading for the first time would otherwise keep its request.
    const exact = { queryKey, exact: true };
    void client.cancelQueries(exact).then(() => client.refetchQueries(exact));
  }
  if (client.getQueryData(keys.detail(id)) !== undefined) {
    client.setQueryData<Contact | null>(keys.detail(id), contact);
  }
  void client.invalidateQueries({ queryKey: keys.history(id) });
}

/** Stores `version` of a contact (`null`: deleted) unless the cache holds it or a newer one. */
export function storeVersion(
  client: QueryClient,
  id: number,
  version: number,
  contact: Contact | null,
): boolean {
  if (version <= (findContact(client, id)?.version ?? 0)) return false;
  storeContact(client, id, contact);
  return true;
}

/**
 * After missed events can no longer be replayed: reload what is on screen.
 * Lists keep only their first page, so a deep scroll does not refetch every page.
 */
export function resyncAll(client: QueryClient): void {
  for (const [key, data] of client.getQueriesData<ContactPages>({ queryKey: keys.lists })) {
    if (data && data.pages.length > 1) {
      client.setQueryData<ContactPages>(key, {
        pages: data.pages.slice(0, 1),
        pageParams: data.pageParams.slice(0, 1),
      });
    }
  }
  void client.invalidateQueries({ queryKey: keys.all });
}
