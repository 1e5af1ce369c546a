import type {
  Contact,
  ContactInput,
  HistoryItem,
  ImportJob,
  ListParams,
  NewUser,
  Page,
  Problem,
  Session,
  User,
  UserPatch,
} from "./types";

/** An HTTP error answered by the API (or a gateway in front of it). */
export class ApiError extends Error {
  readonly problem: Problem;
  /** Seconds to wait before trying again, from `Retry-After` (a 429 or 503). */
  readonly retryAfter: number | null;

  constructor(problem: Problem, retryAfter: number | null = null) {
    super(problem.detail ?? problem.title);
    this.name = "ApiError";
    this.problem = problem;
    this.retryAfter = retryAfter;
  }

  get status(): number {
    return this.problem.status;
  }

  /** Server validation messages keyed by field name. */
  get fieldErrors(): Record<string, string> {
    return Object.fromEntries((this.problem.errors ?? []).map((e) => [e.field, e.message]));
  }
}

/** The request had no valid credentials: the session ended or was revoked. */
export const isUnauthorized = (error: unknown): boolean => error instanceof ApiError && error.status === 401;

/** `Retry-After` in seconds; an HTTP date counts from now. */
function retryAfter(header: string | null): number | null {
  if (header === null) return null;
  const seconds = /^\d+$/.test(header.trim()) ? Number(header) : (Date.parse(header) - Date.now()) / 1000;
  return Number.isNaN(seconds) ? null : Math.max(0, Math.ceil(seconds));
}

/** Network failures and 5xx/408/429 are worth retrying (with the same Idempotency-Key). */
export function isRetryable(error: unknown): boolean {
  if (!(error instanceof ApiError)) return error instanceof TypeError;
  return error.status >= 500 || error.status === 408 || error.status === 429;
}

/** A random UUID v4; `crypto.randomUUID` exists only in secure contexts (https, localhost). */
export function newIdempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const etag = (version: number) => `"${version}"`;

const json = (method: string, body: unknown): RequestInit => ({
  method,
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify(body),
});

/** `Consistency-Token`: the WAL position (a hexadecimal number) of the newest write this page made; every read
 * sends it back, so that a read served by a replica waits until it has that write (read your own writes). */
const CONSISTENCY = "Consistency-Token";
let newestWrite: { token: string; at: bigint } | null = null;

function position(token: string): bigint | null {
  return /^[0-9A-Fa-f]{1,16}$/.test(token) ? BigInt(`0x${token}`) : null;
}

function remember(token: string | null): void {
  const at = token === null ? null : position(token);
  if (token !== null && at !== null && (newestWrite === null || at > newestWrite.at)) newestWrite = { token, at };
}

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const reading = (init.method ?? "GET") === "GET";
  const consistency: Record<string, string> = reading && newestWrite ? { [CONSISTENCY]: newestWrite.token } : {};
  const response = await fetch(path, {
    ...init,
    headers: { Accept: "application/json, application/problem+json", ...consistency, ...init.headers },
  });
  if (!reading) remember(response.headers.get(CONSISTENCY));
  if (response.status === 204) return undefined as T;
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const problem = (body ?? {}) as Partial<Problem>;
    throw new ApiError(
      { ...problem, title: problem.title ?? response.statusText, status: response.status },
      retryAfter(response.headers.get("Retry-After")),
    );
  }
  return body as T;
}

function query(params: Record<string, string | number | undefined>): string {
  const defined = Object.entries(params).filter(([, v]) => v !== undefined && v !== "");
  const search = new URLSearchParams(defined.map(([k, v]) => [k, String(v)]));
  return search.size ? `?${search}` : "";
}

export const api = {
  list: ({ search, sort }: ListParams, cursor?: string, limit = 100) =>
    request<Page<Contact>>(`/api/contacts${query({ search, sort, limit, cursor })}`),

  get: (id: number) => request<Contact>(`/api/contacts/${id}`),

  history: (id: number, cursor?: string, limit = 50) =>
    request<Page<HistoryItem>>(`/api/contacts/${id}/history${query({ limit, cursor })}`),

  create: (input: ContactInput, idempotencyKey: string) =>
    request<Contact>("/api/contacts", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": idempotencyKey },
      body: JSON.stringify(input),
    }),

  update: (id: number, version: number, patch: Partial<ContactInput>) =>
    request<Contact>(`/api/contacts/${id}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/merge-patch+json", "If-Match": etag(version) },
      body: JSON.stringify(patch),
    }),

  remove: (id: number, version: number) =>
    request<void>(`/api/contacts/${id}`, { method: "DELETE", headers: { "If-Match": etag(version) } }),

  signIn: (username: string, password: string) => request<Session>("/api/session", json("POST", { username, password })),

  session: () => request<Session>("/api/session"),

  signOut: () => request<void>("/api/session", { method: "DELETE" }),

  users: () => request<Page<User>>("/api/users"),

  addUser: (user: NewUser) => request<User>("/api/users", json("POST", user)),

  updateUser: (id: number, patch: UserPatch) => request<User>(`/api/users/${id}`, json("PATCH", patch)),

  importFile: (file: Blob, mediaType: string) =>
    request<ImportJob>("/api/imports", { method: "POST", headers: { "Content-Type": mediaType }, body: file }),

  importJob: (id: string) => request<ImportJob>(`/api/imports/${id}`),

  /** Where the list, or the current search of it, downloads as a file. */
  exportUrl: ({ search, sort }: ListParams, format: "csv" | "vcard") =>
    `/api/contacts/export${query({ format, search, sort })}`,
};
