"""The notifier's decisions that need no network: what it holds, what it parses, whom it lets in."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from notifier import messages
from notifier.access import Client, Gate
from notifier.app import origin_allowed, routes
from notifier.consumer import EventConsumer, NotAnEvent, decode_event
from notifier.fanout import Fanout, MissedEvents
from notifier.recent import RecentEvents
from websockets.asyncio.server import Server
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from shared.identity import SESSION_COOKIE, Identity, Revocations, Tokens
from shared.settings import Settings

ALLOWED = frozenset({"http://localhost:8080"})


def held(capacity: int, seqs: list[int], epoch: str = "e") -> RecentEvents:
    recent = RecentEvents(capacity)
    recent.restart(epoch, 0)
    for seq in seqs:
        recent.append(seq, f"event {seq}".encode())
    return recent


def test_events_after_a_held_seq_come_in_order_across_gaps_and_in_chunks() -> None:
    recent = held(100, [1, 2, 5, 9, 10])
    assert recent.after("e", 2, 10) == [(5, b"event 5"), (9, b"event 9"), (10, b"event 10")]
    assert recent.after("e", 3, 2) == [(5, b"event 5"), (9, b"event 9")]
    assert recent.after("e", 10, 10) == []


def test_events_cannot_be_supplied_from_another_epoch_or_before_the_floor() -> None:
    recent = held(100, [4, 5])
    recent.restart("e", 3)
    recent.append(4, b"")
    assert recent.after("other", 3, 10) is None
    assert recent.after(None, 3, 10) is None
    assert recent.after("e", 2, 10) is None
    assert recent.after("e", 3, 10) == [(4, b"")]


def test_at_least_capacity_events_are_held_and_the_oldest_let_go_raise_the_floor() -> None:
    recent = held(16, list(range(1, 101)))
    assert 16 <= len(recent) <= 18
    assert recent.after("e", recent.floor, 1000) is not None
    assert recent.after("e", recent.floor - 1, 1000) is None
    assert [seq for seq, _ in recent.after("e", recent.floor, 1000) or []] == list(range(recent.floor + 1, 101))


def test_seen_events_are_those_held_or_older_than_what_is_held() -> None:
    recent = held(100, [3, 7])
    assert recent.has_seen(0) and recent.has_seen(3) and recent.has_seen(7)
    assert not recent.has_seen(5)


def test_a_duplicate_is_ignored_and_a_late_unseen_event_or_a_new_epoch_restarts_the_stream() -> None:
    async def scenario() -> None:
        fanout = Fanout(RecentEvents(100), client_buffer_bytes=1024)
        await fanout.start("e", 10, outbox({}))
        fanout.publish("e", 11, b"a")
        fanout.publish("e", 13, b"b")
        fanout.publish("e", 11, b"a")  # redelivered
        assert (fanout.recent.head, fanout.recent.floor, len(fanout.recent)) == (13, 10, 2)
        fanout.publish("e", 12, b"late")  # live clients already have 13
        assert (fanout.recent.head, fanout.recent.floor, len(fanout.recent)) == (13, 13, 0)
        fanout.publish("f", 1, b"new")
        assert (fanout.recent.epoch, fanout.recent.floor, fanout.recent.head) == ("f", 0, 1)

    asyncio.run(scenario())


def outbox(frames: dict[int, bytes], chunk: int = 2) -> MissedEvents:
    """What the outbox holds, read as `Outbox.events` reads it: in seq order, by chunks, stopping at a gap."""

    async def missed(after: int, until: int) -> AsyncIterator[list[tuple[int, bytes]]]:
        while after < until:
            end = min(after + chunk, until)
            if not all(seq in frames for seq in range(after + 1, end + 1)):
                return
            yield [(seq, frames[seq]) for seq in range(after + 1, end + 1)]
            after = end

    return missed


def test_resubscribing_keeps_the_held_events_and_reads_those_numbered_meanwhile_from_the_outbox() -> None:
    async def scenario() -> None:
        fanout = Fanout(RecentEvents(100), client_buffer_bytes=1024)
        await fanout.start("e", 10, outbox({}))
        fanout.publish("e", 11, b"a")
        await fanout.start("e", 11, outbox({}))
        assert fanout.recent.after("e", 10, 10) == [(11, b"a")]
        await fanout.start("e", 16, outbox({seq: f"missed {seq}".encode() for seq in range(12, 17)}))
        assert fanout.recent.after("e", 10, 10) == [
            (11, b"a"),
            *((seq, f"missed {seq}".encode()) for seq in range(12, 17)),
        ]
        fanout.publish("e", 13, b"its broker copy")
        fanout.publish("e", 17, b"b")
        assert (fanout.recent.floor, fanout.recent.head, len(fanout.recent)) == (10, 17, 7)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("epoch", "position", "held"),
    [
        ("e", 15, {12: b"", 14: b"", 15: b""}),  # 13 no longer kept
        ("e", 15, {}),
        ("e", 11 + 101, {seq: b"" for seq in range(12, 113)}),  # more than the instance holds
        ("e", 9, {}),  # the stream went back
        ("f", 3, {seq: b"" for seq in range(1, 4)}),  # another stream
    ],
)
def test_resubscribing_resyncs_when_the_outbox_cannot_supply_every_missed_event(
    epoch: str, position: int, held: dict[int, bytes]
) -> None:
    async def scenario() -> None:
        fanout = Fanout(RecentEvents(100), client_buffer_bytes=1024)
        await fanout.start("e", 10, outbox({}))
        fanout.publish("e", 11, b"a")
        await fanout.start(epoch, position, outbox(held))
        assert (fanout.recent.epoch, fanout.recent.floor, fanout.recent.head, len(fanout.recent)) == (
            epoch,
            position,
            position,
            0,
        )

    asyncio.run(scenario())


def test_a_resume_is_read_from_a_message_or_the_url() -> None:
    assert messages.parse_client_message('{"type": "resume", "epoch": "e", "after": 7}') == messages.Resume(
        epoch="e", after=7
    )
    assert messages.resume_from_query("epoch=e&after=7") == messages.Resume(epoch="e", after=7)
    assert messages.resume_from_query("") is None
    assert messages.resume_from_query("other=1") is None


@pytest.mark.parametrize(
    "message",
    [b"{}", "[", "null", '{"type": "resume"}', '{"type": "resume", "epoch": "e", "after": -1}', '{"type": "ping"}'],
)
def test_anything_but_a_valid_resume_is_a_client_message_error(message: str | bytes) -> None:
    with pytest.raises(messages.ClientMessageError):
        messages.parse_client_message(message)


def test_a_url_asking_half_a_resume_is_an_error() -> None:
    with pytest.raises(messages.ClientMessageError, match="epoch"):
        messages.resume_from_query("after=3")


def test_server_frames_are_json_with_their_type() -> None:
    assert json.loads(messages.hello("e", 3)) == {"type": "hello", "epoch": "e", "seq": 3}
    assert json.loads(messages.resync("e", 3)) == {"type": "resync", "epoch": "e", "seq": 3}
    assert json.loads(messages.error("why"))["type"] == "error"


@pytest.mark.parametrize(
    ("origins", "host", "allowed"),
    [
        ([], "notifier:8003", True),
        (["http://localhost:8080"], "notifier:8003", True),
        (["https://contacts.example.com"], "contacts.example.com", True),
        (["https://evil.example"], "contacts.example.com", False),
        (["null"], "contacts.example.com", False),
        (["http://localhost:8080", "https://evil.example"], "localhost:8080", False),
        (["http://[::1"], "contacts.example.com", False),  # not a URL
        (["https://contacts.example.com"], "[", False),
    ],
)
def test_origins_allowed_are_none_listed_or_same_host(origins: list[str], host: str, allowed: bool) -> None:
    assert origin_allowed(origins, host, ALLOWED) is allowed


def test_an_event_is_its_epoch_header_and_integer_seq() -> None:
    assert decode_event({"epoch": "e"}, b'{"seq": 4}') == ("e", 4)
    for headers, body in [
        ({}, b'{"seq": 4}'),
        ({"epoch": "e"}, b"\xff"),
        ({"epoch": "e"}, b'{"seq": "4"}'),
        ({"epoch": "e"}, b'{"seq": true}'),
        ({"epoch": "e"}, b"[4]"),
    ]:
        with pytest.raises(NotAnEvent):
            decode_event(headers, body)


SETTINGS = Settings(identity_signing_keys=["unit-test-key-" + "k" * 32])
TOKENS = Tokens(SETTINGS)
SIGNED_OUT = str(uuid.uuid4())


class SignedOut(Revocations):
    """The revocations of a process that has loaded them: here, one session signed out."""

    def revoked(self, session_id: str) -> bool:
        return session_id == SIGNED_OUT


def token(session_id: str | None = None, seconds: float = 60) -> str:
    return TOKENS.issue(
        user_id=7,
        username="ada",
        name="Ada Lovelace",
        role="viewer",
        session_id=session_id or str(uuid.uuid4()),
        expires_at=time.time() + seconds,
    )


def handshake(
    path: str = "/ws",
    protocol: str = "HTTP/1.1",
    hosts: tuple[str, ...] = ("notifier:8003",),
    signed_in: list[tuple[str, str]] | None = None,
) -> Request:
    """An upgrade request, signed in with a bearer token unless `signed_in` says how else (or `[]`: not)."""
    fields = [("Host", host) for host in hosts]
    fields += [("Authorization", f"Bearer {token()}")] if signed_in is None else signed_in
    return Request(path, Headers(fields), protocol=protocol)


def upgrade(request: Request, revocations: Revocations | None = None) -> tuple[Response | None, Client]:
    """What the notifier answers `request` with (None: it goes on to the upgrade), and the connection."""

    async def answer() -> tuple[Response | None, Client]:
        async def never(_: object) -> None:
            raise AssertionError("no server is started")

        client = Client(ServerProtocol(), Server(never, never))  # type: ignore[arg-type]
        fanout = Fanout(RecentEvents(10), client_buffer_bytes=1024)
        fanout.recent.restart("e", 0)
        identity = Identity(TOKENS, revocations or SignedOut(SETTINGS), frozenset())
        return routes(SETTINGS, fanout, EventConsumer(SETTINGS, fanout), Gate(identity))(client, request), client

    return asyncio.run(answer())


@pytest.mark.parametrize(
    "request_",
    [handshake(hosts=("notifier:8003", "evil.example")), handshake(protocol="HTTP/1.0")],
    ids=["two Host headers", "HTTP/1.0"],
)
def test_a_handshake_with_two_hosts_or_not_in_http_1_1_is_refused_with_400(request_: Request) -> None:
    response, _client = upgrade(request_)
    assert response is not None and response.status_code == 400


@pytest.mark.parametrize(
    "signed_in",
    [
        [("Authorization", "Bearer {token}")],
        [("Authorization", "bearer {token}"), ("Cookie", f"{SESSION_COOKIE}=not-a-token")],
        [("Cookie", f"theme=dark; {SESSION_COOKIE}={{token}}")],
    ],
    ids=["bearer", "bearer before a cookie", "cookie"],
)
def test_a_signed_in_handshake_goes_on_to_the_upgrade_as_its_caller(signed_in: list[tuple[str, str]]) -> None:
    given = token()
    response, client = upgrade(handshake(signed_in=[(name, value.format(token=given)) for name, value in signed_in]))
    assert response is None
    assert client.caller == TOKENS.verify(given)


def test_a_token_on_the_url_signs_the_upgrade_in() -> None:
    given = token()
    response, client = upgrade(handshake(f"/ws?epoch=e&after=0&access_token={given}", signed_in=[]))
    assert response is None and client.caller.session_id == TOKENS.verify(given).session_id


@pytest.mark.parametrize(
    ("signed_in", "challenge"),
    [
        ([], "Bearer"),
        ([("Cookie", "theme=dark")], "Bearer"),
        ([("Authorization", "Basic YWRhOnNlY3JldA==")], "Bearer"),
        ([("Authorization", "Bearer not-a-token")], 'Bearer error="invalid_token"'),
        ([("Authorization", f"Bearer {token(seconds=-5)}")], 'Bearer error="invalid_token"'),
        ([("Authorization", f"Bearer {token(SIGNED_OUT)}")], 'Bearer error="invalid_token"'),
        ([("Authorization", f"Bearer {token()}")] * 2, 'Bearer error="invalid_token"'),
        ([("Cookie", f'{SESSION_COOKIE}="unclosed')], "Bearer"),
    ],
    ids=["none", "other cookies", "basic", "garbage", "expired", "signed out", "two headers", "bad cookie"],
)
def test_a_handshake_without_valid_credentials_is_refused_with_401_and_a_bearer_challenge(
    signed_in: list[tuple[str, str]], challenge: str
) -> None:
    response, _client = upgrade(handshake(signed_in=signed_in))
    assert response is not None and response.status_code == 401
    assert response.headers["WWW-Authenticate"] == challenge


def test_a_handshake_before_the_revocations_are_known_is_refused_with_503() -> None:
    response, _client = upgrade(handshake(), Revocations(SETTINGS))  # never started: nothing loaded yet
    assert response is not None and response.status_code == 503
