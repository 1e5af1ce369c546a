import type { PresentUser } from "../api/types";

/** "Ada Lovelace" → "AL", "Grace" → "G", "李 小龙" → "李小": the first letter of the first and last names. */
export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const first = (word: string | undefined) => (word ? Array.from(word)[0]!.toLocaleUpperCase() : "");
  return first(words[0]) + (words.length > 1 ? first(words.at(-1)) : "") || "?";
}

const describe = (user: PresentUser) => `${user.name} is ${user.state}`;

/**
 * The others on a contact, as initials: a ring for viewing, filled for editing. Each carries the
 * person's full name and what they are doing, as a tooltip and as text for screen readers; spans
 * only, so it may sit inside a button.
 */
export function PresenceInitials({ users }: { users: PresentUser[] }) {
  if (users.length === 0) return null;
  return (
    <span className="flex shrink-0 -space-x-1" data-testid="presence">
      {users.map((user) => (
        <span
          key={user.id}
          title={describe(user)}
          data-state={user.state}
          className={`inline-flex size-7 items-center justify-center rounded-full border-2 text-xs font-semibold ${
            user.state === "editing"
              ? "border-amber-700 bg-amber-700 text-white"
              : "border-blue-800 bg-white text-blue-900"
          }`}
        >
          <span aria-hidden="true">{initials(user.name)}</span>
          <span className="sr-only">{describe(user)}. </span>
        </span>
      ))}
    </span>
  );
}

const names = (users: PresentUser[]) =>
  users.length === 1
    ? users[0]!.name
    : `${users
        .slice(0, -1)
        .map((user) => user.name)
        .join(", ")} and ${users.at(-1)!.name}`;

/** Says, before you change it, that someone else is editing this contact (a live region: it is announced). */
export function EditingNotice({ users }: { users: PresentUser[] }) {
  const editing = users.filter((user) => user.state === "editing");
  return (
    <div role="status" data-testid="editing-notice">
      {editing.length > 0 && (
        <p className="rounded-md border border-amber-400 bg-amber-50 px-3 py-2 text-sm text-amber-950">
          <strong>
            {names(editing)} {editing.length === 1 ? "is" : "are"} editing this contact.
          </strong>{" "}
          If they save first, you will be asked whether to keep your edits.
        </p>
      )}
    </div>
  );
}
