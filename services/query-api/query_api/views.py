"""Every SQL statement of the read side, run on the read-only pool.

Search is a case-insensitive substring match over `search_text`, a stored lowered haystack of the
names, email and phone, which a pg_trgm GIN index covers and every sort index includes (migrations
0002 and 0003). A sorted search page is found one of two ways: first by walking the sort's index for
at most WALK_BUDGET entries, an index-only scan that tests each entry without visiting the table,
which is enough when matches are common; if that walk does not fill the page, from the trigram
index's matches, of which only the id and sort key are sorted, which is quick when they are few.
Either way the page's full rows are then read by id. Every list pages by keyset on (sort key, id),
so rows never shift between pages.
"""

from typing import Any

from psycopg import Connection
from psycopg.sql import SQL, Composed
from psycopg_pool import ConnectionPool

from query_api.pages import ContactPage, HistoryPage
from query_api.params import MAX_ID, MAX_VERSION, HistoryQuery, ListQuery, history_cursor, list_cursor
from shared.models import Contact

#: Each must stay the expression of its `contacts_by_<field>` index.
SORT_KEYS = {
    "last_name": SQL('last_name COLLATE "und-x-icu"'),
    "first_name": SQL('first_name COLLATE "und-x-icu"'),
    "email": SQL('email COLLATE "und-x-icu"'),
    "updated_at": SQL("updated_at"),
}
WALK_BUDGET = 10_000

_COLUMNS = SQL("id, first_name, last_name, email, phone, version, created_at, updated_at")

Row = dict[str, Any]


def like_pattern(search: str) -> str:
    """The term with LIKE's wildcards and escape character taken literally."""
    return search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ContactViews:
    def __init__(self, pool: ConnectionPool[Connection[Row]]) -> None:
        self._pool = pool

    def contact(self, contact_id: int) -> Contact | None:
        if not 0 < contact_id <= MAX_ID:
            return None
        with self._pool.connection() as conn:
            row = conn.execute(
                SQL("SELECT {} FROM contacts WHERE id = %s AND deleted_at IS NULL").format(_COLUMNS), (contact_id,)
            ).fetchone()
        return None if row is None else Contact.model_validate(row)

    def contacts(self, query: ListQuery) -> ContactPage:
        key = SORT_KEYS[query.sort.field]
        direction = SQL("DESC" if query.sort.descending else "ASC")
        parts = {
            "columns": _COLUMNS,
            "key": key,
            "direction": direction,
            "after": _after_condition(key, query),
        }
        params: dict[str, Any] = {"limit": query.limit + 1, "budget": WALK_BUDGET}
        if query.after is not None:
            params.update(after_key=query.after.key, after_id=query.after.id)
        with self._pool.connection() as conn:
            if query.search is None:
                rows = _fetch(conn, _PAGE.format(**parts), params)
            else:
                params["term"] = like_pattern(query.search)
                rows = _fetch(conn, _WALK.format(**parts), params)
                if len(rows) <= query.limit:
                    rows = _fetch(conn, _MATCHES.format(**parts), params)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        last = rows[-1] if more else None
        # One validation of the whole page (pydantic ignores each row's extra `sort_key`).
        cursor = None if last is None else list_cursor(query.sort, last["sort_key"], last["id"])
        return ContactPage.model_validate({"items": rows, "next_cursor": cursor})

    def history(self, contact_id: int, query: HistoryQuery) -> HistoryPage | None:
        """The contact's versions, newest first; None if the contact never existed."""
        if not 0 < contact_id <= MAX_ID:
            return None
        with self._pool.connection() as conn:
            rows = conn.execute(
                """SELECT version, op, changed_fields, source, at, event_id, contact FROM contact_versions
                   WHERE contact_id = %(id)s AND version < %(before)s ORDER BY version DESC LIMIT %(limit)s""",
                {"id": contact_id, "before": query.before_version or MAX_VERSION + 1, "limit": query.limit + 1},
            ).fetchall()
            if not rows and conn.execute("SELECT 1 FROM contacts WHERE id = %s", (contact_id,)).fetchone() is None:
                return None
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return HistoryPage.model_validate(
            {"items": rows, "next_cursor": history_cursor(rows[-1]["version"]) if more else None}
        )


def _after_condition(key: SQL, query: ListQuery) -> Composed | SQL:
    if query.after is None:
        return SQL("")
    comparison = SQL("<" if query.sort.descending else ">")
    return SQL("AND ({key}, id) {comparison} (%(after_key)s, %(after_id)s)").format(key=key, comparison=comparison)


def _fetch(conn: Connection[Row], query: Composed, params: dict[str, Any]) -> list[Row]:
    # Never prepared: a generic plan cannot see the search term, and only the term tells the trigram
    # index whether it helps.
    return conn.execute(query, params, prepare=False).fetchall()


# A page in sort order, straight from the sort's index.
_PAGE = SQL(
    """SELECT {columns}, {key} AS sort_key FROM contacts
       WHERE deleted_at IS NULL {after}
       ORDER BY {key} {direction}, id {direction} LIMIT %(limit)s"""
)

# The full rows of a search page whose ids and sort keys the CTE `page` found.
_PAGE_ROWS = """SELECT {columns}, page.sort_key FROM page JOIN contacts USING (id)
       ORDER BY page.sort_key {direction}, id {direction}"""

# The matches among the next WALK_BUDGET entries of the sort's index: enough when the term is common.
_WALK = SQL(
    """WITH page AS (
           SELECT id, sort_key FROM (
               SELECT id, {key} AS sort_key, search_text FROM contacts
               WHERE deleted_at IS NULL {after}
               ORDER BY {key} {direction}, id {direction} LIMIT %(budget)s
           ) AS walk
           WHERE search_text LIKE '%%' || lower(%(term)s) || '%%'
           ORDER BY sort_key {direction}, id {direction} LIMIT %(limit)s
       )
       """
    + _PAGE_ROWS
)

# Every match, from the trigram index, then sorted: quick when the term is rare. MATERIALIZED keeps
# the planner from walking the sort's index instead, which it prefers when it overestimates matches.
_MATCHES = SQL(
    """WITH matches AS MATERIALIZED (
           SELECT id, {key} AS sort_key FROM contacts
           WHERE deleted_at IS NULL AND search_text LIKE '%%' || lower(%(term)s) || '%%' {after}
       ),
       page AS (SELECT * FROM matches ORDER BY sort_key {direction}, id {direction} LIMIT %(limit)s)
       """
    + _PAGE_ROWS
)
