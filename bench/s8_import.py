"""S8: import throughput, next to the same rows written by the write path's statements direct.

A CSV file of S8_ROWS contacts (20,000 by default) is imported by the import worker (in this process:
the file read, its rows applied in batches through `ContactHandlers.handle_batch`, the job's counts and
progress recorded); the baseline writes the same rows, each its own create through
`ContactHandlers.handle` (a validated contact, its reserved id, one statement with its outbox event),
as an HTTP create does, without HTTP. Both on the same database, the import's rows with other emails.
"""

import os
import time

import psycopg
from command_api.handlers import ContactHandlers, CreateContact, Origin
from command_api.imports import ImportWorker
from command_api.store import ImportStore
from psycopg.rows import dict_row

from bench.measure import table, verdict
from shared.contact_files import write_csv
from shared.db import open_pool
from shared.settings import Settings
from tests.support.identity import create_user
from tests.support.infra import Infra

ROWS = int(os.environ.get("S8_ROWS", "20000"))


def rows(prefix: str) -> list[dict[str, str]]:
    return [
        {"first_name": f"Bench {n}", "last_name": f"Import {n}", "email": f"{prefix}.{n}@example.com",
         "phone": f"+1 555 {n:07d}"}
        for n in range(ROWS)
    ]  # fmt: skip


def run(infra: Infra) -> str:
    settings = Settings(database_url=infra.database_url)
    pool = open_pool(settings, name="bench-s8")
    pool.wait()
    handlers = ContactHandlers(pool)
    user = create_user(infra.database_url, "editor")
    actor = {"id": user["id"], "name": user["name"]}
    try:
        origin = Origin("bench", None, None, actor)
        started = time.monotonic()
        for row in rows("direct"):
            handlers.handle(CreateContact(row), origin)
        direct = ROWS / (time.monotonic() - started)

        content = "".join(write_csv(rows("imported"))).encode()
        worker = ImportWorker(handlers, settings)
        with psycopg.connect(infra.database_url, autocommit=True, row_factory=dict_row) as conn:
            job = ImportStore(conn).insert_job(user["id"], actor, "import", None, "text/csv", content)
            started = time.monotonic()
            worker.run_pending(conn)
            imported = ROWS / (time.monotonic() - started)
            done = ImportStore(conn).job(str(job["id"]))
        assert done is not None and (done["status"], done["created"]) == ("done", ROWS), done
    finally:
        pool.close()

    ratio = imported / direct
    return "\n".join(
        [
            f"### S8: importing a CSV of {ROWS:,} contacts (batches of {settings.import_batch_size})",
            "",
            table(
                ["what", "contacts/s"],
                [
                    ("import job: file read, rows applied in batches, progress recorded", f"{imported:.0f}"),
                    ("baseline: the same rows, one create each through the write path", f"{direct:.0f}"),
                ],
            ),
            "",
            f"- import / baseline = {ratio:.2f} (target ≥ 0.5: {verdict(ratio >= 0.5)})",
        ]
    )
