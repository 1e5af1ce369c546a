import { MutationCache, QueryCache, QueryClient, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, isRetryable, isUnauthorized } from "./client";
import type { User } from "./types";

export const sessionKey = ["session"] as const;

/** Who is signed in: the user, or `null` when nobody is (the server answered 401). */
export async function fetchSession(): Promise<User | null> {
  try {
    return (await api.session()).user;
  } catch (error) {
    if (isUnauthorized(error)) return null;
    throw error;
  }
}

export function useSession() {
  return useQuery({ queryKey: sessionKey, queryFn: fetchSession });
}

/** Asks the server whether the cookie still holds a session; `false` (and sign-in shows) once it does not. */
export async function checkSession(client: QueryClient): Promise<boolean> {
  return (await client.fetchQuery({ queryKey: sessionKey, queryFn: fetchSession, staleTime: 0 })) !== null;
}

/** Shows sign-in: the session ended, was revoked, or the user signed out. */
export const endSession = (client: QueryClient) => client.setQueryData<User | null>(sessionKey, null);

export function useSignIn() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ username, password }: { username: string; password: string }) => api.signIn(username, password),
    onSuccess: ({ user }) => {
      client.setQueryData<User | null>(sessionKey, user);
      // What failed while signed out loads again, so the user is back where they were.
      void client.refetchQueries({ predicate: (query) => query.state.status === "error" });
    },
  });
}

/** Signs out, then starts afresh from the sign-in page: nothing of the session stays in memory. */
export function useSignOut() {
  return useMutation({
    mutationFn: api.signOut,
    onSettled: (_, error) => {
      if (!error || isUnauthorized(error)) window.location.replace("/");
    },
  });
}

/**
 * The app's query client. Live events keep the cache fresh, so nothing refetches on its own; a 401
 * from any request shows sign-in (the app stays where it was beneath it), and only failures worth
 * repeating are retried.
 */
export function createQueryClient(): QueryClient {
  const onError = (error: unknown) => {
    if (isUnauthorized(error)) endSession(client);
  };
  const client: QueryClient = new QueryClient({
    queryCache: new QueryCache({ onError }),
    mutationCache: new MutationCache({ onError }),
    defaultOptions: {
      queries: {
        staleTime: Infinity,
        refetchOnWindowFocus: false,
        retry: (failures, error) => failures < 3 && isRetryable(error),
      },
    },
  });
  return client;
}
