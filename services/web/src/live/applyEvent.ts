import type { QueryClient } from "@tanstack/react-query";
import { storeVersion } from "../api/cache";
import type { ContactEvent } from "../api/types";

/**
 * Applies one live event to the query cache, without refetching.
 * Returns false, changing nothing, when the cache already holds this version
 * or a newer one (a replay, or our own write whose reply came first).
 */
export function applyEvent(client: QueryClient, event: ContactEvent): boolean {
  if (event.type === "contact.deleted") {
    return storeVersion(client, event.contact_id, event.version, null);
  }
  return event.contact !== null && storeVersion(client, event.contact_id, event.version, event.contact);
}
