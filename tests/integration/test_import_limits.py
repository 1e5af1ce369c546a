"""An import job that must not run to its end: too many contacts, or claimed too often. No worker process
runs in this module; each test applies its job with an ImportWorker of its own settings."""

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from command_api.handlers import ContactHandlers
from command_api.imports import ImportWorker
from command_api.store import ImportStore
from psycopg.rows import dict_row

from shared.db import Pool, open_pool
from shared.settings import Settings
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

CSV = b"email,first_name,last_name,phone\n" + b"".join(
    b"limit%d@example.com,A,B,+1 555 0100 10%d\n" % (n, n) for n in range(3)
)


@pytest.fixture
def pool(infra: Infra) -> Iterator[Pool]:
    pool = open_pool(Settings(database_url=infra.database_url), name="test-import-limits")
    pool.wait()
    yield pool
    pool.close()


def run_job(infra: Infra, pool: Pool, user: dict[str, Any], settings: Settings, attempts: int = 0) -> dict[str, Any]:
    """Submit CSV as `user`'s job, having been claimed `attempts` times before, and apply it once."""
    with psycopg.connect(infra.database_url, autocommit=True, row_factory=dict_row) as conn:
        store = ImportStore(conn)
        job_id = str(
            store.insert_job(user["id"], {"id": user["id"], "name": user["name"]}, "import", None, "text/csv", CSV)[
                "id"
            ]
        )
        conn.execute("UPDATE import_jobs SET attempts = %s WHERE id = %s", (attempts, job_id))
        assert ImportWorker(ContactHandlers(pool), settings).run_job(conn, job_id)
        job = store.job(job_id)
        assert job is not None
        return {**job, "errors": store.errors(job_id)}


def test_a_file_of_more_contacts_than_allowed_ends_failed_having_created_none(
    infra: Infra, pool: Pool, editor_user: dict[str, Any]
) -> None:
    job = run_job(infra, pool, editor_user, Settings(database_url=infra.database_url, import_max_rows=2))
    assert (job["status"], job["rows"], job["created"]) == ("failed", 3, 0)
    assert job["errors"] == [{"line": 1, "field": "file", "message": "3 contacts: a file may hold 2 at most"}]


def test_a_job_claimed_more_often_than_allowed_ends_failed(
    infra: Infra, pool: Pool, editor_user: dict[str, Any]
) -> None:
    settings = Settings(database_url=infra.database_url, import_max_attempts=2)
    job = run_job(infra, pool, editor_user, settings, attempts=2)
    assert (job["status"], job["created"]) == ("failed", 0)
    assert [(e["line"], e["field"]) for e in job["errors"]] == [(1, "file")]
