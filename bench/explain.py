"""The plans in docs/queries.md: `python -m bench.explain DATABASE_URL`, on a database filled by bench.dataset.

Runs the statements query-api runs for a page — the very statements of query_api.views, with the
parameters a request binds — under `EXPLAIN (ANALYZE, BUFFERS)` as the read-only role, after one
warm-up run each, and rewrites the document's plan sections; the prose above them is kept.
"""

import sys
from pathlib import Path
from typing import Any

import psycopg
from psycopg.sql import SQL, Composed, Identifier
from query_api import views
from query_api.params import ListQuery, parse_list_query

from shared.settings import get_settings

#: (title, statement of query_api.views, query string of the request)
CASES: list[tuple[str, SQL, dict[str, str]]] = [
    ("List, first page, sort=last_name", views._PAGE, {"sort": "last_name"}),
    ("Search `ada`, sort=last_name: step 1, the walk fills the page", views._WALK, {"search": "ada"}),
    ("Search `lovelace.12`, sort=last_name: step 1, the walk finds too few", views._WALK, {"search": "lovelace.12"}),
    ("Search `lovelace.12`, sort=last_name: step 2", views._MATCHES, {"search": "lovelace.12"}),
    ("Search `o'connor`, sort=-last_name: step 2 (≈6,200 matches together in the sort order)", views._MATCHES,
     {"search": "o'connor", "sort": "-last_name"}),
    ("Search `7946` (phone digits), sort=email: step 2", views._MATCHES, {"search": "7946", "sort": "email"}),
]  # fmt: skip


DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "queries.md"
PLANS = "\n## The plans\n"


def statement(template: SQL, query: ListQuery) -> tuple[Composed, dict[str, Any]]:
    """The statement and parameters query_api.views runs for `query` (first page)."""
    key = views.SORT_KEYS[query.sort.field]
    parts = {
        "columns": views._COLUMNS,
        "key": key,
        "direction": SQL("DESC" if query.sort.descending else "ASC"),
        "after": SQL(""),
    }
    params = {"limit": query.limit + 1, "budget": views.WALK_BUDGET, "term": views.like_pattern(query.search or "")}
    return template.format(**parts), params


def main(url: str) -> None:
    prose = DOCUMENT.read_text().split(PLANS)[0]
    sections = [prose.rstrip() + "\n" + PLANS]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SQL("SET role {}").format(Identifier(get_settings().query_database_role or "contacts_reader")))
        for title, template, args in CASES:
            composed, params = statement(template, parse_list_query(args))
            explain = SQL("EXPLAIN (ANALYZE, BUFFERS) ") + composed
            conn.execute(explain, params, prepare=False)  # warm-up
            plan = "\n".join(row[0] for row in conn.execute(explain, params, prepare=False).fetchall())
            text = psycopg.ClientCursor(conn).mogrify(composed, params)
            sections.append(f"### {title}\n\n```sql\n{text.strip()}\n```\n\n```\n{plan}\n```\n")
    DOCUMENT.write_text("\n".join(sections))


if __name__ == "__main__":
    main(sys.argv[1])
