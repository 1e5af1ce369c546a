import { createContext, useContext } from "react";
import type { ContactEvent } from "../api/types";

/**
 * Remembers this tab's own writes, so the live event they cause is not
 * announced as someone else's change. A write is "ours" while its request is
 * in flight (the event can beat the reply) and, once answered, by the exact
 * id and version it produced.
 */
export class OwnChanges {
  private readonly pending = new Map<string, number>();
  private readonly confirmed = new Set<string>();

  /** Runs a write for contact `id` (or, for a create, the new contact's `email`). */
  async track<T>(target: { id: number } | { email: string }, write: () => Promise<T>): Promise<T> {
    const key = "id" in target ? `id:${target.id}` : `email:${target.email.trim().toLowerCase()}`;
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    try {
      return await write();
    } finally {
      const left = (this.pending.get(key) ?? 1) - 1;
      if (left) this.pending.set(key, left);
      else this.pending.delete(key);
    }
  }

  /** Records that our write produced `version` of contact `id`. */
  confirm(id: number, version: number): void {
    this.confirmed.add(`${id}:${version}`);
  }

  isOwn(event: ContactEvent): boolean {
    const key = `${event.contact_id}:${event.version}`;
    if (this.confirmed.delete(key) || this.pending.has(`id:${event.contact_id}`)) return true;
    const email = event.contact?.email.toLowerCase();
    return event.type === "contact.created" && this.pending.has(`email:${email}`);
  }
}

export const OwnChangesContext = createContext(new OwnChanges());

export const useOwnChanges = () => useContext(OwnChangesContext);
