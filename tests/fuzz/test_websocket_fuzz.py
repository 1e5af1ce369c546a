"""WebSocket `/ws` under hostile input (SPEC §9): every frame, resume request, URL and handshake gets a documented
answer, and a client connected throughout notices nothing.

The answers: an `{"type": "error"}` message (the connection stays open), presence messages for a presence the
notifier can act on, a close code (1009 over
NOTIFIER_MAX_MESSAGE_BYTES, 1007 for text that is not UTF-8, 1002 for a frame against the protocol),
a resync or events for a resume the notifier can act on, an HTTP 4xx before the upgrade (401 when the
credentials are missing or garbage: every client here signs in with a token unless told not to), or, for bytes
that are not an HTTP request at all, the connection closed unanswered. Never a 5xx, never a crash.

FUZZ_SECONDS (default 60) scales the run: each property tries 2 * FUZZ_SECONDS examples, a few ms
each, so the module takes about 10 s at the default.
"""

import json
import math
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Launch
from tests.support.infra import Infra
from tests.support.notifier import LiveClient, RawClient, RelayLike, handshake_headers, start_notifier
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.integration

FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "60"))
FUZZ_EXAMPLES = max(10, int(2 * FUZZ_SECONDS))
MAX_MESSAGE_BYTES = 4096  # the notifier's default NOTIFIER_MAX_MESSAGE_BYTES
PRESENCE_RATE, PRESENCE_BURST = 5.0, 20  # NOTIFIER_PRESENCE_RATE_PER_SECOND and _BURST, as it is started with
TEXT, BINARY, CLOSE = 0x1, 0x2, 0x8

fuzzing = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Notifier:
    """The notifier under fuzzing, a bystander connected throughout, and what the bystander must receive."""

    def __init__(self, base: str, process: ServiceProcess, publisher: RelayLike) -> None:
        self.base = base
        self.process = process
        self.publisher = publisher
        self.bystander = LiveClient(base)
        self.bystander.hello()
        self.log_start = process.log_path.stat().st_size

    def assert_unharmed(self) -> None:
        """The bystander gets the events written meanwhile, in order, and nothing else but well-formed presence
        messages; nothing went wrong."""
        published = self.publisher.publish(3)
        frames = [frame for frame in self.bystander.receive_until(published[-1]) if not is_presence(frame)]
        assert [frame["seq"] for frame in frames][-3:] == published, frames
        assert all(frame["type"].startswith("contact.") for frame in frames), frames
        assert self.process.process is not None and self.process.process.poll() is None, "the notifier died"
        with self.process.log_path.open("rb") as log:
            log.seek(self.log_start)
            errors = [line for line in log if b'"level": "ERROR"' in line or b"Traceback" in line]
            self.log_start = log.tell()
        assert errors == [], errors[:3]


@pytest.fixture(scope="module")
def notifier(launch_for_session: Launch, infra: Infra) -> Iterator[Notifier]:
    base, process = start_notifier(
        launch_for_session,
        "notifier-fuzz",
        notifier_max_message_bytes=MAX_MESSAGE_BYTES,
        notifier_presence_rate_per_second=PRESENCE_RATE,
        notifier_presence_burst=PRESENCE_BURST,
    )
    publisher = RelayLike(infra.database_url, infra.amqp_url)
    yield Notifier(base, process, publisher)
    publisher.close()


@pytest.fixture(autouse=True)
def unharmed(notifier: Notifier) -> Iterator[None]:
    yield
    notifier.assert_unharmed()


def opened(notifier: Notifier, target: bytes = b"/ws") -> RawClient:
    client = RawClient(notifier.base)
    assert client.request(target) == 101
    hello = client.answer()
    assert hello is not None and json.loads(hello[1])["type"] == "hello"
    return client


def answer_of(client: RawClient) -> tuple[str, Any]:
    """("error", detail), ("resync", frame), ("event", frame) or ("close", code): what the server said next."""
    answer = client.answer()
    assert answer is not None, "closed without a close frame"
    opcode, payload = answer
    if opcode == CLOSE:
        return "close", int.from_bytes(payload[:2], "big")
    assert opcode == TEXT, answer
    frame = json.loads(payload)
    return ("error", frame["detail"]) if frame["type"] == "error" else (frame["type"], frame)


def is_client_message(text: str) -> bool:
    """Whether `text` is meant as a resume or a presence message (one the notifier may act on without an answer)."""
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("type") in ("resume", "presence")


def is_presence(frame: dict[str, Any]) -> bool:
    """A presence message as the notifier sends it (SPEC §11)."""
    if frame.get("type") != "presence" or set(frame) != {"type", "contact_id", "users"}:
        return False
    users = frame["users"]
    return isinstance(frame["contact_id"], int) and all(
        set(user) == {"id", "name", "state"} and user["state"] in ("viewing", "editing") for user in users
    )


@fuzzing
@given(st.text(max_size=MAX_MESSAGE_BYTES // 4).filter(lambda text: not is_client_message(text)))
def test_a_text_frame_that_is_not_a_client_message_gets_an_error_message(notifier: Notifier, text: str) -> None:
    client = opened(notifier)
    client.send_frame(TEXT, text.encode())
    assert answer_of(client)[0] == "error"
    client.close()


@fuzzing
@given(st.binary(max_size=MAX_MESSAGE_BYTES))
def test_a_binary_frame_gets_an_error_message(notifier: Notifier, data: bytes) -> None:
    client = opened(notifier)
    client.send_frame(BINARY, data)
    assert answer_of(client) == ("error", "messages are JSON text frames")
    client.close()


@fuzzing
@given(st.sampled_from([TEXT, BINARY]), st.integers(MAX_MESSAGE_BYTES + 1, 4 * MAX_MESSAGE_BYTES))
def test_a_frame_over_the_size_cap_closes_with_1009(notifier: Notifier, opcode: int, size: int) -> None:
    client = opened(notifier)
    client.send_frame(opcode, b"x" * size)
    assert answer_of(client) == ("close", 1009)
    client.close()


@fuzzing
@given(st.binary(min_size=1, max_size=MAX_MESSAGE_BYTES).filter(lambda data: not _utf8(data)))
def test_a_text_frame_that_is_not_utf8_closes_with_1007(notifier: Notifier, data: bytes) -> None:
    client = opened(notifier)
    client.send_frame(TEXT, data)
    assert answer_of(client) == ("close", 1007)
    client.close()


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@fuzzing
@given(st.integers(0, 15).filter(lambda opcode: opcode not in (0x1, 0x2, 0x8, 0x9, 0xA)), st.binary(max_size=100))
def test_a_frame_of_no_known_kind_closes_with_1002(notifier: Notifier, opcode: int, data: bytes) -> None:
    client = opened(notifier)
    client.send_frame(opcode, data, fin=opcode != 0)
    assert answer_of(client) == ("close", 1002)
    client.close()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(st.characters(codec=None, exclude_categories=())),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=5,
)


@fuzzing
@given(
    st.one_of(JSON_VALUES, st.just("00000000-0000-0000-0000-000000000000"), st.text(max_size=80)),
    st.one_of(JSON_VALUES, st.integers(-(2**70), 2**70)),
)
def test_a_garbage_resume_gets_an_error_or_is_acted_on(notifier: Notifier, epoch: Any, after: Any) -> None:
    client = opened(notifier)
    message = json.dumps({"type": "resume", "epoch": epoch, "after": after})
    client.send_frame(TEXT, message.encode())  # surrogates and NUL escaped, as JSON allows
    client.send_frame(TEXT, b"not json")  # whatever the resume did, this is answered with an error
    kind, _ = answer_of(client)
    while kind in ("resync", "contact.updated"):
        kind, _ = answer_of(client)
    assert kind == "error"
    client.close()


def errors_until_marker(client: RawClient) -> list[str]:
    """After messages and then `not json`: the errors answered before the marker's; anything else said
    meanwhile is a presence message."""
    client.send_frame(TEXT, b"not json")
    errors: list[str] = []
    while True:
        answer = client.answer()
        assert answer is not None and answer[0] == TEXT, answer
        frame = json.loads(answer[1])
        if frame["type"] == "error":
            if frame["detail"].startswith("not JSON"):
                return errors
            errors.append(frame["detail"])
        else:
            assert is_presence(frame), frame


@fuzzing
@given(
    st.one_of(JSON_VALUES, st.integers(-(2**70), 2**70)),
    st.one_of(JSON_VALUES, st.sampled_from(["viewing", "editing", None])),
    st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=2),
)
def test_a_garbage_presence_gets_an_error_or_is_acted_on(
    notifier: Notifier, contact_id: Any, state: Any, extra: dict[str, Any]
) -> None:
    client = opened(notifier)
    message = {**extra, "type": "presence", "contact_id": contact_id, "state": state}
    client.send_frame(TEXT, json.dumps(message).encode())
    assert len(errors_until_marker(client)) <= 1
    client.close()


@fuzzing
@given(st.lists(st.tuples(st.integers(1, 2**63 - 1), st.sampled_from(["viewing", None])), max_size=60))
def test_a_flood_of_presence_gets_errors_beyond_the_bounds_and_the_connection_stays(
    notifier: Notifier, flood: list[tuple[int, str | None]]
) -> None:
    client = opened(notifier)
    started = time.monotonic()
    for contact_id, state in flood:
        message = {"type": "presence", "contact_id": contact_id, "state": state}
        client.send_frame(TEXT, json.dumps(message).encode())
    errors = errors_until_marker(client)
    assert all(error.startswith(("too many presence messages", "presence on at most")) for error in errors), errors
    refilled = math.ceil(PRESENCE_RATE * (time.monotonic() - started))
    assert len(errors) >= len(flood) - PRESENCE_BURST - refilled, "a burst is taken at once, then the rate"
    client.close()


QUERY_CHARACTERS = st.characters(codec="ascii", exclude_characters="\r\n #")


QUERY_VALUES = st.text(QUERY_CHARACTERS, max_size=60).map(str.encode) | st.binary(max_size=60).map(
    lambda data: quote_from_bytes(data, safe="").encode()
)


@fuzzing
@given(QUERY_VALUES, QUERY_VALUES, st.sampled_from([b"epoch", b"after", b"access_token", b"x", b""]))
def test_garbage_on_the_url_gets_400_or_a_hello(notifier: Notifier, epoch: bytes, after: bytes, extra: bytes) -> None:
    client = RawClient(notifier.base)
    status = client.request(b"/ws?epoch=" + epoch.replace(b" ", b"%20") + b"&after=" + after + b"&" + extra + b"=1")
    assert status in (101, 400), status
    if status == 101:
        hello = client.answer()
        assert hello is not None and json.loads(hello[1])["type"] == "hello"
    client.close()


HEADER_NAMES = st.sampled_from(
    [b"Host", b"Origin", b"Upgrade", b"Connection", b"Sec-WebSocket-Key", b"Authorization", b"Cookie"]
) | st.binary(min_size=1, max_size=20)


@fuzzing
@given(st.lists(st.tuples(HEADER_NAMES, st.binary(max_size=60)), max_size=4), st.booleans())
def test_garbage_in_the_handshake_headers_gets_a_4xx_or_an_upgrade_never_a_5xx(
    notifier: Notifier, extra: list[tuple[bytes, bytes]], replace: bool
) -> None:
    headers = handshake_headers()
    if replace:
        names = {name.lower() for name, _ in extra}
        headers = [(name, value) for name, value in headers if name.lower() not in names]
    client = RawClient(notifier.base)
    status = client.request(b"/ws", headers + extra)
    assert status is None or status == 101 or 400 <= status < 500, status
    client.close()


@fuzzing
@given(st.sampled_from([b"HTTP/1.0", b"HTTP/1.1"]), st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"BREW"]))
def test_any_method_or_version_gets_a_4xx_or_an_upgrade(notifier: Notifier, version: bytes, method: bytes) -> None:
    client = RawClient(notifier.base)
    status = client.request(method=method, version=version)
    assert status == 101 if (method, version) == (b"GET", b"HTTP/1.1") else 400 <= (status or 0) < 500, status
    client.close()
