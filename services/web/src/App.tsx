import { useCallback, useEffect, useRef, useState } from "react";
import { useSignOut } from "./api/session";
import type { Sort, User } from "./api/types";
import { Button } from "./components/Button";
import { ConnectionIndicator } from "./components/ConnectionIndicator";
import { FormError, describeError } from "./components/ContactFields";
import { ContactList } from "./components/ContactList";
import { CreateContact } from "./components/CreateContact";
import { EditContact } from "./components/EditContact";
import { ExportLinks } from "./components/ExportLinks";
import { HistoryPanel } from "./components/HistoryPanel";
import { ImportContacts } from "./components/ImportContacts";
import { EditingNotice, PresenceInitials } from "./components/Presence";
import { UsersPage } from "./components/UsersPage";
import { useLiveContacts } from "./live/useLiveContacts";
import { useDebouncedValue } from "./useDebouncedValue";

const SORT_OPTIONS: { value: Sort; label: string }[] = [
  { value: "last_name", label: "Last name (A–Z)" },
  { value: "-last_name", label: "Last name (Z–A)" },
  { value: "first_name", label: "First name (A–Z)" },
  { value: "-first_name", label: "First name (Z–A)" },
  { value: "email", label: "Email (A–Z)" },
  { value: "-updated_at", label: "Recently updated" },
  { value: "updated_at", label: "Least recently updated" },
];

type Panel = { kind: "none" } | { kind: "create" } | { kind: "contact"; id: number; history: boolean };

type View = "contacts" | "users";

/** The page the address names: `#/users` for the users (admins only), the contacts otherwise. */
function useView(admin: boolean): View {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const onChange = () => setHash(window.location.hash);
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return admin && hash === "#/users" ? "users" : "contacts";
}

const navClass = (current: boolean) =>
  `rounded-md px-3 py-2 text-sm font-medium underline-offset-4 ${
    current ? "bg-slate-200 text-slate-900" : "text-blue-800 underline hover:bg-slate-100"
  }`;

interface Props {
  /** Who is signed in (the last one, while the session has ended). */
  user: User;
  /** The session ended: sign-in shows over the app, which keeps its place beneath and waits. */
  sessionEnded?: boolean;
}

export function App({ user, sessionEnded = false }: Props) {
  const view = useView(user.role === "admin");
  const canWrite = user.role !== "viewer";
  const [searchInput, setSearchInput] = useState("");
  const search = useDebouncedValue(searchInput.trim(), 250);
  const [sort, setSort] = useState<Sort>("last_name");
  const [panel, setPanel] = useState<Panel>({ kind: "none" });
  const [notice, setNotice] = useState("");
  const heading = useRef<HTMLHeadingElement>(null);
  const newButton = useRef<HTMLButtonElement>(null);

  const [editing, setEditing] = useState(false);
  const selectedId = panel.kind === "contact" && view === "contacts" ? panel.id : null;
  const { status, changes, announcement, present } = useLiveContacts({
    signedIn: !sessionEnded,
    presence: selectedId === null ? null : { contact_id: selectedId, state: editing && canWrite ? "editing" : "viewing" },
  });
  const signOut = useSignOut();
  const change = selectedId === null ? undefined : changes.get(selectedId);
  /** Everyone on a contact but the one signed in here. */
  const othersOn = useCallback(
    (id: number) => (present.get(id) ?? []).filter((someone) => someone.id !== user.id),
    [present, user.id],
  );

  // Move focus to the panel when a contact opens in it (the create form focuses its first input).
  useEffect(() => {
    if (selectedId !== null) heading.current?.focus();
  }, [selectedId]);

  const close = (message = "") => {
    setNotice(message);
    setPanel({ kind: "none" });
    newButton.current?.focus();
  };

  return (
    <div inert={sessionEnded} className="mx-auto flex min-h-dvh max-w-6xl flex-col gap-4 p-3 sm:p-6 md:h-dvh">
      <header className="flex flex-wrap items-center gap-3">
        <h1 className="text-2xl font-bold">Contacts</h1>
        <ConnectionIndicator status={status} />
        {user.role === "admin" && (
          <nav aria-label="Pages" className="flex gap-1">
            <a href="#/" className={navClass(view === "contacts")} aria-current={view === "contacts" ? "page" : undefined}>
              Contacts
            </a>
            <a href="#/users" className={navClass(view === "users")} aria-current={view === "users" ? "page" : undefined}>
              Users
            </a>
          </nav>
        )}
        <div className="ml-auto flex flex-wrap items-center gap-2">
          <p className="text-sm text-slate-700" data-testid="signed-in-as">
            Signed in as <span className="font-semibold text-slate-900">{user.name}</span>
            <span className="sr-only"> ({user.role})</span>
          </p>
          <Button onClick={() => signOut.mutate()} disabled={signOut.isPending}>
            Sign out
          </Button>
          {signOut.error && <FormError message={`Could not sign out: ${describeError(signOut.error).message}`} />}
          {view === "contacts" && canWrite && (
            <Button
              ref={newButton}
              variant="primary"
              onClick={() => {
                setNotice("");
                setPanel({ kind: "create" });
              }}
            >
              New contact
            </Button>
          )}
        </div>
      </header>

      {view === "users" ? (
        <UsersPage me={user} />
      ) : (
      <main className="flex min-h-0 flex-1 flex-col gap-4 md:flex-row">
        {panel.kind !== "none" && (
          <aside
            aria-labelledby="panel-title"
            className="order-first flex flex-col gap-4 rounded-lg border border-slate-200 bg-white p-4 md:order-last md:w-[26rem] md:overflow-y-auto"
          >
            <div className="flex items-start gap-2">
              <h2 id="panel-title" ref={heading} tabIndex={-1} className="flex-1 text-lg font-semibold">
                {panel.kind === "create" ? "New contact" : "Edit contact"}
              </h2>
              {change && (
                <span className="rounded-full bg-amber-200 px-2 py-0.5 text-xs font-medium text-amber-950">
                  {change.op} by {change.by}
                </span>
              )}
              {panel.kind === "contact" && <PresenceInitials users={othersOn(panel.id)} />}
              {panel.kind === "contact" && (
                <Button onClick={() => close()} aria-label="Close panel">
                  ✕
                </Button>
              )}
            </div>
            {panel.kind === "create" ? (
              <CreateContact onClose={() => close()} />
            ) : (
              <>
                <EditingNotice users={othersOn(panel.id)} />
                <EditContact
                  key={panel.id}
                  id={panel.id}
                  onDeleted={() => close("Contact deleted.")}
                  onEditing={setEditing}
                />
                <Button
                  aria-expanded={panel.history}
                  aria-controls="history-panel"
                  onClick={() => setPanel({ ...panel, history: !panel.history })}
                >
                  History
                </Button>
                {panel.history && (
                  <section id="history-panel" aria-label="History">
                    <HistoryPanel id={panel.id} />
                  </section>
                )}
              </>
            )}
          </aside>
        )}

        <section aria-label="Contact list" className="flex min-h-[70dvh] flex-1 flex-col gap-3 md:min-h-0">
          <div className="flex flex-col gap-2 sm:flex-row">
            <label className="flex flex-1 flex-col gap-1 text-sm font-medium text-slate-700">
              Search
              <input
                type="search"
                value={searchInput}
                onChange={(e) => setSearchInput(e.target.value)}
                placeholder="Name, email or phone"
                className="rounded-md border border-slate-300 bg-white px-3 py-2 text-base font-normal"
              />
            </label>
            <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
              Sort by
              <select
                value={sort}
                onChange={(e) => setSort(e.target.value as Sort)}
                className="rounded-md border border-slate-300 bg-white px-3 py-2 text-base font-normal"
              >
                {SORT_OPTIONS.map((o) => (
                  <option key={o.value} value={o.value}>
                    {o.label}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <div className="flex flex-col gap-2 sm:flex-row sm:items-end sm:justify-between">
            {canWrite && <ImportContacts />}
            <ExportLinks params={{ search, sort }} />
          </div>
          <div className="flex min-h-0 flex-1 flex-col rounded-lg border border-slate-200 bg-white">
            <ContactList
              params={{ search, sort }}
              selectedId={selectedId}
              onSelect={(id) => setPanel({ kind: "contact", id, history: false })}
              changes={changes}
              othersOn={othersOn}
            />
          </div>
        </section>
      </main>
      )}

      <p aria-live="polite" className="sr-only" data-testid="announcer">
        {notice || announcement}
      </p>
    </div>
  );
}
