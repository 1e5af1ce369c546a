"""Publishing with publisher confirms and `mandatory`: each publish is a future the broker settles."""

import asyncio

from pika import BasicProperties
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel
from pika.frame import Method
from pika.spec import Basic

from shared.broker import BrokerConnectionLost, open_async_channel


class PublishRefused(Exception):
    """The broker nacked the message or returned it as unroutable."""


class ConfirmingPublisher:
    """One channel in confirm mode. Many publishes may be in flight; the broker acks them in batches."""

    def __init__(self, connection: AsyncioConnection, channel: Channel) -> None:
        self._connection = connection
        self._channel = channel
        self._loop = asyncio.get_running_loop()
        self._in_flight: dict[int, asyncio.Future[None]] = {}
        self._tag_of_message: dict[str, int] = {}
        self._last_tag = 0
        channel.confirm_delivery(ack_nack_callback=self._on_confirm)
        channel.add_on_return_callback(self._on_return)
        channel.add_on_close_callback(self._on_close)

    @classmethod
    async def connect(cls, url: str) -> "ConfirmingPublisher":
        connection, channel = await open_async_channel(url, "command-api.relay")
        publisher = cls(connection, channel)
        await asyncio.sleep(0)  # let Confirm.SelectOk arrive before the first publish
        return publisher

    def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: BasicProperties
    ) -> "asyncio.Future[None]":
        if self._channel.is_closed:
            raise BrokerConnectionLost("channel closed")
        self._last_tag += 1
        settled: asyncio.Future[None] = self._loop.create_future()
        self._in_flight[self._last_tag] = settled
        if properties.message_id:
            self._tag_of_message[properties.message_id] = self._last_tag
        self._channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        return settled

    def close(self) -> None:
        if self._connection.is_open:
            self._connection.close()

    def _on_confirm(self, frame: Method) -> None:
        method = frame.method
        acked = isinstance(method, Basic.Ack)
        tags = (
            [tag for tag in self._in_flight if tag <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        )
        for tag in tags:
            settled = self._in_flight.pop(tag, None)
            if settled is None or settled.done():
                continue
            if acked:
                settled.set_result(None)
            else:
                settled.set_exception(PublishRefused("nacked by the broker"))
        if not self._in_flight:
            self._tag_of_message.clear()

    def _on_return(self, _channel: Channel, method: Basic.Return, properties: BasicProperties, _body: bytes) -> None:
        # A returned message is still acked afterwards; fail its future first so the ack cannot pass for success.
        tag = self._tag_of_message.pop(properties.message_id or "", None)
        settled = self._in_flight.get(tag) if tag is not None else None
        if settled is not None and not settled.done():
            settled.set_exception(PublishRefused(f"unroutable: {method.reply_text}"))

    def _on_close(self, _channel: Channel, reason: BaseException) -> None:
        for settled in self._in_flight.values():
            if not settled.done():
                settled.set_exception(BrokerConnectionLost(str(reason)))
        self._in_flight.clear()
