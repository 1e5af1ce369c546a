import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useOwnChanges } from "../live/ownChanges";
import { storeVersion } from "./cache";
import { api, isRetryable } from "./client";
import type { Contact, ContactInput } from "./types";

/**
 * POST a new contact. The server answers ~20 s later by design; the contact
 * shows up at once through its live event. Retries reuse the Idempotency-Key,
 * so a lost reply never makes a duplicate.
 */
export function useCreateContact() {
  const client = useQueryClient();
  const own = useOwnChanges();
  return useMutation({
    mutationFn: ({ input, idempotencyKey }: { input: ContactInput; idempotencyKey: string }) =>
      own.track({ email: input.email }, async () => {
        const contact = await api.create(input, idempotencyKey);
        own.confirm(contact.id, contact.version);
        return contact;
      }),
    retry: (failures, error) => failures < 3 && isRetryable(error),
    onSuccess: (contact) => storeVersion(client, contact.id, contact.version, contact),
  });
}

export function useUpdateContact() {
  const client = useQueryClient();
  const own = useOwnChanges();
  return useMutation({
    mutationFn: ({ base, patch }: { base: Contact; patch: Partial<ContactInput> }) =>
      own.track({ id: base.id }, async () => {
        const contact = await api.update(base.id, base.version, patch);
        own.confirm(contact.id, contact.version);
        return contact;
      }),
    onSuccess: (contact) => storeVersion(client, contact.id, contact.version, contact),
  });
}

export function useDeleteContact() {
  const client = useQueryClient();
  const own = useOwnChanges();
  return useMutation({
    mutationFn: (base: Contact) =>
      own.track({ id: base.id }, async () => {
        await api.remove(base.id, base.version);
        own.confirm(base.id, base.version + 1);
      }),
    onSuccess: (_, base) => storeVersion(client, base.id, base.version + 1, null),
  });
}
