"""The fault matrix's workload: clients that write, command and watch the way careful clients do, and say what they saw.

- HTTP writers create contacts with an `Idempotency-Key` and PATCH their own contacts with `If-Match`.
  They retry on `503`, time-outs and dropped connections, with the same key or the same `If-Match`,
  until they get a definite answer or their patience (`PATIENCE_SECONDS`) runs out. They sign in with
  an editor's bearer token, which no fault may make the services refuse.
- A RabbitMQ client sends create commands with a `command_id` and `reply_to`, and sends the same
  command again when no reply comes.
- WebSocket clients follow the stream on several notifiers, with the same token (`?access_token=`);
  when a connection drops they reconnect, to the next notifier, and resume from the last `seq` they saw.

Every operation is recorded with its outcome: acknowledged (a definite yes), failed (a definite no) or
indeterminate (no definite answer within its patience). `tests.support.checker` reads the records.
"""

import asyncio
import contextlib
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pika
import requests
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from shared.broker import COMMANDS_EXCHANGE, connection_parameters
from tests.support.data import new_contact
from tests.support.identity import signed_in

PATIENCE_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 5.0


@dataclass
class Operation:
    """One logical write, however many attempts it took."""

    kind: str  # "create" (HTTP), "patch" (HTTP) or "command" (a create over RabbitMQ)
    value: str  # what it wrote that no other operation writes: the email of a create, the last name of a patch
    contact_id: int | None = None
    version: int | None = None  # the version it made, once acknowledged
    outcome: str = "pending"  # acknowledged, failed or indeterminate
    attempts: int = 0
    answers: list[str] = field(default_factory=list)  # each attempt's status code or error
    unavailable_at: list[float] = field(default_factory=list)  # when each attempt answered 503 was sent


@dataclass
class Watcher:
    """What one WebSocket client saw: ("event", seq), ("resync", seq), ("hello", seq), ("error", detail)."""

    name: str
    frames: list[tuple[str, Any]] = field(default_factory=list)
    connections: int = 0

    @property
    def last_seq(self) -> int | None:
        seqs = [value for kind, value in self.frames if kind in ("event", "resync", "hello")]
        return seqs[-1] if seqs else None


@dataclass
class Record:
    operations: list[Operation] = field(default_factory=list)
    watchers: list[Watcher] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)  # 5xx other than 503 with Retry-After
    refused: list[str] = field(default_factory=list)  # 401 and 403: the valid token refused
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, operation: Operation) -> Operation:
        with self.lock:
            self.operations.append(operation)
        return operation


class Workload:
    """Runs every client in threads of its own until `stop`; `record` holds what they saw."""

    def __init__(
        self,
        command_api: str,
        query_api: str,
        notifiers: list[str],
        amqp_url: str,
        token: str,
        writers: int = 4,
        watchers: int = 20,
    ) -> None:
        self.record = Record()
        self._command_api = command_api
        self._query_api = query_api
        self._notifiers = notifiers
        self._amqp_url = amqp_url
        self._token = token
        self._stopping = threading.Event()
        self._unwatching = threading.Event()
        self._writers = [threading.Thread(target=self._write, name=f"writer-{n}") for n in range(writers)]
        self._writers.append(threading.Thread(target=self._command, name="commander"))
        self._watchers = threading.Thread(target=asyncio.run, args=(self._watch(watchers),), name="watchers")
        self._watching = threading.Event()

    def start(self) -> "Workload":
        self._watchers.start()
        if not self._watching.wait(30):
            raise AssertionError("the WebSocket clients did not connect")
        for thread in self._writers:
            thread.start()
        return self

    def stop_writing(self) -> None:
        """Start no more operations; wait for those under way to end (at most their patience)."""
        self._stopping.set()
        for thread in self._writers:
            thread.join(PATIENCE_SECONDS + 30)

    def stop_watching(self, head: int, timeout: float) -> Record:
        """Let the WebSocket clients catch up with the stream's `head` (at most `timeout` s), then close them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any((w.last_seq or 0) < head for w in self.record.watchers):
            time.sleep(0.1)
        self._unwatching.set()
        self._watchers.join(30)
        return self.record

    # HTTP

    def _write(self) -> None:
        own: list[tuple[int, int]] = []  # (contact id, version) of the contacts this writer created
        with signed_in(requests.Session(), self._token) as session:
            while not self._stopping.is_set():
                if len(own) < 5 or random.random() < 0.3:
                    created = self._create(session)
                    if created.outcome == "acknowledged":
                        assert created.contact_id is not None and created.version is not None
                        own.append((created.contact_id, created.version))
                else:
                    index = random.randrange(len(own))
                    patched = self._patch(session, *own[index])
                    if patched.outcome == "acknowledged":
                        assert patched.contact_id is not None and patched.version is not None
                        own[index] = (patched.contact_id, patched.version)

    def _create(self, session: requests.Session) -> Operation:
        body = new_contact()
        operation = self.record.add(Operation("create", body["email"]))
        key = str(uuid.uuid4())
        reply = self._attempt(
            operation,
            lambda: session.post(
                f"{self._command_api}/api/contacts",
                json=body,
                headers={"Idempotency-Key": key},
                timeout=REQUEST_TIMEOUT_SECONDS,
            ),
        )
        if reply is not None and reply.status_code == 201:
            self._acknowledge(operation, reply.json())
        return operation

    def _patch(self, session: requests.Session, contact_id: int, version: int) -> Operation:
        value = f"Patched-{uuid.uuid4().hex[:12]}"
        operation = self.record.add(Operation("patch", value, contact_id))
        reply = self._attempt(
            operation,
            lambda: session.patch(
                f"{self._command_api}/api/contacts/{contact_id}",
                json={"last_name": value},
                headers={"If-Match": f'"{version}"'},
                timeout=REQUEST_TIMEOUT_SECONDS,
            ),
        )
        if reply is None:
            return operation
        if reply.status_code == 200:
            self._acknowledge(operation, reply.json())
        elif reply.status_code == 412 and operation.attempts > 1:
            # An earlier attempt may have been applied with its reply lost: the contact as it now is says.
            current = session.get(f"{self._query_api}/api/contacts/{contact_id}", timeout=REQUEST_TIMEOUT_SECONDS)
            if current.ok and current.json()["version"] == version + 1 and current.json()["last_name"] == value:
                self._acknowledge(operation, current.json())
        return operation

    def _attempt(self, operation: Operation, send: Any) -> requests.Response | None:
        """Send until a definite answer (a reply that is neither 503 nor another 5xx); None if patience ran out."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        while True:
            operation.attempts += 1
            sent = time.monotonic()
            try:
                reply: requests.Response = send()
                operation.answers.append(str(reply.status_code))
                if reply.status_code == 503:
                    operation.unavailable_at.append(sent)
                if reply.status_code in (401, 403):
                    with self.record.lock:
                        self.record.refused.append(f"{operation.kind} {reply.status_code}: {reply.text[:200]}")
                if reply.status_code < 500:
                    if reply.status_code >= 400:
                        operation.outcome = "failed"
                    return reply
                if reply.status_code != 503 or "Retry-After" not in reply.headers:
                    with self.record.lock:
                        self.record.server_errors.append(f"{operation.kind} {reply.status_code}: {reply.text[:200]}")
                pause = float(reply.headers.get("Retry-After", 1))
            except requests.RequestException as error:
                operation.answers.append(type(error).__name__)
                pause = 0.2
            if time.monotonic() + pause > deadline:
                operation.outcome = "indeterminate"
                return None
            time.sleep(pause * random.uniform(0.5, 1.0))

    @staticmethod
    def _acknowledge(operation: Operation, contact: dict[str, Any]) -> None:
        operation.contact_id, operation.version, operation.outcome = contact["id"], contact["version"], "acknowledged"

    # RabbitMQ

    def _command(self) -> None:
        channel: Any = None
        connection: pika.BlockingConnection | None = None
        replies: dict[str, dict[str, Any]] = {}
        reply_queue = ""
        while not self._stopping.is_set():
            command_id, data = str(uuid.uuid4()), new_contact()
            body = {"command": "create", "data": data, "command_id": command_id}
            operation = self.record.add(Operation("command", data["email"]))
            deadline = time.monotonic() + PATIENCE_SECONDS
            while operation.outcome == "pending":
                if time.monotonic() > deadline:
                    operation.outcome = "indeterminate"
                    break
                try:
                    if connection is None or not connection.is_open:
                        connection = pika.BlockingConnection(
                            connection_parameters(self._amqp_url, "fault-matrix.commands")
                        )
                        channel = connection.channel()
                        channel.confirm_delivery()
                        reply_queue = channel.queue_declare("", exclusive=True).method.queue
                        channel.basic_consume(
                            reply_queue,
                            lambda _c, _m, p, b: replies.__setitem__(p.correlation_id, json.loads(b)),
                            auto_ack=True,
                        )
                    operation.attempts += 1
                    properties = pika.BasicProperties(
                        reply_to=reply_queue, correlation_id=command_id, app_id="fault-matrix", delivery_mode=2
                    )
                    channel.basic_publish(COMMANDS_EXCHANGE, "", json.dumps(body).encode(), properties, mandatory=True)
                    waited = time.monotonic() + 10
                    while command_id not in replies and time.monotonic() < waited:
                        connection.process_data_events(time_limit=0.1)
                    reply = replies.pop(command_id, None)
                    if reply is None:
                        operation.answers.append("no reply")
                        continue
                    operation.answers.append("ok" if reply["ok"] else str(reply["status"]))
                    if reply["ok"]:
                        self._acknowledge(operation, reply["contact"])
                    else:
                        operation.outcome = "failed"
                except (pika.exceptions.AMQPError, OSError) as error:
                    operation.answers.append(type(error).__name__)
                    connection = None
                    time.sleep(0.5)
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.close()

    # WebSocket

    async def _watch(self, count: int) -> None:
        watchers = [Watcher(f"watcher-{n}") for n in range(count)]
        self.record.watchers = watchers
        connected = [asyncio.Event() for _ in watchers]
        tasks = [
            asyncio.create_task(self._follow(n, watcher, event))
            for n, (watcher, event) in enumerate(zip(watchers, connected, strict=True))
        ]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in connected)), 30)
        self._watching.set()
        await asyncio.to_thread(self._unwatching.wait)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, index: int, watcher: Watcher, connected: asyncio.Event) -> None:
        """Follow the stream; reconnect to the next notifier and resume after any loss."""
        epoch: str | None = None
        turn = index
        while True:
            base = self._notifiers[turn % len(self._notifiers)].replace("http://", "ws://")
            query = {"access_token": self._token}
            if epoch is not None:
                query |= {"epoch": epoch, "after": str(watcher.last_seq)}
            url = f"{base}/ws?{urlencode(query)}"
            try:
                async with connect(url, open_timeout=5, ping_interval=2, ping_timeout=4) as socket:
                    watcher.connections += 1
                    async for message in socket:
                        frame = json.loads(message)
                        kind = frame["type"]
                        if kind == "hello":
                            if epoch is None:
                                epoch = frame["epoch"]
                                watcher.frames.append(("hello", frame["seq"]))
                            connected.set()
                        elif kind == "resync":
                            epoch = frame["epoch"]
                            watcher.frames.append(("resync", frame["seq"]))
                        elif kind == "error":
                            watcher.frames.append(("error", frame.get("detail")))
                        else:
                            watcher.frames.append(("event", frame["seq"]))
            except InvalidStatus as refused:
                if refused.response.status_code in (401, 403):
                    watcher.frames.append(("error", f"the upgrade was refused: {refused.response.status_code}"))
            except (OSError, WebSocketException, TimeoutError):
                pass
            turn += 1
            await asyncio.sleep(random.uniform(0.1, 0.5))
