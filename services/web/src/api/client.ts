import type { Contact, ContactInput, HistoryItem, ListParams, Page, Problem } from "./types";

/** An HTTP error answered by the API (or a gateway in front of it). */
export class ApiError extends Error {
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail ?? problem.title);
    this.name = "ApiError";
    this.problem = problem;
  }

  get status(): number {
    return this.problem.status;
  }

  /** Server validation messages keyed by field name. */
  get fieldErrors(): Record<string, string> {
    return Object.fromEntries((this.problem.errors ?? []).map((e) => [e.field, e.message]));
  }
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

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(path, {
    ...init,
    headers: { Accept: "application/json, application/problem+json", ...init.headers },
  });
  if (response.status === 204) return undefined as T;
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const problem = (body ?? {}) as Partial<Problem>;
    throw new ApiError({
      ...problem,
      title: problem.title ?? response.statusText,
      status: response.status,
    });
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
};
