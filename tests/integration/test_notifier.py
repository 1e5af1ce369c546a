"""The notifier with real WebSocket clients, fed by real RabbitMQ: order, resume, resync, slow clients, instances."""

import asyncio
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import jwt
import psycopg
import pytest
import requests
from notifier.consumer import Outbox
from websockets.exceptions import InvalidStatus

from shared.identity import SESSION_COOKIE
from tests.conftest import Launch
from tests.support.amqp import EventTap
from tests.support.data import new_contact
from tests.support.identity import create_user, token_for
from tests.support.infra import Infra
from tests.support.notifier import LiveClient, RawClient, RelayLike, listener_token, start_notifier
from tests.support.processes import LOGS, ServiceProcess, wait_until
from tests.support.tcp_proxy import TcpProxy, proxied

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def notifier(launch_for_session: Launch) -> str:
    return start_notifier(launch_for_session)[0]


@pytest.fixture
def relay_like(infra: Infra) -> Iterator[RelayLike]:
    publisher = RelayLike(infra.database_url, infra.amqp_url)
    yield publisher
    publisher.close()


def metric(base: str, name: str) -> float:
    """The value of one sample of the notifier's /metrics, e.g. `notifier_clients_dropped_total{reason="slow"}`."""
    text = requests.get(f"{base}/metrics", timeout=5).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_for_seq(base: str, seq: int) -> None:
    wait_until(lambda: metric(base, "notifier_stream_seq") >= seq, message=f"the notifier to receive seq {seq}")


def stream_epoch(infra: Infra) -> str:
    with psycopg.connect(infra.database_url) as conn:
        row = conn.execute("SELECT epoch::text FROM relay_state").fetchone()
    assert row is not None
    return str(row[0])


def seqs_of(frames: list[dict[str, Any]]) -> list[int]:
    return [frame["seq"] for frame in frames if frame["type"].startswith("contact.")]


def test_a_client_gets_hello_then_every_event_in_seq_order_with_the_body_as_published(
    notifier: str, command_api: str, relay: ServiceProcess, events: EventTap, http: requests.Session, infra: Infra
) -> None:
    client = LiveClient(notifier)
    hello = client.hello()
    assert hello["epoch"] == stream_epoch(infra) and isinstance(hello["seq"], int)

    contact = http.post(f"{command_api}/api/contacts", json=new_contact(), timeout=30).json()
    url = f"{command_api}/api/contacts/{contact['id']}"
    assert http.patch(url, json={"first_name": "Augusta"}, timeout=10).status_code == 200
    assert http.delete(url, timeout=10).status_code == 204
    published = [event.body for event in events.of_contact(contact["id"], 3)]

    frames = client.receive_until(published[-1]["seq"])
    assert [frame for frame in frames if frame.get("contact_id") == contact["id"]] == published
    assert seqs_of(frames) == sorted(set(seqs_of(frames))) and seqs_of(frames)[0] > hello["seq"]
    client.close()


@pytest.mark.parametrize("asked_by", ["url", "message"])
def test_a_client_that_resumes_gets_every_missed_event_once_in_order_before_live_ones(
    notifier: str, relay_like: RelayLike, asked_by: str
) -> None:
    client = LiveClient(notifier)
    hello = client.hello()
    [seen] = relay_like.publish()
    assert seqs_of(client.receive_until(seen)) == [seen]
    client.close()

    missed = relay_like.publish(3)
    wait_for_seq(notifier, missed[-1])
    if asked_by == "url":
        client = LiveClient(notifier, f"epoch={hello['epoch']}&after={seen}")
    else:
        client = LiveClient(notifier)
        client.send({"type": "resume", "epoch": hello["epoch"], "after": seen})
    assert client.hello()["seq"] == missed[-1]
    [live] = relay_like.publish()

    assert client.receive_until(live) == [json.loads(relay_like.bodies[seq]) for seq in [*missed, live]]
    client.close()


def test_a_resume_from_an_unknown_epoch_gets_resync_then_live_events(notifier: str, relay_like: RelayLike) -> None:
    client = LiveClient(notifier, f"epoch={uuid.uuid4()}&after=1")
    hello = client.hello()
    assert client.receive() == {"type": "resync", "epoch": hello["epoch"], "seq": hello["seq"]}
    [live] = relay_like.publish()
    assert seqs_of(client.receive_until(live)) == [live]
    client.close()


def test_a_resume_from_a_seq_older_than_the_held_events_gets_resync(launch: Launch, relay_like: RelayLike) -> None:
    base, _ = start_notifier(launch, "notifier-small", notifier_resume_events=2)
    published = relay_like.publish(5)
    wait_for_seq(base, published[-1])
    hello = LiveClient(base).hello()

    too_old = LiveClient(base, f"epoch={hello['epoch']}&after={published[1]}")
    too_old.hello()
    assert too_old.receive() == {"type": "resync", "epoch": hello["epoch"], "seq": published[-1]}
    held = LiveClient(base, f"epoch={hello['epoch']}&after={published[2]}")
    held.hello()
    assert seqs_of(held.receive_until(published[-1])) == published[3:]


def test_a_stalled_client_is_closed_with_1013_while_a_fast_one_receives_everything(
    launch: Launch, relay_like: RelayLike
) -> None:
    base, _ = start_notifier(
        launch, "notifier-slow", notifier_client_buffer_bytes=64 * 1024, notifier_close_timeout_seconds=60
    )
    host, port = urlsplit(base).hostname, urlsplit(base).port
    tiny = socket.socket()
    tiny.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    tiny.connect((host, port))
    stalled = LiveClient(base, sock=tiny, max_queue=1)  # reads nothing after its first frames
    fast = LiveClient(base)
    fast.hello()
    received: list[dict[str, Any]] = []

    published = relay_like.publish(1, padding=0)  # the stream's position, to know where the burst ends
    burst_end = published[-1] + 2000
    reader = threading.Thread(target=lambda: received.extend(fast.receive_until(burst_end, timeout=60)))
    reader.start()
    relay_like.publish(2000, padding=2000)
    reader.join()

    assert seqs_of(received) == list(range(published[0], burst_end + 1))
    wait_until(lambda: metric(base, 'notifier_clients_dropped_total{reason="slow"}') == 1, message="the drop")
    closing = stalled.close_frame()
    assert closing is not None and closing.code == 1013


def test_two_instances_each_deliver_every_event_and_a_client_resumes_on_the_other(
    launch: Launch, relay_like: RelayLike
) -> None:
    first, _ = start_notifier(launch, "notifier-1")
    second, _ = start_notifier(launch, "notifier-2")
    on_first, on_second = LiveClient(first), LiveClient(second)
    epoch = on_first.hello()["epoch"]
    assert on_second.hello()["epoch"] == epoch

    before = relay_like.publish(3)
    assert seqs_of(on_first.receive_until(before[-1])) == before
    assert seqs_of(on_second.receive_until(before[-1])) == before
    on_first.close()

    missed = relay_like.publish(2)
    wait_for_seq(second, missed[-1])
    moved = LiveClient(second, f"epoch={epoch}&after={before[-1]}")
    moved.hello()
    [live] = relay_like.publish()
    assert seqs_of(moved.receive_until(live)) == [*missed, live]
    assert seqs_of(on_second.receive_until(live)) == [*missed, live]


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        ("not json", "not JSON"),
        (b"\x00binary", "JSON text frames"),
        ('{"type": "subscribe"}', "the only message"),
        ('["resume"]', "the only message"),
        ('{"type": "resume", "epoch": "e", "after": "soon"}', "after"),
        ('{"type": "resume", "after": -1}', "epoch"),
    ],
)
def test_a_malformed_client_message_gets_an_error_frame_and_the_client_stays_connected(
    notifier: str, relay_like: RelayLike, message: str | bytes, detail: str
) -> None:
    client = LiveClient(notifier)
    client.hello()
    client.send(message)
    answer = client.receive()
    assert answer["type"] == "error" and detail in answer["detail"], answer
    [live] = relay_like.publish()
    assert seqs_of(client.receive_until(live)) == [live]
    client.close()


def test_a_message_over_the_size_cap_closes_the_connection_with_1009(notifier: str) -> None:
    client = LiveClient(notifier)
    client.hello()
    client.send("x" * 5000)
    closing = client.close_frame()
    assert closing is not None and closing.code == 1009


def test_a_message_on_the_exchange_that_is_not_an_event_is_dropped_and_the_next_event_still_arrives(
    notifier: str, relay_like: RelayLike
) -> None:
    client = LiveClient(notifier)
    client.hello()
    rejected = metric(notifier, "notifier_messages_rejected_total")
    relay_like.publish_raw(b"{not json", {"epoch": "x"})
    [live] = relay_like.publish()
    assert seqs_of(client.receive_until(live)) == [live]
    assert metric(notifier, "notifier_messages_rejected_total") == rejected + 1
    client.close()


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),
        ("http://localhost:8080", True),
        ("http://127.0.0.1:9999", True),  # the host the client connected to
        ("https://evil.example", False),
        ("null", False),
    ],
)
def test_only_allowed_origins_may_open_the_websocket(notifier: str, origin: str | None, allowed: bool) -> None:
    if allowed:
        LiveClient(notifier, origin=origin).close()
        return
    with pytest.raises(InvalidStatus) as refused:
        LiveClient(notifier, origin=origin)
    assert refused.value.response.status_code == 403


def test_a_malformed_resume_on_the_url_is_refused_with_400(notifier: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        LiveClient(notifier, "epoch=e&after=-5")
    assert refused.value.response.status_code == 400


def test_health_readiness_and_metrics_are_served_over_http(notifier: str) -> None:
    assert requests.get(f"{notifier}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{notifier}/readyz", timeout=5).status_code == 200
    metrics = requests.get(f"{notifier}/metrics", timeout=5)
    assert metrics.headers["Content-Type"].startswith("text/plain")
    for name in ("notifier_connections", "notifier_events_received_total", "notifier_events_sent_total"):
        assert name in metrics.text
    assert requests.get(f"{notifier}/elsewhere", timeout=5).status_code == 404


@pytest.fixture
def cut_off_notifier(launch: Launch, infra: Infra) -> Iterator[tuple[str, TcpProxy]]:
    """A notifier whose connection to RabbitMQ goes through a proxy the test can cut."""
    proxy, amqp_url = proxied(infra.amqp_url, 5672)
    base, _ = start_notifier(launch, "notifier-proxied", amqp_url=amqp_url, notifier_max_backoff_seconds=0.5)
    yield base, proxy
    proxy.close()


def write_contacts(http: requests.Session, command_api: str, count: int) -> None:
    for _ in range(count):
        assert http.post(f"{command_api}/api/contacts", json=new_contact(), timeout=30).status_code == 201


def relayed_seqs(infra: Infra, after: int) -> list[int]:
    """The seqs after `after` of every outbox row, once the relay has published them all."""
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        wait_until(lambda: conn.execute(unpublished).fetchone() == (0,), message="the relay to publish every event")
        return [row[0] for row in conn.execute("SELECT seq FROM outbox WHERE seq > %s ORDER BY seq", (after,))]


def as_sent(body: dict[str, Any]) -> str:
    """A JSON body as the relay writes it (compact, keys in their order), to compare bodies byte for byte."""
    return json.dumps(body, separators=(",", ":"))


def test_the_outbox_gives_missed_events_in_chunks_as_the_relay_published_them_and_stops_at_a_gap(
    command_api: str, relay: ServiceProcess, events: EventTap, http: requests.Session, infra: Infra
) -> None:
    start = max(relayed_seqs(infra, 0), default=0)
    write_contacts(http, command_api, 5)
    seqs = relayed_seqs(infra, start)
    published = {event.body["seq"]: as_sent(event.body) for event in events.wait_for(len(seqs), lambda _: True)}

    async def read(after: int, until: int) -> list[list[tuple[int, bytes]]]:
        async with await psycopg.AsyncConnection.connect(infra.database_url, autocommit=True) as conn:
            return [chunk async for chunk in Outbox(conn, chunk=2).events(after, until)]

    chunks = asyncio.run(read(seqs[0] - 1, seqs[-1]))  # before seqs[0] may lie seqs RelayLike numbered, rowless
    assert [[seq for seq, _ in chunk] for chunk in chunks] == [seqs[0:2], seqs[2:4], seqs[4:5]]
    assert [frame.decode() for chunk in chunks for _, frame in chunk] == [published[seq] for seq in seqs]
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM outbox WHERE seq = %s", (seqs[3],))
    assert [[seq for seq, _ in chunk] for chunk in asyncio.run(read(seqs[0] - 1, seqs[-1]))] == [seqs[0:2]]


def test_a_notifier_cut_off_from_the_broker_sends_the_missed_events_from_the_outbox_and_no_client_resyncs(
    cut_off_notifier: tuple[str, TcpProxy],
    command_api: str,
    relay: ServiceProcess,
    events: EventTap,
    http: requests.Session,
    infra: Infra,
) -> None:
    base, proxy = cut_off_notifier
    clients = [LiveClient(base) for _ in range(4)]
    [start] = {client.hello()["seq"] for client in clients}
    write_contacts(http, command_api, 2)
    proxy.cut()
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 503, message="the loss")
    write_contacts(http, command_api, 5)
    relayed_seqs(infra, start)  # published while the notifier's queue did not exist
    proxy.restore()
    write_contacts(http, command_api, 3)  # while it resubscribes
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=5).ok, message="the notifier to resubscribe")
    write_contacts(http, command_api, 2)
    expected = relayed_seqs(infra, start)

    published = {event.body["seq"]: as_sent(event.body) for event in events.wait_for(len(expected), lambda _: True)}
    for client in clients:
        frames = client.receive_until(expected[-1])
        assert [frame["type"] for frame in frames if not frame["type"].startswith("contact.")] == []
        assert seqs_of(frames) == expected
        assert [as_sent(frame) for frame in frames] == [published[seq] for seq in expected]
    assert metric(base, "notifier_events_filled_total") >= 5
    assert metric(base, "notifier_resyncs_total") == 0


def test_a_gap_the_outbox_no_longer_holds_still_gets_resync(
    cut_off_notifier: tuple[str, TcpProxy],
    command_api: str,
    relay: ServiceProcess,
    http: requests.Session,
    infra: Infra,
) -> None:
    base, proxy = cut_off_notifier
    client = LiveClient(base)
    start = client.hello()["seq"]
    proxy.cut()
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 503, message="the loss")
    write_contacts(http, command_api, 3)
    missed = relayed_seqs(infra, start)
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM outbox WHERE seq = %s", (missed[0],))  # as if pruned after its retention
    proxy.restore()
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=5).ok, message="the notifier to resubscribe")

    assert client.receive() == {"type": "resync", "epoch": stream_epoch(infra), "seq": missed[-1]}
    write_contacts(http, command_api, 1)
    [live] = relayed_seqs(infra, missed[-1])
    assert seqs_of(client.receive_until(live)) == [live]


def test_a_client_that_drops_its_connection_without_a_close_frame_is_no_error(launch: Launch) -> None:
    (LOGS / "notifier-dropped.log").unlink(missing_ok=True)  # this test's log, not an earlier run's
    base, process = start_notifier(launch, "notifier-dropped")
    client = RawClient(base)
    assert client.request() == 101
    assert client.answer() is not None  # the hello
    client.close()  # no close frame: a tab killed, a network gone
    wait_until(lambda: metric(base, "notifier_connections") == 0, message="the notifier to see the client go")
    LiveClient(base).close()  # a log line after the drop's, had it written one
    wait_until(lambda: metric(base, "notifier_connections") == 0, message="the second client to go")
    assert b'"level": "ERROR"' not in process.log_path.read_bytes()


@pytest.mark.parametrize(
    ("credentials", "challenge"),
    [
        ({}, "Bearer"),
        ({"token": "not-a-token"}, 'Bearer error="invalid_token"'),
        ({"token": listener_token(seconds=-5)}, 'Bearer error="invalid_token"'),
        ({"additional_headers": {"Authorization": "Bearer not-a-token"}}, 'Bearer error="invalid_token"'),
        ({"additional_headers": {"Cookie": f"{SESSION_COOKIE}=not-a-token"}}, 'Bearer error="invalid_token"'),
    ],
    ids=["none", "garbage on the URL", "expired", "garbage header", "garbage cookie"],
)
def test_an_upgrade_without_valid_credentials_is_refused_with_401_before_it_happens(
    notifier: str, credentials: dict[str, Any], challenge: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        LiveClient(notifier, **{"token": None, **credentials})
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["WWW-Authenticate"] == challenge


@pytest.mark.parametrize("carried_by", ["Authorization", "Cookie"])
def test_a_token_may_come_in_the_authorization_header_or_the_session_cookie(notifier: str, carried_by: str) -> None:
    token = listener_token()
    header = f"Bearer {token}" if carried_by == "Authorization" else f"{SESSION_COOKIE}={token}"
    client = LiveClient(notifier, token=None, additional_headers={carried_by: header})
    assert client.hello()["type"] == "hello"
    client.close()


def test_a_live_connection_is_closed_with_4001_when_its_token_expires(notifier: str) -> None:
    token = listener_token(seconds=2)
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    client = LiveClient(notifier, token=token)
    client.hello()
    closed = client.close_frame()
    assert closed is not None and (closed.code, closed.reason) == (4001, "token expired")
    assert time.time() >= expires_at - 0.1, "closed at the token's expiry, not before"


def test_a_live_connection_is_closed_with_4003_once_its_session_is_signed_out_and_its_token_refused_after(
    notifier: str, command_api: str, infra: Infra, relay_like: RelayLike
) -> None:
    user = create_user(infra.database_url, "viewer")
    token = token_for(user)
    signing_out, staying = LiveClient(notifier, token=token), LiveClient(notifier, token=token_for(user))
    signing_out.hello(), staying.hello()

    signed_out = requests.delete(f"{command_api}/api/session", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert signed_out.status_code == 204, signed_out.text
    closed = signing_out.close_frame()
    assert closed is not None and (closed.code, closed.reason) == (4003, "session revoked")

    [seq] = relay_like.publish()
    assert seqs_of(staying.receive_until(seq))[-1] == seq, "the user's other session is still live"
    staying.close()
    with pytest.raises(InvalidStatus) as refused:
        LiveClient(notifier, token=token)
    assert refused.value.response.status_code == 401


def test_the_live_connections_of_a_user_an_admin_disables_are_closed_with_4003(
    notifier: str, command_api: str, infra: Infra, admin_token: str
) -> None:
    user = create_user(infra.database_url, "viewer")
    clients = [LiveClient(notifier, token=token_for(user)) for _ in range(2)]
    for client in clients:
        client.hello()
    disabled = requests.patch(
        f"{command_api}/api/users/{user['id']}",
        json={"disabled": True},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )
    assert disabled.status_code == 200, disabled.text
    for client in clients:
        closed = client.close_frame()
        assert closed is not None and (closed.code, closed.reason) == (4003, "session revoked")
