"""`contacts.presence`: how the notifier instances tell each other who is on which contact (presence.py).

A fanout exchange, transient like everything on it: declared by each instance (not durable: nothing on it
outlives the broker), each instance's own exclusive, auto-delete queue bound to it, messages non-persistent
and expiring after their TTL, consumed without acks. Each message is one `Announcement` as JSON. While the
connection is down this instance's announcements are dropped and the others' run out; on each (re)connection
it announces all of its presence at once.
"""

import logging
from typing import Any

import pika
from pika.channel import Channel
from pika.exceptions import AMQPError
from pika.spec import Basic, BasicProperties
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, wait_random_exponential

from notifier.presence import Announcement, Presence
from shared.broker import PRESENCE_EXCHANGE, BrokerConnectionLost, closing, open_async_channel, rpc

log = logging.getLogger(__name__)

#: Announcements this instance's queue holds at most; beyond it the oldest go (they are superseded anyway).
QUEUE_LIMIT = 10_000

SUBSCRIBED = Gauge("notifier_presence_subscribed", "1 while bound to contacts.presence")
REJECTED = Counter("notifier_presence_rejected_total", "Messages on contacts.presence that are not announcements")


class PresenceBus:
    def __init__(self, amqp_url: str, presence: Presence, max_backoff_seconds: float) -> None:
        self._url = amqp_url
        self._presence = presence
        self._max_backoff = max_backoff_seconds
        self._properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Transient,
            expiration=str(int(presence.ttl * 1000)),
            app_id="notifier",
        )

    async def run(self) -> None:
        """Stay bound to `contacts.presence`: reconnect after any loss with capped, jittered backoff."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((AMQPError, BrokerConnectionLost, OSError, TimeoutError)),
            wait=wait_random_exponential(multiplier=0.25, max=self._max_backoff),
            before_sleep=before_sleep_log(log, logging.WARNING),
        )
        await retrying(self._bind)

    async def _bind(self) -> None:
        """Bind, announce, and relay announcements both ways until the connection is lost (ends by raising)."""
        connection, channel = await open_async_channel(self._url, "notifier-presence")
        lost = closing(channel)
        try:
            await rpc(lost, channel.exchange_declare, exchange=PRESENCE_EXCHANGE, exchange_type="fanout", durable=False)
            arguments = {"x-max-length": QUEUE_LIMIT, "x-message-ttl": int(self._presence.ttl * 1000)}
            declared = await rpc(
                lost, channel.queue_declare, queue="", exclusive=True, auto_delete=True, arguments=arguments
            )
            queue = declared.method.queue
            await rpc(lost, channel.queue_bind, queue=queue, exchange=PRESENCE_EXCHANGE, routing_key="")
            channel.basic_consume(queue, self._on_message, auto_ack=True)
            self._presence.publish = lambda announcement: self._publish(channel, announcement)
            for announcement in self._presence.announcements():
                self._publish(channel, announcement)
            SUBSCRIBED.set(1)
            log.info("bound to %s", PRESENCE_EXCHANGE, extra={"queue": queue, "instance": self._presence.instance})
            raise BrokerConnectionLost(await lost)
        finally:
            self._presence.publish = lambda _announcement: None
            SUBSCRIBED.set(0)
            if connection.is_open:
                connection.close()

    def _publish(self, channel: Channel, announcement: Announcement) -> None:
        if channel.is_open:
            channel.basic_publish(PRESENCE_EXCHANGE, "", announcement.model_dump_json().encode(), self._properties)

    def _on_message(self, _channel: Channel, _method: Basic.Deliver, properties: BasicProperties, body: bytes) -> None:
        try:
            announcement = Announcement.model_validate_json(body)
        except ValidationError as error:
            REJECTED.inc()
            log.warning(
                "dropped a message that is not an announcement: %s", error.errors()[0]["msg"], extra=_who(properties)
            )
            return
        self._presence.heard(announcement)


def _who(properties: BasicProperties) -> dict[str, Any]:
    return {"app_id": properties.app_id, "user_id": properties.user_id}
