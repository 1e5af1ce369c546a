"""AMQP messages as any client may write them, for the consumers' fuzzers: strategies, and a publisher that collects.

pika writes no double, no float and no timestamp outside Python's dates, but RabbitMQ forwards them from
other clients (the management console writes a JSON number with a fraction or an exponent as a double),
so a header value may be a `RawField`: a type letter and its bytes, written as they are.
"""

import contextlib
import json
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.data
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from shared.broker import DEAD_LETTER_EXCHANGE, declare_topology
from tests.support.amqp import BrokerClient
from tests.support.processes import TIMEOUT_FACTOR

#: hypothesis settings for a batch of messages against a real consumer: no deadline (a batch takes a broker's
#: and a database's time), and no shrinking (a batch is short, and a shrink step costs as much as a batch).
BATCH_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "phases": [Phase.explicit, Phase.reuse, Phase.generate],
    "print_blob": True,
}


@dataclass(frozen=True)
class RawField:
    """A field-table value as its type letter and bytes: a double, a float or a timestamp pika cannot write."""

    encoded: bytes


_pika_encode_value = pika.data.encode_value


def _encode_value(pieces: list[bytes], value: Any) -> int:
    if isinstance(value, RawField):
        pieces.append(value.encoded)
        return len(value.encoded)
    return int(_pika_encode_value(pieces, value))


@contextlib.contextmanager
def raw_fields() -> Iterator[None]:
    """While inside, pika writes a `RawField` header value byte for byte."""
    pika.data.encode_value = _encode_value
    try:
        yield
    finally:
        pika.data.encode_value = _pika_encode_value


#: Text of every kind, NUL, control characters and lone surrogates (JSON carries them as `\ud800` escapes) included.
any_text = st.text(st.characters(exclude_categories=()), max_size=30)

#: A shortstr property: UTF-8 text, or bytes that need not be UTF-8; at most 255 bytes on the wire.
short_strings = st.text(st.characters(codec="utf-8"), max_size=40) | st.binary(max_size=40)

raw_field_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: RawField(b"d" + struct.pack(">d", x))),
    st.floats(width=32, allow_nan=False, allow_infinity=False).map(lambda x: RawField(b"f" + struct.pack(">f", x))),
    st.integers(0, 2**64 - 1).map(lambda seconds: RawField(b"T" + struct.pack(">Q", seconds))),
)

_header_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.from_regex(r"\s*-?[0-9]{1,25}(\.[0-9]+)?\s*", fullmatch=True),
    st.binary(max_size=20),
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**6), max_value=10**6),
    raw_field_values,
)
header_values = st.recursive(
    _header_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def header_tables(names: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any] | None]:
    """An AMQP header table, or none: the names a consumer reads and others, with values of every field type."""
    keys = st.sampled_from(names) | st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
    return st.none() | st.dictionaries(keys, header_values, max_size=5)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)

#: Mistakes of a message typed by hand, applied to its JSON text.
hand_typed_mistakes: st.SearchStrategy[Callable[[str], str]] = st.sampled_from(
    [
        lambda text: text,
        lambda text: text.replace('"', "'"),
        lambda text: text.rstrip().removesuffix("}") + ",}",
        lambda text: text[: len(text) // 2],
        lambda text: text.replace(":", "=", 1),
        lambda text: text + "\n" + text,
        lambda text: "```json\n" + text + "\n```",
        lambda text: text.replace(" ", "\u00a0"),
    ]
)

#: How a body's JSON text is encoded, and the `content_encoding` its sender names (right, wrong or none).
CODECS = ["utf-8", "utf-8", "utf-16", "utf-16-le", "utf-32", "latin-1"]
CONTENT_ENCODINGS = [None, "utf-8", "UTF8", "gzip", "binary", "no-such-codec", "zlib", "utf-8\x00"]


@st.composite
def encoded(draw: st.DrawFn, text: str, careful: bool) -> tuple[bytes, str | None]:
    """A JSON text in some encoding, with a BOM or spacing around it, and the `content_encoding` said with it:
    when `careful`, the right one (or none, for a UTF that JSON's first bytes tell), else possibly any."""
    text = draw(st.sampled_from(["", "\n", "  ", "\ufeff"])) + text + draw(st.sampled_from(["", "\n", "\r\n"]))
    codec = draw(st.sampled_from(["utf-8"] * 6 + CODECS))
    body = text.encode(codec, errors="surrogatepass" if codec.startswith("utf") else "replace")
    if careful:
        return body, draw(st.sampled_from([codec, None] if codec.startswith("utf") else [codec]))
    return body, draw(st.sampled_from([codec, None, *CONTENT_ENCODINGS]))


def json_text(value: Any, indent: int | None, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only, indent=indent)


def nested(depth: int) -> bytes:
    """A body nested `depth` arrays deep."""
    return b'{"command": ' + b"[" * depth + b"]" * depth + b"}"


@dataclass
class Sent:
    """One fuzzed message as published, with `message_id` as the tag that finds what became of it."""

    tag: str
    body: bytes
    properties: pika.BasicProperties
    wants_reply: bool
    refused_by_broker: bool = False


@dataclass
class Collected:
    replies: list[tuple[pika.BasicProperties, bytes]] = field(default_factory=list)
    dead_letters: dict[str, list[tuple[pika.BasicProperties, bytes]]] = field(default_factory=dict)


class FuzzPublisher(BrokerClient):
    """Publishes fuzzed messages with confirms on a channel of their own (the broker closes it on some), and
    collects on another channel the replies to its own queue and every dead letter, by `message_id`."""

    def __init__(self, amqp_url: str) -> None:
        super().__init__(amqp_url)
        self._listening = self._connection.channel()
        declare_topology(self._listening)
        self.reply_queue = self._listening.queue_declare(queue="", exclusive=True).method.queue
        dead = self._listening.queue_declare(queue="", exclusive=True).method.queue
        self._listening.queue_bind(queue=dead, exchange=DEAD_LETTER_EXCHANGE, routing_key="")
        self.collected = Collected()
        self._listening.basic_consume(self.reply_queue, self._on_reply, auto_ack=True)
        self._listening.basic_consume(dead, self._on_dead_letter, auto_ack=True)
        self._publishing = self._open_publishing()

    def _open_publishing(self) -> BlockingChannel:
        channel = self._connection.channel()
        channel.confirm_delivery()
        return channel

    def publish(self, exchange: str, routing_key: str, sent: Sent) -> None:
        """Publish, confirmed; a message the broker itself refuses (a `user_id` not ours, a bad `expiration`)
        closes the channel: it is marked so, and publishing goes on on a new channel."""
        try:
            with raw_fields():
                self._publishing.basic_publish(exchange, routing_key, sent.body, sent.properties, mandatory=True)
        except ChannelClosedByBroker:
            sent.refused_by_broker = True
            self._publishing = self._open_publishing()

    def pump_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Take in replies and dead letters until `condition` holds (True) or `timeout` (scaled) passed (False)."""
        deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
        while not condition():
            if time.monotonic() > deadline:
                return False
            self._connection.process_data_events(time_limit=0.02)
        return True

    def _on_reply(self, _channel: Any, _method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        self.collected.replies.append((properties, body))

    def _on_dead_letter(self, _channel: Any, _method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        tag = properties.message_id if isinstance(properties.message_id, str) else ""
        self.collected.dead_letters.setdefault(tag, []).append((properties, body))
