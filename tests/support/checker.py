"""The fault matrix's checker, in the manner of Jepsen's: after a fault, read what every side saw and count.

The sides are the clients' own records (`tests.support.workload`), PostgreSQL (the outbox, the contacts,
their history), a tap queue of the checker's own on `contacts.events`, and the queues' depths. Nothing
is taken from the services' word about themselves.
"""

import json
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import pika
import psycopg
from psycopg.rows import dict_row

from shared.broker import COMMANDS_QUEUE, DEAD_LETTER_QUEUE, EVENTS_EXCHANGE, HISTORY_QUEUE, connection_parameters
from tests.support.workload import Record, Watcher

TAP_QUEUE = "fault-matrix.tap"


@dataclass
class Tapped:
    event_id: str
    seq: int
    contact_id: int
    version: int


class Tap:
    """Every event on `contacts.events`, kept by a quorum queue of its own that outlives a broker restart (and,
    on a cluster, the loss of a node)."""

    def __init__(self, amqp_url: str) -> None:
        self._url = amqp_url
        self.events: list[Tapped] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._declare()
        self._thread = threading.Thread(target=self._consume, name="tap", daemon=True)
        self._thread.start()

    def _declare(self) -> None:
        connection = pika.BlockingConnection(connection_parameters(self._url, "fault-matrix.tap"))
        channel = connection.channel()
        channel.exchange_declare(EVENTS_EXCHANGE, "topic", durable=True)
        channel.queue_declare(TAP_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})  # outlives a node
        channel.queue_bind(TAP_QUEUE, EVENTS_EXCHANGE, "#")
        connection.close()

    def _consume(self) -> None:
        while not self._stop.is_set():
            try:
                connection = pika.BlockingConnection(connection_parameters(self._url, "fault-matrix.tap"))
                channel = connection.channel()
                channel.basic_qos(prefetch_count=500)
                channel.basic_consume(TAP_QUEUE, self._on_message)
                while not self._stop.is_set():
                    connection.process_data_events(time_limit=0.2)
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                time.sleep(0.5)

    def _on_message(self, channel: Any, method: Any, _properties: Any, body: bytes) -> None:
        event = json.loads(body)
        with self._lock:
            self.events.append(Tapped(event["event_id"], event["seq"], event["contact_id"], event["version"]))
        channel.basic_ack(method.delivery_tag)

    def snapshot(self) -> list[Tapped]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Window:
    """Where the system stood when a fault's run began."""

    outbox_id: int
    dead_letters: int
    started: float = field(default_factory=time.monotonic)


#: The counts that SPEC §9 wants to be 0 after every fault.
TARGETS_OF_ZERO = (
    "indeterminate", "lost", "history_missing", "events_missing", "doubled", "ws_gaps", "ws_behind", "stuck",
    "server_errors", "unavailable_after_healing", "refused",
)  # fmt: skip


@dataclass
class Report:
    """One fault's counts (docs/reliability.md has a column for each)."""

    fault: str
    attempted: int = 0
    acknowledged: int = 0
    failed: int = 0
    indeterminate: int = 0
    lost: int = 0  # acknowledged writes whose version is not stored as acknowledged
    history_missing: int = 0  # versions without their one history row
    events_missing: int = 0  # outbox rows never seen on contacts.events
    doubled: int = 0  # a version delivered with two different event_ids or seqs
    redelivered: int = 0  # the same event delivered again (allowed)
    ws_gaps: int = 0  # a client missed a seq, got one twice or out of order, without a resync
    ws_resyncs: int = 0
    ws_behind: int = 0  # clients that never caught up with the stream's head
    ws_reconnects: int = 0
    stuck: int = 0  # messages left in the service queues, valid messages dead-lettered
    server_errors: int = 0  # 5xx other than 503 with Retry-After
    refused: int = 0  # 401 or 403 to the workload's valid token: a fault must not cost a client its sign-in
    unavailable_after_healing: int = 0  # 503s to requests sent once the fault had healed
    recovery_seconds: float | None = None  # from the fault's healing to every process ready
    last_ready: str = ""  # the processes that were ready last
    first_write: str = ""  # the answer to the first write once every process was ready: 201 is the target
    first_read: str = ""  # the answer to the first read of query-api once the fault was over: 200 is the target
    notes: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        return asdict(self)

    def violations(self, recovery_limit: float) -> list[str]:
        """What breaks SPEC §9's targets."""
        broken = [f"{name} = {getattr(self, name)}" for name in TARGETS_OF_ZERO if getattr(self, name)]
        if self.recovery_seconds is None or self.recovery_seconds > recovery_limit:
            broken.append(f"recovery_seconds = {self.recovery_seconds} (limit {recovery_limit})")
        if self.first_write != "201":
            broken.append(f"first_write = {self.first_write}")
        if self.first_read != "200":
            broken.append(f"first_read = {self.first_read}")
        return broken + self.notes


class Checker:
    def __init__(self, database_url: str, amqp_url: str, tap: Tap) -> None:
        self._database_url = database_url
        self._amqp_url = amqp_url
        self._tap = tap

    def open_window(self) -> Window:
        with psycopg.connect(self._database_url) as conn:
            row = conn.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()
        assert row is not None
        return Window(int(row[0]), self._depths()[DEAD_LETTER_QUEUE])

    def head(self) -> int:
        with psycopg.connect(self._database_url) as conn:
            row = conn.execute("SELECT last_seq FROM relay_state").fetchone()
        assert row is not None
        return int(row[0])

    def settled(self, window: Window) -> bool:
        """Every event of the window published, tapped and recorded, and the service queues empty."""
        with psycopg.connect(self._database_url) as conn:
            row = conn.execute(
                """SELECT count(*) FILTER (WHERE o.published_at IS NULL),
                          count(*) FILTER (WHERE v.event_id IS NULL), count(*)
                   FROM outbox o LEFT JOIN contact_versions v USING (event_id) WHERE o.id > %s""",
                (window.outbox_id,),
            ).fetchone()
        assert row is not None
        unpublished, unrecorded, total = row
        depths = self._depths()
        return (
            unpublished == 0
            and unrecorded == 0
            and len({e.event_id for e in self._tap.snapshot()}) >= total
            and depths[HISTORY_QUEUE] == 0
            and depths[COMMANDS_QUEUE] == 0
        )

    def report(self, fault: str, window: Window, record: Record, head: int, healed: float) -> Report:
        """What the fault cost; `healed` is when it was over (time.monotonic)."""
        report = Report(fault)
        self._count_operations(report, record)
        report.unavailable_after_healing = sum(
            sent >= healed for operation in record.operations for sent in operation.unavailable_at
        )
        with psycopg.connect(self._database_url, row_factory=dict_row) as conn:
            outbox = conn.execute(
                """SELECT o.event_id::text, o.seq, (o.payload->>'contact_id')::bigint AS contact_id,
                          (o.payload->>'version')::int AS version, o.published_at IS NOT NULL AS published,
                          v.event_id::text AS recorded_event, v.seq AS recorded_seq
                   FROM outbox o LEFT JOIN contact_versions v
                     ON v.contact_id = (o.payload->>'contact_id')::bigint AND v.version = (o.payload->>'version')::int
                   WHERE o.id > %s""",
                (window.outbox_id,),
            ).fetchall()
            self._count_lost(report, record, conn)
        ours = {row["event_id"] for row in outbox}
        tapped = [event for event in self._tap.snapshot() if event.event_id in ours]
        by_event = Counter(e.event_id for e in tapped)
        report.redelivered = sum(n - 1 for n in by_event.values())
        versions: dict[tuple[int, int], set[tuple[str, int]]] = defaultdict(set)
        for event in tapped:
            versions[(event.contact_id, event.version)].add((event.event_id, event.seq))
        for row in outbox:
            if row["recorded_event"] != row["event_id"] or row["recorded_seq"] != row["seq"]:
                report.history_missing += 1
            if row["event_id"] not in by_event:
                report.events_missing += 1
            if len(versions.get((row["contact_id"], row["version"]), ())) > 1:
                report.doubled += 1
        for watcher in record.watchers:
            self._count_watcher(report, watcher)
        report.ws_behind = sum((watcher.last_seq or 0) < head for watcher in record.watchers)
        depths = self._depths()
        report.stuck = depths[HISTORY_QUEUE] + depths[COMMANDS_QUEUE] + depths[DEAD_LETTER_QUEUE] - window.dead_letters
        report.server_errors = len(record.server_errors)
        report.refused = len(record.refused)
        report.notes.extend(record.server_errors[:5] + record.refused[:5])
        return report

    @staticmethod
    def _count_operations(report: Report, record: Record) -> None:
        outcomes = Counter(operation.outcome for operation in record.operations)
        report.attempted = len(record.operations)
        report.acknowledged = outcomes["acknowledged"]
        report.failed = outcomes["failed"]
        report.indeterminate = outcomes["indeterminate"] + outcomes["pending"]

    @staticmethod
    def _count_lost(report: Report, record: Record, conn: psycopg.Connection[dict[str, Any]]) -> None:
        """An acknowledged write is lost unless its version is in the history with what it wrote."""
        acknowledged = [op for op in record.operations if op.outcome == "acknowledged"]
        keys = [(op.contact_id, op.version) for op in acknowledged]
        stored = {
            (row["contact_id"], row["version"]): row["contact"]
            for row in conn.execute(
                """SELECT contact_id, version, contact FROM contact_versions
                   WHERE (contact_id, version) IN (SELECT * FROM unnest(%s::bigint[], %s::int[]))""",
                ([k[0] for k in keys], [k[1] for k in keys]),
            ).fetchall()
        }
        for operation in acknowledged:
            snapshot = stored.get((operation.contact_id, operation.version))
            wrote = "last_name" if operation.kind == "patch" else "email"
            if snapshot is None or snapshot.get(wrote) != operation.value:
                report.lost += 1

    @staticmethod
    def _count_watcher(report: Report, watcher: Watcher) -> None:
        report.ws_reconnects += max(0, watcher.connections - 1)
        last: int | None = None
        for kind, value in watcher.frames:
            if kind in ("hello", "resync"):
                report.ws_resyncs += kind == "resync"
                last = value
            elif kind == "event":
                if last is not None and value != last + 1:
                    report.ws_gaps += 1
                last = value if last is None or value > last else last
            else:
                report.notes.append(f"{watcher.name} was sent an error: {value}")

    def _depths(self) -> dict[str, int]:
        connection = pika.BlockingConnection(connection_parameters(self._amqp_url, "fault-matrix.checker"))
        try:
            channel = connection.channel()
            return {
                queue: channel.queue_declare(queue, passive=True).method.message_count
                for queue in (HISTORY_QUEUE, COMMANDS_QUEUE, DEAD_LETTER_QUEUE)
            }
        finally:
            connection.close()
