import { useEffect, useRef, useState } from "react";
import type { ContactEvent, PresenceState, PresentUser, ServerMessage } from "../api/types";

export type LiveStatus = "connecting" | "live" | "reconnecting" | "offline" | "signed-out";

/** The contact this tab is on, and what it does there. */
export interface Presence {
  contact_id: number;
  state: PresenceState;
}

/** Who is on each contact someone is on (README, "Live updates"). */
export type PresenceMap = ReadonlyMap<number, PresentUser[]>;

/** The part of the browser's WebSocket this hook uses (a fake in tests). */
export type SocketLike = Pick<WebSocket, "onopen" | "onmessage" | "onclose" | "send" | "close">;

export interface LiveSocketOptions {
  onEvent: (event: ContactEvent) => void;
  /** Events were missed and cannot be replayed: reload what is shown. */
  onResync: () => void;
  /** Whether the session cookie still holds (the app shows sign-in when it does not). */
  checkSession?: () => Promise<boolean>;
  /** The session was revoked: sign in again. */
  onSignedOut?: () => void;
  /** False while nobody is signed in: the socket waits, and resumes once this is true again. */
  signedIn?: boolean;
  /** Where this tab is, told to the server now and on every reconnection; null: on no contact. */
  presence?: Presence | null;
  /** Who is on which contact, each time that changes (empty while not connected). */
  onPresence?: (presence: PresenceMap) => void;
  url?: string;
  connect?: (url: string) => SocketLike;
  random?: () => number;
}

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
/** Failed attempts in a row after which we call ourselves offline (still retrying). */
const OFFLINE_AFTER = 4;
/** The notifier's close codes (README): the token expired (refresh and resume), the session was revoked. */
export const TOKEN_EXPIRED = 4001;
export const SESSION_REVOKED = 4003;

/** Exponential backoff, capped, with "equal jitter" so tabs do not reconnect in lockstep. */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
  return ceiling / 2 + random() * (ceiling / 2);
}

function defaultUrl(): string {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/ws`;
}

/**
 * Keeps a WebSocket to the notifier open and feeds its events, in `seq`
 * order and each once, to `onEvent`. On reconnect it first asks to resume
 * after the last `seq` seen; when the server cannot (`resync`, or a new
 * epoch) it calls `onResync`. Closed because the token expired (4001), it checks the session
 * and resumes at once; revoked (4003), or refused before it opened while the session is gone, it
 * waits for `signedIn` and then resumes where it was. It tells the server where this tab is
 * (`presence`) once greeted on each connection, and each time that changes; it hands over who is
 * where (`onPresence`) as the server says, starting afresh on each connection.
 */
export function useLiveSocket(options: LiveSocketOptions): LiveStatus {
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const latest = useRef(options);
  latest.current = options;
  const resume = useRef<() => void>(() => {});
  const announce = useRef<() => void>(() => {});
  const signedIn = options.signedIn ?? true;

  useEffect(() => {
    const { url = defaultUrl(), connect = (u: string) => new WebSocket(u), random } = latest.current;
    let position: { epoch: string; seq: number } | null = null;
    let failures = 0;
    let socket: SocketLike | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let disposed = false;
    /** Who is where, as this connection was told; and where it was told this tab is (null: nowhere). */
    let present = new Map<number, PresentUser[]>();
    let announced: Presence | null = null;
    let greeted = false;

    const setPresent = (next: Map<number, PresentUser[]>) => {
      present = next;
      latest.current.onPresence?.(present);
    };

    /** Tell the server where this tab is now, if that is not what it was last told. */
    const sendPresence = () => {
      const wanted = latest.current.presence ?? null;
      if (!socket || !greeted || (wanted?.contact_id === announced?.contact_id && wanted?.state === announced?.state))
        return;
      if (announced && announced.contact_id !== wanted?.contact_id)
        socket.send(JSON.stringify({ type: "presence", contact_id: announced.contact_id, state: null }));
      if (wanted) socket.send(JSON.stringify({ type: "presence", ...wanted }));
      announced = wanted;
    };

    const handle = (message: ServerMessage) => {
      if (message.type === "hello") {
        if (position && position.epoch !== message.epoch) latest.current.onResync();
        if (!position || position.epoch !== message.epoch) {
          position = { epoch: message.epoch, seq: message.seq };
        }
        failures = 0;
        setStatus("live");
        greeted = true;
        sendPresence();
      } else if (message.type === "resync") {
        latest.current.onResync();
      } else if (message.type === "presence") {
        const next = new Map(present);
        if (message.users.length) next.set(message.contact_id, message.users);
        else next.delete(message.contact_id);
        setPresent(next);
      } else if (message.type === "error") {
        console.warn("live: the server refused a message:", message.detail);
      } else if (position && message.seq > position.seq) {
        position.seq = message.seq;
        latest.current.onEvent(message);
      }
    };

    const retryLater = () => {
      failures += 1;
      setStatus(failures >= OFFLINE_AFTER || !navigator.onLine ? "offline" : "reconnecting");
      timer = setTimeout(open, backoffDelay(failures - 1, random));
    };

    const waitForSignIn = () => {
      setStatus("signed-out");
      latest.current.onSignedOut?.();
    };

    /** After a close that may mean the session is gone: ask, then go on as `whenValid` says. */
    const afterCheck = (whenValid: () => void) => {
      const check = latest.current.checkSession;
      if (!check) return whenValid();
      check().then(
        (valid) => {
          if (!disposed) (valid ? whenValid : waitForSignIn)();
        },
        () => {
          if (!disposed) retryLater();
        },
      );
    };

    const open = () => {
      const ws = connect(url);
      let opened = false;
      socket = ws;
      greeted = false;
      announced = null;
      ws.onopen = () => {
        opened = true;
        if (position) ws.send(JSON.stringify({ type: "resume", epoch: position.epoch, after: position.seq }));
      };
      ws.onmessage = ({ data }) => {
        if (typeof data !== "string") return;
        try {
          handle(JSON.parse(data) as ServerMessage);
        } catch (error) {
          console.error("live: bad message", error);
        }
      };
      ws.onclose = ({ code }) => {
        if (disposed || socket !== ws) return;
        socket = null;
        if (present.size) setPresent(new Map());
        if (code === SESSION_REVOKED) waitForSignIn();
        else if (code === TOKEN_EXPIRED) afterCheck(open);
        else if (!opened) afterCheck(retryLater); // an upgrade refused with 401 looks like this
        else retryLater();
      };
    };

    const reconnectNow = () => {
      if (socket) return;
      clearTimeout(timer);
      open();
    };

    resume.current = reconnectNow;
    announce.current = sendPresence;
    open();
    window.addEventListener("online", reconnectNow);
    return () => {
      disposed = true;
      clearTimeout(timer);
      window.removeEventListener("online", reconnectNow);
      socket?.close();
    };
  }, []);

  // Signed in again: resume where the stream was left.
  useEffect(() => {
    if (signedIn) resume.current();
  }, [signedIn]);

  // This tab moved to another contact, or started or stopped editing.
  const { contact_id, state } = options.presence ?? {};
  useEffect(() => announce.current(), [contact_id, state]);

  return status;
}
