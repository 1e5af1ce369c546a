export const CONTACT_FIELDS = ["first_name", "last_name", "email", "phone"] as const;
export type ContactField = (typeof CONTACT_FIELDS)[number];
export type ContactInput = Record<ContactField, string>;

export interface Contact extends ContactInput {
  id: number;
  version: number;
  created_at: string;
  updated_at: string;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export const SORTS = ["last_name", "first_name", "email", "updated_at"] as const;
export type SortField = (typeof SORTS)[number];
export type Sort = SortField | `-${SortField}`;

export interface ListParams {
  search: string;
  sort: Sort;
}

export type Op = "created" | "updated" | "deleted";

/** Who made a change: a person, or a service's own user; `null` when it came over the bus unsigned. */
export interface Actor {
  id: number | null;
  name: string;
}

export interface HistoryItem {
  version: number;
  op: Op;
  changed_fields: string[];
  source: string;
  actor?: Actor | null;
  at: string;
  event_id: string;
  contact: Contact | null;
}

export interface FieldError {
  field: string;
  message: string;
}

/** RFC 9457 problem details, as every service answers errors. */
export interface Problem {
  type?: string;
  title: string;
  status: number;
  detail?: string;
  errors?: FieldError[];
}

export interface ContactEvent {
  type: `contact.${Op}`;
  seq: number;
  event_id: string;
  contact_id: number;
  version: number;
  contact: Contact | null;
  changed_fields: string[];
  source: string;
  actor?: Actor | null;
  at: string;
}

/** What a person is doing on a contact, as presence says (SPEC §11). */
export type PresenceState = "viewing" | "editing";

export interface PresentUser {
  id: number;
  name: string;
  state: PresenceState;
}

/** Who is on a contact now, over every notifier instance; no `seq`, never replayed. */
export interface PresenceMessage {
  type: "presence";
  contact_id: number;
  users: PresentUser[];
}

export type ServerMessage =
  | { type: "hello"; epoch: string; seq: number }
  | { type: "resync" }
  | { type: "error"; detail: string }
  | PresenceMessage
  | ContactEvent;

export const ROLES = ["viewer", "editor", "admin"] as const;
export type Role = (typeof ROLES)[number];

export interface User {
  id: number;
  username: string;
  name: string;
  role: Role;
  disabled?: boolean;
}

/** `GET /api/session` and `POST /api/session`. */
export interface Session {
  user: User;
  access_token?: string;
  expires_at?: string;
}

export interface NewUser {
  username: string;
  name: string;
  password: string;
  role: Role;
}

export type UserPatch = Partial<Pick<User, "name" | "role" | "disabled"> & { password: string }>;

/** The name to show for a change: the actor's, else its source ("console", "api"). */
export const changedBy = (change: { actor?: Actor | null; source: string }): string => change.actor?.name || change.source;

/** One row of an import file that was not imported: the line its record starts on. */
export interface RejectedRow {
  line: number;
  field: string;
  message: string;
}

/** An import job (`GET /api/imports/{id}`); `rows` is 0 until the file has been read. */
export interface ImportJob {
  id: string;
  status: "running" | "done" | "failed";
  rows: number;
  created: number;
  rejected: number;
  errors: RejectedRow[];
}

/** The progress of one of the signed-in user's imports, pushed on `/ws` (no `seq`, never replayed). */
export type ImportProgress = Omit<ImportJob, "errors"> & { type: "import" };
