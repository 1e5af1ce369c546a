import { type InfiniteData, useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { ApiError, api } from "./client";
import type { Contact, HistoryItem, ListParams, Page } from "./types";

export type ContactPages = InfiniteData<Page<Contact>, string | undefined>;
export type HistoryPages = InfiniteData<Page<HistoryItem>, string | undefined>;

export const keys = {
  all: ["contacts"] as const,
  lists: ["contacts", "list"] as const,
  list: (params: ListParams) => ["contacts", "list", params] as const,
  details: ["contacts", "detail"] as const,
  detail: (id: number) => ["contacts", "detail", id] as const,
  history: (id: number) => ["contacts", "history", id] as const,
};

const nextCursor = (page: Page<unknown>) => page.next_cursor ?? undefined;

export function useContactList(params: ListParams) {
  return useInfiniteQuery({
    queryKey: keys.list(params),
    queryFn: ({ pageParam }) => api.list(params, pageParam),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: nextCursor,
  });
}

/** One contact; `null` once it is deleted (a 404 or a live `contact.deleted`). */
export function useContact(id: number) {
  return useQuery({
    queryKey: keys.detail(id),
    queryFn: (): Promise<Contact | null> =>
      api.get(id).catch((error: unknown) => {
        if (error instanceof ApiError && error.status === 404) return null;
        throw error;
      }),
  });
}

export function useHistory(id: number) {
  return useInfiniteQuery({
    queryKey: keys.history(id),
    queryFn: ({ pageParam }) => api.history(id, pageParam),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: nextCursor,
  });
}
