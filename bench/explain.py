"""The plans in docs/queries.md: `python -m bench.explain DATABASE_URL`, on a database filled by bench.dataset.

Serves each request below with query_api.views itself, as the read-only role, recording every statement
it runs (after one warm-up request), then runs each of them under `EXPLAIN (ANALYZE, BUFFERS)` and
rewrites the document's plan sections; the prose above them is kept.
"""

import sys
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from query_api.params import parse_list_query
from query_api.views import ContactViews

from shared.db import session_options
from shared.settings import get_settings

#: (title, query string of the request)
CASES: list[tuple[str, dict[str, str]]] = [
    ("List, first page, sort=last_name", {"sort": "last_name"}),
    ("Search `ada` (≈10,000 matches, in every block), sort=last_name", {"search": "ada"}),
    ("Search `smith` (≈6,200 matches, together in the sort order), sort=last_name", {"search": "smith"}),
    ("Search `o'connor` (≈6,200 matches, together), sort=-last_name", {"search": "o'connor", "sort": "-last_name"}),
    ("Search `lovelace.12` (≈60 matches), sort=last_name", {"search": "lovelace.12"}),
    ("Search `7946` (≈700 matches; digits are in every block), sort=email", {"search": "7946", "sort": "email"}),
    ("Search `grace` (no blocks for this order), sort=-updated_at", {"search": "grace", "sort": "-updated_at"}),
]  # fmt: skip

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "queries.md"
PLANS = "\n## The plans\n"

Statement = tuple[Any, Any]


class RecordingConnection(psycopg.Connection[dict[str, Any]]):
    """A connection that notes every statement it runs, with its parameters."""

    recorded: list[Statement] = []

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        RecordingConnection.recorded.append((query, params))
        return super().execute(query, params, **kwargs)


def main(url: str) -> None:
    prose = DOCUMENT.read_text().split(PLANS)[0]
    sections = [prose.rstrip() + "\n" + PLANS]
    options = session_options(get_settings(), read_only_role=get_settings().query_database_role)
    pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
        url,
        connection_class=RecordingConnection,
        kwargs={"autocommit": True, "row_factory": dict_row, "options": options},
        min_size=1,
        max_size=1,
    )
    views = ContactViews(pool)
    with pool, psycopg.connect(url, autocommit=True, options=options) as conn:
        for title, args in CASES:
            query = parse_list_query(args)
            views.contacts(query)  # warm-up
            RecordingConnection.recorded.clear()
            views.contacts(query)
            sections.append(f"### {title}\n")
            for number, (statement, params) in enumerate(RecordingConnection.recorded, 1):
                text = psycopg.ClientCursor(conn).mogrify(statement, params)
                plan = "\n".join(row[0] for row in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + text).fetchall())
                sections.append(f"{number}.\n\n```sql\n{text.strip()}\n```\n\n```\n{plan}\n```\n")
    DOCUMENT.write_text("\n".join(sections))


if __name__ == "__main__":
    main(sys.argv[1])
