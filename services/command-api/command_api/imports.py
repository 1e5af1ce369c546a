"""Import jobs (SPEC §11): a CSV or vCard file becomes contacts, each one ordinary write of the handlers.

`ImportJobs` is what the HTTP layer asks: submit a file (checked, then stored as a job in PostgreSQL)
and read a job. The worker, `python -m command_api.imports`, claims running jobs and applies each in
batches of IMPORT_BATCH_SIZE rows through `ContactHandlers.handle_batch`: one transaction per batch
holds its contacts (one version and one outbox event each, `source` `import`, the importer as actor),
its rejected rows and the job's new counts, so a batch is applied once or not at all. A worker killed
midway leaves the job running, with its file: the advisory lock it held goes with its session, and the
next worker to claim the job reads the file again and carries on after the rows counted. An email
already taken (in the database, or by an earlier row of the file) is a rejected row, so the same file
again creates nothing twice. A job claimed more than IMPORT_MAX_ATTEMPTS times (a worker that failed
on it, died or was stopped) is ended `failed`, so that no file can keep the workers busy for ever.
"""

import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, Literal
from uuid import UUID

import psycopg
from prometheus_client import Counter
from pydantic import BaseModel
from tenacity import Retrying, before_sleep_log, retry_if_exception_type, wait_random_exponential

from command_api.errors import CommandRefused, DuplicateEmail, ImportNotFound, UnreadableImport
from command_api.handlers import ContactHandlers, CreateContact, Origin, Outcome
from command_api.store import ImportStore
from shared import contact_files
from shared.contact_files import Record, UnreadableFile
from shared.db import Pool, open_pool, session_options
from shared.health import database_ready
from shared.identity import Caller
from shared.logs import configure_logging
from shared.models import Contact
from shared.probe_server import serve_probes
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

ROWS = Counter("import_rows_total", "Rows of import files applied, by outcome", ["outcome"])

#: What a file is sent as, for each media type we read.
MEDIA_TYPES = contact_files.CSV_TYPES | contact_files.VCARD_TYPES


class RejectedRow(BaseModel):
    """Why a row of the file was not imported: the line its record starts on (the file's first line is 1)."""

    line: int
    field: str
    message: str


class ImportJob(BaseModel):
    """An import job as `GET /api/imports/{id}` shows it (`rows` counts the contacts in the file, once read)."""

    id: UUID
    status: Literal["running", "done", "failed"]
    rows: int
    created: int
    rejected: int
    errors: list[RejectedRow]


class LostJob(Exception):
    """Another worker moved the job on while this one applied a batch: the batch was rolled back."""


def job_body(job: dict[str, Any], errors: list[dict[str, Any]]) -> dict[str, Any]:
    """A job as `GET /api/imports/{id}` shows it."""
    fields = ("rows", "created", "rejected")
    return {"id": str(job["id"]), "status": job["status"], **{name: job[name] for name in fields}, "errors": errors}


class ImportJobs:
    """Submitting a file and reading a job, for the HTTP layer."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def submit(self, caller: Caller, media_type: str, content: bytes, correlation_id: str | None) -> dict[str, Any]:
        """A new job for the file, once it is found readable (422 if it is not)."""
        try:
            contact_files.check(media_type, content)
        except UnreadableFile as error:
            raise UnreadableImport(str(error), [{"field": "body", "message": str(error)}]) from None
        with self._pool.connection() as conn:
            job = ImportStore(conn).insert_job(caller.id, caller.actor(), "import", correlation_id, media_type, content)
        return job_body(job, [])

    def job(self, job_id: str, caller: Caller) -> dict[str, Any]:
        """The job, if the caller made it or is an admin (else, as for no job at all, 404)."""
        with self._pool.connection() as conn:
            store = ImportStore(conn)
            job = store.job(job_id)
            if job is None or not (job["owner_id"] == caller.id or caller.may("admin")):
                raise ImportNotFound(job_id)
            return job_body(job, store.errors(job_id))


@dataclass
class _Progress:
    """Where a job stands as its worker applies it: the rows counted, and the emails of the file's
    contacts created so far (lowered) with their lines, to name the first when another row repeats one."""

    processed: int
    emails: dict[str, int]


def _email_key(record: Record) -> str | None:
    email = record.fields.get("email")
    return email.strip().lower() if email else None


def _errors(record: Record, outcome: CommandRefused) -> list[tuple[int, str, str]]:
    return [(record.line, error["field"], error["message"]) for error in outcome.errors or []] or [
        (record.line, "record", outcome.detail)
    ]


class ImportWorker:
    """Claims running jobs and applies them (see the module's docstring)."""

    def __init__(self, handlers: ContactHandlers, settings: Settings) -> None:
        self._handlers = handlers
        self._settings = settings
        self.stopping = threading.Event()

    def run_pending(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        """Apply every running job no other worker holds, on `conn` (this worker's own session)."""
        for job_id in ImportStore(conn).running_jobs():
            if self.stopping.is_set():
                return
            self.run_job(conn, job_id)

    def run_job(self, conn: psycopg.Connection[dict[str, Any]], job_id: str) -> bool:
        """Apply the job unless another worker holds it (then False), on `conn` (this worker's own session)."""
        store = ImportStore(conn)
        job = store.try_claim(job_id)
        if job is None:
            return False
        try:
            self._run(store, job)
        except psycopg.OperationalError:
            raise  # the database is away: start over once it is back
        except Exception:  # a fault of ours with this job: logged, and the job tried again at the next claim
            log.exception("import failed", extra={"import_id": job_id, "attempt": job["attempts"]})
        finally:
            store.release(job_id)
        return True

    def _run(self, store: ImportStore, job: dict[str, Any]) -> None:
        job_id = str(job["id"])
        if job["attempts"] > self._settings.import_max_attempts:
            log.error("import failed too often; ending it", extra={"import_id": job_id})
            reason = f"not finished in {self._settings.import_max_attempts} attempts; the rows counted stay imported"
            store.end(job_id, "failed", job["rows"], reason)
            return
        records = list(contact_files.read(job["media_type"], bytes(job["content"])))
        if len(records) > self._settings.import_max_rows:
            reason = f"{len(records):,} contacts: a file may hold {self._settings.import_max_rows:,} at most"
            store.end(job_id, "failed", len(records), reason)
            log.warning("import over %d rows", self._settings.import_max_rows, extra={"import_id": job_id})
            return
        if job["processed"] == 0:
            store.end(job_id, "running" if records else "done", len(records))
        origin = Origin(job["source"], job["correlation_id"], None, job["actor"])
        progress = self._resume(store, job_id, records[: job["processed"]], job["processed"])
        for start in range(progress.processed, len(records), self._settings.import_batch_size):
            if self.stopping.is_set():
                return
            batch = records[start : start + self._settings.import_batch_size]
            try:
                self._apply(store, job_id, batch, origin, progress)
            except LostJob:
                log.warning("import moved on by another worker", extra={"import_id": job_id})
                return
        log.info("import done", extra={"import_id": job_id, "rows": len(records)})

    @staticmethod
    def _resume(store: ImportStore, job_id: str, applied: list[Record], processed: int) -> _Progress:
        """The progress of rows already applied: those not rejected were created."""
        rejected = store.rejected_lines(job_id)
        emails: dict[str, int] = {}
        for record in applied:
            key = _email_key(record)
            if key is not None and record.line not in rejected:
                emails.setdefault(key, record.line)
        return _Progress(processed, emails)

    def _apply(self, store: ImportStore, job_id: str, batch: list[Record], origin: Origin, progress: _Progress) -> None:
        """One batch in one transaction: its contacts, its rejected rows and the job's counts."""
        readable = [record for record in batch if record.error is None and _email_key(record) not in progress.emails]
        emails = dict(progress.emails)
        errors: list[tuple[int, str, str]] = []
        created = 0

        def record(conn: psycopg.Connection[dict[str, Any]], outcomes: list[Outcome]) -> None:
            nonlocal created
            outcome_of = dict(zip((id(r) for r in readable), outcomes, strict=True))
            for row in batch:
                outcome = outcome_of.get(id(row))
                key = _email_key(row)
                if row.error is not None:
                    errors.append((row.line, "record", row.error))
                elif (outcome is None or isinstance(outcome, DuplicateEmail)) and key in emails:
                    # not tried (it repeats an earlier batch's row), or refused for repeating one of this batch
                    errors.append((row.line, "email", f"already in use by line {emails[key]} of this file"))
                elif isinstance(outcome, CommandRefused):
                    errors.extend(_errors(row, outcome))
                elif isinstance(outcome, Contact):
                    created += 1
                    if key is not None:
                        emails.setdefault(key, row.line)
            if not ImportStore(conn).advance(job_id, progress.processed, created, errors):
                raise LostJob(job_id)

        commands = [CreateContact(dict(row.fields)) for row in readable]
        self._handlers.handle_batch(commands, origin, record)
        progress.processed += len(batch)
        progress.emails = emails
        ROWS.labels("created").inc(created)
        ROWS.labels("rejected").inc(len({line for line, _, _ in errors}))


def _wakeups(conn: psycopg.Connection[Any], poll_seconds: float, stopping: threading.Event) -> Iterator[None]:
    """Once at once, then whenever a job is submitted (`NOTIFY imports`), or every `poll_seconds`."""
    conn.execute("LISTEN imports")
    while not stopping.is_set():
        yield
        for _ in conn.notifies(timeout=poll_seconds, stop_after=1):
            pass


def work(worker: ImportWorker, settings: Settings) -> None:
    """Apply jobs as they come, on a session of this worker's own (its advisory locks are its claims)."""
    with psycopg.connect(
        settings.database_url,
        autocommit=True,
        row_factory=psycopg.rows.dict_row,
        options=session_options(settings),
        connect_timeout=5,
    ) as conn:
        for _ in _wakeups(conn, settings.import_poll_seconds, worker.stopping):
            worker.run_pending(conn)


def work_forever(worker: ImportWorker, settings: Settings) -> None:
    """Work until stopped; after a lost database, back off and start over (the jobs wait in PostgreSQL)."""
    retrying = Retrying(
        retry=retry_if_exception_type(psycopg.OperationalError),
        stop=lambda _state: worker.stopping.is_set(),
        wait=wait_random_exponential(multiplier=0.2, max=settings.import_max_backoff_seconds),
        before_sleep=before_sleep_log(log, logging.WARNING),
        retry_error_callback=lambda _state: None,
    )
    retrying(work, worker, settings)


def main() -> None:
    """The composition root: settings, logs, pool, probes, then the loop until SIGTERM or Ctrl-C."""
    settings = get_settings()
    configure_logging("imports", settings.log_level)
    pool = open_pool(settings, name="imports")
    worker = ImportWorker(ContactHandlers(pool), settings)

    def stop(_signal: int, _frame: FrameType | None) -> None:
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    serve_probes(settings.imports_port, lambda: {"database": database_ready(pool)})
    try:
        work_forever(worker, settings)
    finally:
        pool.close()


if __name__ == "__main__":
    main()
