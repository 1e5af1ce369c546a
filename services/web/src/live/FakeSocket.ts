import { act } from "@testing-library/react";
import type { SocketLike } from "./useLiveSocket";

/** A WebSocket stand-in the test drives by hand. */
export class FakeSocket implements SocketLike {
  static all: FakeSocket[] = [];
  onopen: WebSocket["onopen"] = null;
  onmessage: WebSocket["onmessage"] = null;
  onclose: WebSocket["onclose"] = null;
  sent: unknown[] = [];
  closed = false;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  send(data: string) {
    this.sent.push(JSON.parse(data));
  }

  close() {
    this.closed = true;
  }

  /** Server side: accept, then say hello. */
  accept(epoch: string, seq: number) {
    act(() => {
      this.onopen?.call(this as unknown as WebSocket, new Event("open"));
      this.receive({ type: "hello", epoch, seq });
    });
  }

  receive(message: object) {
    act(() => {
      this.onmessage?.call(this as unknown as WebSocket, new MessageEvent("message", { data: JSON.stringify(message) }));
    });
  }

  /** The connection ends: lost (1006), or closed by the server with one of its codes. */
  drop(code = 1006) {
    act(() => {
      this.onclose?.call(this as unknown as WebSocket, new CloseEvent("close", { code }));
    });
  }
}
