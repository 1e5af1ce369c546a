"""One client's connection: hello, then the events from where it asked to resume, presence, and its messages
answered."""

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from prometheus_client import Gauge
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.frames import CloseCode

from notifier import messages
from notifier.access import Client
from notifier.fanout import DROPPED, Fanout
from notifier.messages import ClientMessageError, PresenceSet
from notifier.presence import Presence

log = logging.getLogger(__name__)

CONNECTIONS = Gauge("notifier_connections", "Open WebSocket connections")


async def serve_client(client: Client, fanout: Fanout, presence: Presence) -> None:
    """Greet the client with the stream's position, then follow the stream for it until it goes.

    A resume is asked once: on the URL, or as the first message. A message asks it one round trip
    after the hello; if events were sent in between, the client is resumed only if it missed none,
    else it resyncs (it cannot get the older events after the newer ones). Presence messages come and go
    at any time, and do not count as the first message.
    """
    with CONNECTIONS.track_inprogress():
        recent = fanout.recent
        assert recent.epoch is not None, "the handshake is refused until the stream's position is known"
        greeted = (recent.epoch, recent.head)
        await client.send(messages.hello(*greeted))
        asked = messages.resume_from_query(urlsplit(client.request.path if client.request else "").query)
        following = _follow(fanout, client, (asked.epoch, asked.after) if asked else greeted)
        may_resume = asked is None
        try:
            presence.join(client)
            async for message in client:
                try:
                    said = messages.parse_client_message(message)
                except ClientMessageError as error:
                    await client.send(messages.error(str(error)))
                    continue
                if isinstance(said, PresenceSet):
                    refused = presence.announce(client, said)
                    if refused is not None:
                        await client.send(messages.error(refused))
                    continue
                if not may_resume:
                    await client.send(messages.error("resume is asked once: on the URL or as the first message"))
                    continue
                may_resume = False
                if (recent.epoch, recent.head) == greeted:
                    position: tuple[str | None, int] = (said.epoch, said.after)
                elif said.epoch == greeted[0] and said.after >= greeted[1]:
                    continue  # it missed nothing before the hello and is being sent everything since
                else:
                    position = (None, 0)  # a position no one can supply: resync
                fanout.leave(client)
                following.cancel()
                following = _follow(fanout, client, position)
        except ConnectionClosedError:
            pass  # gone without a close frame (a tab killed, a network lost): nothing went wrong here
        finally:
            presence.leave(client)
            fanout.leave(client)
            following.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await following
            sent = client.protocol.close_sent
            if sent is not None and sent.code == CloseCode.INTERNAL_ERROR:
                DROPPED.labels("unresponsive").inc()  # the keepalive ping went unanswered


def _follow(fanout: Fanout, client: ServerConnection, position: tuple[str | None, int]) -> "asyncio.Task[None]":
    following = asyncio.create_task(fanout.follow(client, *position))

    def failed(task: "asyncio.Task[None]") -> None:
        if task.cancelled() or isinstance(task.exception(), ConnectionClosed | None):
            return
        log.error("following the stream failed; dropping the client", exc_info=task.exception())
        client.transport.abort()

    following.add_done_callback(failed)
    return following
