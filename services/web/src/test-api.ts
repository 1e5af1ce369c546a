import { vi } from "vitest";

/** A JSON reply as the API gives it. */
export const reply = (status: number, body?: unknown, headers: Record<string, string> = {}) =>
  new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": status >= 400 ? "application/problem+json" : "application/json", ...headers },
  });

type Handler = (init: RequestInit, url: URL) => Response | Promise<Response>;

/**
 * Stands in for the API in component tests: `fetch` answered by "METHOD /path" (the query string
 * left off); anything else fails the test loudly with a 599.
 */
export function fakeApi(routes: Record<string, Handler>) {
  const fetch = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(String(input), "http://app.test");
    const handler = routes[`${init.method ?? "GET"} ${url.pathname}`];
    return handler ? handler(init, url) : reply(599, { title: `no route for ${init.method ?? "GET"} ${url.pathname}` });
  });
  vi.stubGlobal("fetch", fetch);
  return fetch;
}

export const ada = { id: 1, username: "ada", name: "Ada Lovelace", role: "admin" as const, disabled: false };

/** A contact as the API gives it. */
export const grace = {
  id: 7,
  first_name: "Grace",
  last_name: "Hopper",
  email: "grace@example.com",
  phone: "+1 202 555 0100",
  version: 1,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};
