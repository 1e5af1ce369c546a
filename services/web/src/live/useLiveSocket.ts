import { useEffect, useRef, useState } from "react";
import type { ContactEvent, ServerMessage } from "../api/types";

export type LiveStatus = "connecting" | "live" | "reconnecting" | "offline";

/** The part of the browser's WebSocket this hook uses (a fake in tests). */
export type SocketLike = Pick<WebSocket, "onopen" | "onmessage" | "onclose" | "send" | "close">;

export interface LiveSocketOptions {
  onEvent: (event: ContactEvent) => void;
  /** Events were missed and cannot be replayed: reload what is shown. */
  onResync: () => void;
  url?: string;
  connect?: (url: string) => SocketLike;
  random?: () => number;
}

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
/** Failed attempts in a row after which we call ourselves offline (still retrying). */
const OFFLINE_AFTER = 4;

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
 * epoch) it calls `onResync`.
 */
export function useLiveSocket(options: LiveSocketOptions): LiveStatus {
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const latest = useRef(options);
  latest.current = options;

  useEffect(() => {
    const { url = defaultUrl(), connect = (u: string) => new WebSocket(u), random } = latest.current;
    let position: { epoch: string; seq: number } | null = null;
    let failures = 0;
    let socket: SocketLike | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let disposed = false;

    const handle = (message: ServerMessage) => {
      if (message.type === "hello") {
        if (position && position.epoch !== message.epoch) latest.current.onResync();
        if (!position || position.epoch !== message.epoch) {
          position = { epoch: message.epoch, seq: message.seq };
        }
        failures = 0;
        setStatus("live");
      } else if (message.type === "resync") {
        latest.current.onResync();
      } else if (position && message.seq > position.seq) {
        position.seq = message.seq;
        latest.current.onEvent(message);
      }
    };

    const open = () => {
      const ws = connect(url);
      socket = ws;
      ws.onopen = () => {
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
      ws.onclose = () => {
        if (disposed || socket !== ws) return;
        socket = null;
        failures += 1;
        setStatus(failures >= OFFLINE_AFTER || !navigator.onLine ? "offline" : "reconnecting");
        timer = setTimeout(open, backoffDelay(failures - 1, random));
      };
    };

    const reconnectNow = () => {
      if (socket) return;
      clearTimeout(timer);
      open();
    };

    open();
    window.addEventListener("online", reconnectNow);
    return () => {
      disposed = true;
      clearTimeout(timer);
      window.removeEventListener("online", reconnectNow);
      socket?.close();
    };
  }, []);

  return status;
}
