"""The stream, fanned out: every event written once to every live client, never waiting on any of them.

A client is either catching up (its own task sends it held events, at its own pace) or live (in the
set each event is broadcast to). Both run on the one event loop, so a client joins the live set in the
same step as it is sent the last held event: nothing is skipped or sent twice between the two.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable

from prometheus_client import Counter, Gauge
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.frames import CloseCode

from notifier import messages
from notifier.recent import RecentEvents

log = logging.getLogger(__name__)

EVENTS_IN = Counter("notifier_events_received_total", "Events received from contacts.events")
EVENTS_OUT = Counter("notifier_events_sent_total", "Event frames written to clients, live or resuming")
DROPPED = Counter("notifier_clients_dropped_total", "Clients the notifier disconnected", ["reason"])
RESYNCS = Counter("notifier_resyncs_total", "resync frames sent to clients")
FILLED = Counter("notifier_events_filled_total", "Events read from the outbox that were missed while resubscribing")
HEAD = Gauge("notifier_stream_seq", "Latest seq of the stream this instance has")
LIVE = Gauge("notifier_live_clients", "Clients receiving events as they arrive")

#: Held events sent to a resuming client per look into the buffer.
CATCH_UP_CHUNK = 500

#: `missed(after, until)`: the events with seq in (after, until], in seq order, a chunk of (seq, frame) at a
#: time; it stops short when some of them are no longer kept.
MissedEvents = Callable[[int, int], AsyncIterator[list[tuple[int, bytes]]]]


class Fanout:
    def __init__(self, recent: RecentEvents, client_buffer_bytes: int) -> None:
        self.recent = recent
        self._live: set[ServerConnection] = set()
        self._buffer_limit = client_buffer_bytes
        self._advanced = asyncio.Event()
        self._closing: dict[ServerConnection, asyncio.Task[None]] = {}  # the slow clients being closed
        LIVE.set_function(lambda: len(self._live))

    async def start(self, epoch: str, seq: int, missed: MissedEvents) -> None:
        """The stream stands at `seq` of `epoch` as this instance (re)subscribes.

        Events numbered since the last one this instance has may have been published while it was not
        subscribed. It reads them with `missed` (from the outbox) and sends them on in order, exactly as
        if they had come from the broker; their broker copies, if any come, are duplicates. Only when it
        cannot (another epoch, more events than it holds, or some the outbox no longer keeps) does every
        client resync.
        """
        recent = self.recent
        if recent.epoch is None:
            recent.restart(epoch, seq)
        elif epoch != recent.epoch:
            self._restart(epoch, seq, "a new epoch began while resubscribing")
        elif not 0 <= seq - recent.head <= recent.capacity:
            self._restart(epoch, seq, f"the stream moved from {recent.head} to {seq}, beyond what is held")
        else:
            async for events in missed(recent.head, seq):
                for event_seq, frame in events:
                    self._deliver(event_seq, frame)
                FILLED.inc(len(events))
            if recent.head != seq:
                self._restart(epoch, seq, "the outbox no longer holds every event missed while resubscribing")
        HEAD.set(recent.head)

    def publish(self, epoch: str, seq: int, frame: bytes) -> None:
        """One event from the broker: drop a duplicate, else hold it and send it to every live client."""
        EVENTS_IN.inc()
        recent = self.recent
        if epoch != recent.epoch:
            self._restart(epoch, seq - 1, "a new epoch began")
        elif seq <= recent.head:
            if not recent.has_seen(seq):
                # Published after later ones (a relay republishing after a lost confirm): live clients
                # have passed it, so they cannot get it in order.
                self._restart(epoch, recent.head, f"event {seq} arrived after {recent.head}")
            return
        self._deliver(seq, frame)

    async def follow(self, client: ServerConnection, epoch: str | None, after: int) -> None:
        """Send `client` every event after `after` of `epoch`, then make it live.

        A position this instance cannot supply (another epoch, older than what it holds, or none)
        gets a resync first, and the client carries on from the stream's head.
        """
        while True:
            events = self.recent.after(epoch, after, CATCH_UP_CHUNK)
            if events is None:
                epoch, after = self.recent.epoch, self.recent.head
                assert epoch is not None
                RESYNCS.inc()
                await client.send(messages.resync(epoch, after))
            elif events:
                for _seq, frame in events:
                    await client.send(frame, text=True)  # waits while the client's buffer is full
                EVENTS_OUT.inc(len(events))
                after = events[-1][0]
            elif after == self.recent.head:
                self._live.add(client)
                return
            else:  # the client has seen events this instance has not received yet
                await self._advanced.wait()

    def leave(self, client: ServerConnection) -> None:
        self._live.discard(client)

    def _deliver(self, seq: int, frame: bytes) -> None:
        """Hold the next event of the stream and send it to every live client."""
        self.recent.append(seq, frame)
        HEAD.set(seq)
        self._push(frame)

    def broadcast(self, clients: Iterable[ServerConnection], frame: str | bytes) -> None:
        """Write `frame` to each of `clients` now, never waiting: one too slow for it is closed (1013) instead.

        Events go to the live clients this way; frames outside the stream (presence) to any client served.
        """
        limit = self._buffer_limit
        fast = []
        for client in clients:
            if client.transport.get_write_buffer_size() > limit:
                self._drop_slow(client)
            else:
                fast.append(client)
        broadcast(fast, frame, text=True)

    def _push(self, frame: bytes) -> None:
        self.broadcast(list(self._live), frame)
        EVENTS_OUT.inc(len(self._live))
        self._wake()

    def _restart(self, epoch: str, seq: int, reason: str) -> None:
        log.warning("clients resync: %s", reason, extra={"epoch": epoch, "seq": seq, "live": len(self._live)})
        self.recent.restart(epoch, seq)
        broadcast(self._live, messages.resync(epoch, seq))
        RESYNCS.inc(len(self._live))
        self._wake()

    def _drop_slow(self, client: ServerConnection) -> None:
        """Close a client whose unsent bytes passed the limit; it can reconnect and resume at its own pace."""
        self._live.discard(client)
        if client in self._closing:
            return
        DROPPED.labels("slow").inc()
        closing = asyncio.create_task(client.close(CloseCode.TRY_AGAIN_LATER, "client too slow"))
        self._closing[client] = closing
        closing.add_done_callback(lambda _: self._closing.pop(client, None))

    def _wake(self) -> None:
        self._advanced.set()
        self._advanced = asyncio.Event()
