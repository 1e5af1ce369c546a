import { type QueryClient, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "./client";
import type { NewUser, User, UserPatch } from "./types";

export const usersKey = ["users"] as const;

/** Every user, for admins. */
export function useUsers() {
  return useQuery({ queryKey: usersKey, queryFn: async () => (await api.users()).items });
}

/** Puts the server's answer for one user into the list. */
function store(client: QueryClient, user: User) {
  client.setQueryData<User[]>(usersKey, (users = []) =>
    users.some((u) => u.id === user.id) ? users.map((u) => (u.id === user.id ? user : u)) : [...users, user],
  );
}

export function useAddUser() {
  const client = useQueryClient();
  return useMutation({ mutationFn: (user: NewUser) => api.addUser(user), onSuccess: (user) => store(client, user) });
}

export function useUpdateUser() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ id, patch }: { id: number; patch: UserPatch }) => api.updateUser(id, patch),
    onSuccess: (user) => store(client, user),
  });
}

