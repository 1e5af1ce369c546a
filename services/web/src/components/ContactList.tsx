import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef } from "react";
import { useContactList } from "../api/queries";
import type { ListParams, PresentUser } from "../api/types";
import type { RemoteChange } from "../live/useLiveContacts";
import { Button } from "./Button";
import { FormError, describeError } from "./ContactFields";
import { PresenceInitials } from "./Presence";

const ROW_HEIGHT = 64;

interface Props {
  params: ListParams;
  selectedId: number | null;
  onSelect: (id: number) => void;
  changes: ReadonlyMap<number, RemoteChange>;
  /** The others on a contact (presence). */
  othersOn: (id: number) => PresentUser[];
}

/**
 * The contact list: one page at a time by cursor, only the visible rows in the
 * DOM, so it scrolls through any number of contacts. Arrow keys, Home and End
 * move between rows.
 */
export function ContactList({ params, selectedId, onSelect, changes, othersOn }: Props) {
  const { data, error, isPending, hasNextPage, isFetchingNextPage, fetchNextPage, refetch } = useContactList(params);
  const contacts = data?.pages.flatMap((p) => p.items) ?? [];
  const scroller = useRef<HTMLDivElement>(null);
  const focusIndex = useRef<number | null>(null);
  const virtualizer = useVirtualizer({
    count: contacts.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
    getItemKey: (index) => contacts[index]!.id,
  });
  const rows = virtualizer.getVirtualItems();
  const lastVisible = rows.at(-1)?.index ?? -1;

  useEffect(() => {
    if (hasNextPage && !isFetchingNextPage && lastVisible >= contacts.length - 20) void fetchNextPage();
  }, [lastVisible, contacts.length, hasNextPage, isFetchingNextPage, fetchNextPage]);

  useEffect(() => {
    if (focusIndex.current === null) return;
    const row = scroller.current?.querySelector<HTMLElement>(`[data-index="${focusIndex.current}"] button`);
    if (row) {
      row.focus();
      focusIndex.current = null;
    }
  });

  const onKeyDown = (event: React.KeyboardEvent) => {
    const current = Number((event.target as HTMLElement).closest("[data-index]")?.getAttribute("data-index"));
    const last = contacts.length - 1;
    const next = { ArrowDown: current + 1, ArrowUp: current - 1, Home: 0, End: last }[event.key];
    if (next === undefined || Number.isNaN(current)) return;
    event.preventDefault();
    focusIndex.current = Math.max(0, Math.min(last, next));
    virtualizer.scrollToIndex(focusIndex.current);
  };

  if (isPending) return <p className="p-4 text-sm text-slate-600">Loading contacts…</p>;
  if (error)
    return (
      <div className="flex flex-col gap-2 p-4">
        <FormError message={describeError(error).message} />
        <Button onClick={() => void refetch()}>Try again</Button>
      </div>
    );

  return (
    <div ref={scroller} className="min-h-0 flex-1 overflow-y-auto" data-testid="contact-list">
      {contacts.length === 0 ? (
        <p className="p-4 text-sm text-slate-600">
          {params.search ? `No contacts match “${params.search}”.` : "No contacts yet."}
        </p>
      ) : (
        <ul
          aria-label="Contacts"
          aria-busy={isFetchingNextPage}
          onKeyDown={onKeyDown}
          className="relative"
          style={{ height: virtualizer.getTotalSize() }}
        >
          {rows.map((row) => {
            const contact = contacts[row.index]!;
            const change = changes.get(contact.id);
            const selected = contact.id === selectedId;
            return (
              <li
                key={row.key}
                data-index={row.index}
                aria-setsize={hasNextPage ? -1 : contacts.length}
                aria-posinset={row.index + 1}
                className="absolute inset-x-0 top-0 px-2 py-1"
                style={{ height: ROW_HEIGHT, transform: `translateY(${row.start}px)` }}
              >
                <button
                  type="button"
                  onClick={() => onSelect(contact.id)}
                  aria-current={selected ? "true" : undefined}
                  data-testid="contact-row"
                  data-contact-id={contact.id}
                  className={`flex h-full w-full items-center gap-3 rounded-md border px-3 text-left transition-colors duration-700 ${
                    selected
                      ? "border-blue-600 bg-blue-50"
                      : change
                        ? "border-amber-400 bg-amber-50"
                        : "border-transparent hover:bg-slate-100"
                  }`}
                >
                  <span className="min-w-0 flex-1">
                    <span className="block truncate font-medium">
                      {contact.first_name} {contact.last_name}
                    </span>
                    <span className="block truncate text-sm text-slate-600">
                      {contact.email}
                      <span className="hidden sm:inline"> · {contact.phone}</span>
                    </span>
                  </span>
                  {change && (
                    <span className="shrink-0 rounded-full bg-amber-200 px-2 py-0.5 text-xs font-medium text-amber-950">
                      {change.op} by {change.by}
                    </span>
                  )}
                  <PresenceInitials users={othersOn(contact.id)} />
                </button>
              </li>
            );
          })}
        </ul>
      )}
      {isFetchingNextPage && <p className="p-2 text-center text-sm text-slate-600">Loading more…</p>}
    </div>
  );
}
