import { useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useRef, useState } from "react";
import { findContact, resyncAll } from "../api/cache";
import { checkSession, endSession } from "../api/session";
import { type ContactEvent, changedBy } from "../api/types";
import { applyEvent } from "./applyEvent";
import { useOwnChanges } from "./ownChanges";
import { type LiveStatus, type Presence, type PresenceMap, type SocketLike, useLiveSocket } from "./useLiveSocket";

/** A change someone else made, shown as a cue for a few seconds. */
export interface RemoteChange {
  op: "created" | "updated" | "deleted";
  /** Who made it: the actor's name, else the source ("console"). */
  by: string;
  /** For screen readers: "Ada Lovelace updated by Grace Hopper". */
  message: string;
}

const CUE_MS = 6000;

interface Options {
  /** False while nobody is signed in: the live stream waits, then resumes. */
  signedIn?: boolean;
  /** Where this tab is (told to everyone else), null: on no contact. */
  presence?: Presence | null;
  connect?: (url: string) => SocketLike;
}

/** Live events into the query cache, cues for the changes that were not ours, and who is on which contact. */
export function useLiveContacts({ signedIn, presence, connect }: Options = {}) {
  const client = useQueryClient();
  const own = useOwnChanges();
  const [changes, setChanges] = useState<ReadonlyMap<number, RemoteChange>>(new Map());
  const [announcement, setAnnouncement] = useState("");
  const [present, setPresent] = useState<PresenceMap>(new Map());
  const timers = useRef(new Map<number, ReturnType<typeof setTimeout>>());

  const onEvent = useCallback(
    (event: ContactEvent) => {
      const before = findContact(client, event.contact_id);
      const ours = own.isOwn(event);
      if (!applyEvent(client, event) || ours) return;
      const contact = event.contact ?? before;
      const name = contact ? `${contact.first_name} ${contact.last_name}` : `Contact ${event.contact_id}`;
      const op = event.type.slice("contact.".length) as RemoteChange["op"];
      const by = changedBy(event);
      const change = { op, by, message: `${name} ${op} by ${by}` };
      setAnnouncement(change.message);
      setChanges((old) => new Map(old).set(event.contact_id, change));
      clearTimeout(timers.current.get(event.contact_id));
      timers.current.set(
        event.contact_id,
        setTimeout(() => {
          timers.current.delete(event.contact_id);
          setChanges((old) => {
            const next = new Map(old);
            next.delete(event.contact_id);
            return next;
          });
        }, CUE_MS),
      );
    },
    [client, own],
  );

  useEffect(() => {
    const pending = timers.current;
    return () => pending.forEach(clearTimeout);
  }, []);

  const status: LiveStatus = useLiveSocket({
    onEvent,
    onResync: () => resyncAll(client),
    checkSession: () => checkSession(client),
    onSignedOut: () => endSession(client),
    signedIn,
    presence,
    onPresence: setPresent,
    connect,
  });
  return { status, changes, announcement, present };
}
