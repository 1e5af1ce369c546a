"""The S1/S3 baseline: a bare websockets `broadcast()` server fed from `contacts.events`, and nothing else.

`python -m bench.bare_broadcast PORT AMQP_URL`. Each message body is broadcast as it arrives (auto-ack,
no ordering checks, no resume buffer, no slow-client limit, no metrics or logs); compression is off, as
in the notifier, so both write the same bytes.
"""

import asyncio
import resource
import sys

import pika
from websockets.asyncio.server import ServerConnection, broadcast, serve

from shared.broker import EVENTS_EXCHANGE, connection_parameters, open_async_channel

QUEUE = "bench.bare-broadcast"


async def main(port: int, amqp_url: str) -> None:
    clients: set[ServerConnection] = set()

    async def handler(client: ServerConnection) -> None:
        clients.add(client)
        try:
            await client.wait_closed()
        finally:
            clients.discard(client)

    declaring = pika.BlockingConnection(connection_parameters(amqp_url, "bench.bare-declare"))
    channel = declaring.channel()
    channel.queue_declare(QUEUE, auto_delete=True)
    channel.queue_bind(QUEUE, EVENTS_EXCHANGE, "contact.#")
    _, consuming = await open_async_channel(amqp_url, "bench.bare")
    consuming.basic_consume(QUEUE, lambda _c, _m, _p, body: broadcast(clients, body, text=True), auto_ack=True)
    declaring.close()
    async with serve(handler, "127.0.0.1", port, compression=None):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
