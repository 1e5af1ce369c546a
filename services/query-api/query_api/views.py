"""Every SQL statement of the read side, run on the read-only pool.

Search is a case-insensitive substring match over `search_text`, a stored lowered haystack of the
names, email and phone, which a pg_trgm GIN index covers and every sort index includes (migrations
0002 and 0003). A sorted search page is found by walking the sort's index, an index-only scan that
tests each entry without visiting the table, but only through the stretches that can hold a match:
the name and email orders are cut into search blocks whose Bloom summaries tell which blocks lack
one of the term's trigrams (migration 0004). The walk stops when the page is full, when no block is
left, or after WALK_BUDGET entries; then the page comes from the trigram index's matches, of which
only the id and sort key are sorted, which is quick because a term that needs it is rare. Either way
the page's full rows are read by id in the same statement. Every list pages by keyset on (sort key,
id), so rows never shift between pages.
"""

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from psycopg import Connection
from psycopg.sql import SQL, Composable, Composed, Literal, Placeholder
from psycopg_pool import ConnectionPool

from query_api.params import (
    MAX_ID,
    MAX_VERSION,
    ExportQuery,
    HistoryQuery,
    ListQuery,
    Sort,
    history_cursor,
    list_cursor,
)
from shared.models import Contact

#: Each must stay the expression of its `contacts_by_<field>` index.
SORT_KEYS = {
    "last_name": SQL('last_name COLLATE "und-x-icu"'),
    "first_name": SQL('first_name COLLATE "und-x-icu"'),
    "email": SQL('email COLLATE "und-x-icu"'),
    "updated_at": SQL("updated_at"),
}
#: The sort orders cut into search blocks (migration 0004); their `sort_field` there.
BLOCKED = frozenset({"last_name", "first_name", "email"})
WALK_BUDGET = 10_000
#: Rows an export fetches from its server-side cursor at a time: all it holds in memory.
EXPORT_CHUNK = 1_000
#: The most blocks a search walks through (each about 1,000 rows, see split_search_blocks).
CANDIDATE_BLOCKS = 16

_COLUMNS = SQL("id, first_name, last_name, email, phone, version, created_at, updated_at")
_CONTACT_FIELDS = tuple(Contact.model_fields)  # a contact's fields in the order replies show them

Row = dict[str, Any]
#: A reply body, built from the rows in the shape query_api.pages describes.
Body = dict[str, Any]
#: A stretch of the sort order to walk: from (lo key, lo id) up to (hi key, hi id); None for either end.
Bound = tuple[str, int] | None


def like_pattern(search: str) -> str:
    """The term with LIKE's wildcards and escape character taken literally."""
    return search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ContactViews:
    def __init__(self, pool: ConnectionPool[Connection[Row]]) -> None:
        self._pool = pool

    def contact(self, contact_id: int) -> Body | None:
        if not 0 < contact_id <= MAX_ID:
            return None
        with self._pool.connection() as conn:
            return conn.execute(_CONTACT, (contact_id,)).fetchone()

    def contacts(self, query: ListQuery) -> Body:
        after = query.after is not None
        parts = _parts(query.sort, after)
        params: dict[str, Any] = {"limit": query.limit + 1}
        if query.after is not None:
            params.update(after_key=query.after.key, after_id=query.after.id)
        with self._pool.connection() as conn:
            if query.search is None:
                rows = _fetch(conn, _page(query.sort, after), params)
            else:
                params["term"] = like_pattern(query.search)
                rows = _search(conn, query, parts, params)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = list_cursor(query.sort, rows[-1]["sort_key"], rows[-1]["id"]) if more else None
        for row in rows:
            del row["sort_key"]
        return {"items": rows, "next_cursor": cursor}

    def export(self, query: ExportQuery) -> Iterator[Row]:
        """Every live contact that matches the search, in sort order, read from a server-side cursor
        EXPORT_CHUNK rows at a time (constant memory however many there are); the connection is the
        export's until the iterator ends or is closed."""
        parts = _parts(query.sort, False)
        where = SQL("AND search_text LIKE '%%' || lower(%(term)s) || '%%'") if query.search else SQL("")
        statement = _EXPORT.format(**parts, search=where)
        params = {"term": like_pattern(query.search)} if query.search else {}
        with self._pool.connection() as conn, conn.transaction(), conn.cursor("export") as cursor:
            cursor.itersize = EXPORT_CHUNK
            cursor.execute(statement, params)
            yield from cursor

    def history(self, contact_id: int, query: HistoryQuery) -> Body | None:
        """The contact's versions, newest first; None if the contact never existed."""
        if not 0 < contact_id <= MAX_ID:
            return None
        with self._pool.connection() as conn:
            rows = conn.execute(
                """SELECT version, op, changed_fields, source, actor, at, event_id, contact FROM contact_versions
                   WHERE contact_id = %(id)s AND version < %(before)s ORDER BY version DESC LIMIT %(limit)s""",
                {"id": contact_id, "before": query.before_version or MAX_VERSION + 1, "limit": query.limit + 1},
            ).fetchall()
            if not rows and conn.execute("SELECT 1 FROM contacts WHERE id = %s", (contact_id,)).fetchone() is None:
                return None
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        for row in rows:  # a jsonb snapshot comes back in jsonb's key order: give it the contact's own
            if row["contact"] is not None:
                row["contact"] = {field: row["contact"][field] for field in _CONTACT_FIELDS}
        return {"items": rows, "next_cursor": history_cursor(rows[-1]["version"]) if more else None}


@cache
def _parts(sort: Sort, after: bool) -> Mapping[str, Composable]:
    """The pieces of a list statement for this sort, past a cursor or not, as `{columns}`, `{key}`,
    `{direction}` and `{after}`, made once rather than for every request."""
    key = SORT_KEYS[sort.field]
    comparison = "<" if sort.descending else ">"
    return {
        "columns": _COLUMNS,
        "key": key,
        "direction": SQL("DESC" if sort.descending else "ASC"),
        "after": _row_condition(key, comparison, "after") if after else SQL(""),
    }


@cache
def _page(sort: Sort, after: bool) -> bytes:
    """The statement of a list page without search, composed once."""
    return _PAGE.format(**_parts(sort, after)).as_bytes()


def _row_condition(key: Composable, comparison: str, name: str) -> Composed:
    """`AND (key, id) <comparison> (%(<name>_key)s, %(<name>_id)s)`."""
    return SQL("AND ({key}, id) {comparison} ({name_key}, {name_id})").format(
        key=key,
        comparison=SQL(comparison),
        name_key=Placeholder(f"{name}_key"),
        name_id=Placeholder(f"{name}_id"),
    )


def _search(
    conn: Connection[Row], query: ListQuery, parts: Mapping[str, Composable], params: dict[str, Any]
) -> list[Row]:
    """A search page: walked through the stretches that can hold matches, else from the trigram index."""
    blocks = _candidate_blocks(conn, query, params)
    walkable, all_of_them = _within_budget(blocks or [])
    rows: list[Row] | None
    if blocks is None or (blocks and not walkable):  # nothing rules any part out: walk WALK_BUDGET entries
        entries = _ENTRIES.format(**parts, bounds=SQL("")) + SQL(" LIMIT %(budget)s")
        rows = _fetch(conn, _WALK.format(**parts, entries=entries), {**params, "budget": WALK_BUDGET})
        rows = rows if len(rows) == params["limit"] else None
    else:
        rows = _walk_blocks(conn, query, parts, params, walkable, all_of_them)
    return _fetch(conn, _MATCHES.format(**parts), params) if rows is None else rows


def _walk_blocks(
    conn: Connection[Row],
    query: ListQuery,
    parts: Mapping[str, Composable],
    params: dict[str, Any],
    walkable: list[Row],
    all_of_them: bool,
) -> list[Row] | None:
    """The page from walking these candidate blocks in order, each stretch of them to its end; None if
    the page is not full and blocks were left unwalked (then the trigram index must answer)."""
    wanted = params["limit"]
    # When some candidates would be left unwalked, the first block alone, then the rest: what a whole first
    # block holds tells whether the rest is worth walking before the trigram index has to answer anyway.
    # (Past a cursor, the first block is walked from the cursor on: it tells nothing.)
    probe = not all_of_them and query.after is None
    first, rest = (walkable[:1], walkable[1:]) if probe else ([], walkable)
    rows: list[Row] = []
    for part in (first, rest):
        for lo, hi in _stretches(part, query.sort.descending):
            for entries, ends in _stretch_walks(parts, query.sort.descending, lo, hi):
                walk = _WALK.format(**parts, entries=entries)
                rows += _fetch(conn, walk, {**params, **ends, "limit": wanted - len(rows)})
                if len(rows) == wanted:
                    return rows
        if part is first and rest and not _likely_to_fill(len(rows), wanted, _size(first), _size(rest)):
            return None
    return rows if all_of_them else None


def _size(blocks: list[Row]) -> int:
    return sum(block["live_rows"] for block in blocks)


def _likely_to_fill(found: int, wanted: int, walked: int, left: int) -> bool:
    """Whether `left` more rows, as rich in matches as the `walked` ones gave `found`, fill the page."""
    return (found + 1) * left >= (wanted - found) * walked


def _candidate_blocks(conn: Connection[Row], query: ListQuery, params: dict[str, Any]) -> list[Row] | None:
    """The blocks past the cursor (in the page's `params`) that may hold a match, in walking order, at most
    CANDIDATE_BLOCKS + 1 of them; None if the sort order has no blocks."""
    if query.sort.field not in BLOCKED:
        return None
    after = SQL("")
    if query.after is not None:
        after = _BEFORE_CURSOR if query.sort.descending else _FROM_CURSOR_BLOCK
    bits = conn.execute("SELECT search_term_bits(%s) AS bits", (query.search,)).fetchone()
    assert bits is not None
    # Each bit a literal, so that a block is tested a bit at a time rather than with a mask of them all;
    # `<> 0` rather than `= 1` so that the planner expects most blocks to pass, and walks them in order.
    has_bits = SQL(" ").join(SQL("AND get_bit(block.bloom, {}) <> 0").format(Literal(bit)) for bit in bits["bits"])
    direction = SQL("DESC" if query.sort.descending else "ASC")
    statement = _CANDIDATES.format(has_bits=has_bits, after=after, direction=direction)
    return conn.execute(statement, {**params, "field": query.sort.field, "blocks": CANDIDATE_BLOCKS + 1}).fetchall()


def _within_budget(blocks: list[Row]) -> tuple[list[Row], bool]:
    """The first blocks, as many as WALK_BUDGET rows and CANDIDATE_BLOCKS allow, and whether that is all
    of them. A block not cut yet ends them: it may hold everything."""
    walkable: list[Row] = []
    rows = 0
    for block in blocks[:CANDIDATE_BLOCKS]:
        if block["live_rows"] is None or rows + block["live_rows"] > WALK_BUDGET:
            return walkable, False
        rows += block["live_rows"]
        walkable.append(block)
    return walkable, len(blocks) <= CANDIDATE_BLOCKS


def _stretches(blocks: list[Row], descending: bool) -> list[tuple[Bound, Bound]]:
    """Blocks in walking order as stretches of the sort order, neighbours joined: (lo, hi) each."""
    stretches: list[tuple[Bound, Bound]] = []
    for block in blocks:
        lo: Bound = (block["lo_key"], block["lo_id"])
        hi: Bound = None if block["hi_key"] is None else (block["hi_key"], block["hi_id"])
        start, end = (hi, lo) if descending else (lo, hi)  # walking down, a stretch starts at its upper end
        if stretches and stretches[-1][1] == start:
            stretches[-1] = (stretches[-1][0], end)
        else:
            stretches.append((start, end))
    return [(end, start) for start, end in stretches] if descending else stretches


def _stretch_walks(
    parts: Mapping[str, Composable], descending: bool, lo: Bound, hi: Bound
) -> list[tuple[Composed, dict[str, Any]]]:
    """The index entries of a stretch, in walking order, as one or two walks with their parameters. A row
    comparison ends an index scan only at its first column, so a far end is walked in two parts: the keys
    short of its key, then its key up to its id (else the scan would go on through every row with that
    key). OFFSET 0 keeps a walk a walk: the planner may not fold it into a scan of the trigram index."""
    near, far = (hi, lo) if descending else (lo, hi)
    start: Composable = SQL("")
    params: dict[str, Any] = {}
    if near is not None:
        start = _row_condition(parts["key"], "<" if descending else ">=", "near")
        params = {"near_key": near[0], "near_id": near[1]}
    if far is None:
        return [(_ENTRIES.format(**parts, bounds=start) + SQL(" OFFSET 0"), params)]
    params = {**params, "far_key": far[0], "far_id": far[1]}
    short = SQL("AND {key} {op} %(far_key)s").format(key=parts["key"], op=SQL(">" if descending else "<"))
    own = SQL("AND {key} = %(far_key)s AND id {op} %(far_id)s").format(
        key=parts["key"], op=SQL(">=" if descending else "<")
    )
    return [
        (_ENTRIES.format(**parts, bounds=start + SQL(" ") + bound) + SQL(" OFFSET 0"), params) for bound in (short, own)
    ]


def _fetch(conn: Connection[Row], query: Composed | bytes, params: dict[str, Any]) -> list[Row]:
    # Never prepared: a generic plan cannot see the search term, and only the term tells the trigram
    # index whether it helps.
    return conn.execute(query, params, prepare=False).fetchall()


# One contact, unless it was deleted.
_CONTACT = SQL("SELECT {} FROM contacts WHERE id = %s AND deleted_at IS NULL").format(_COLUMNS)

# A page in sort order, straight from the sort's index.
_PAGE = SQL(
    """SELECT {columns}, {key} AS sort_key FROM contacts
       WHERE deleted_at IS NULL {after}
       ORDER BY {key} {direction}, id {direction} LIMIT %(limit)s"""
)

# Every live contact (that matches {search}), in sort order.
_EXPORT = SQL(
    """SELECT first_name, last_name, email, phone FROM contacts WHERE deleted_at IS NULL {search}
       ORDER BY {key} {direction}, id {direction}"""
)

# The full rows of a search page whose ids and sort keys the CTE `page` found.
_PAGE_ROWS = """SELECT {columns}, page.sort_key FROM page JOIN contacts USING (id)
       ORDER BY page.sort_key {direction}, id {direction}"""

# The blocks of a sort order past the cursor whose Bloom summary has every bit in {has_bits}, in walking
# order, each with where it ends: where the next block starts (none for the last).
_CANDIDATES = SQL(
    """SELECT block.lo_key, block.lo_id, block.live_rows, next.lo_key AS hi_key, next.lo_id AS hi_id
       FROM (
           SELECT sort_field, lo_key, lo_id, live_rows FROM search_blocks AS block
           WHERE sort_field = %(field)s {has_bits} {after}
           ORDER BY lo_key {direction}, lo_id {direction} LIMIT %(blocks)s
       ) AS block
       LEFT JOIN LATERAL (
           SELECT lo_key, lo_id FROM search_blocks
           WHERE sort_field = block.sort_field AND (lo_key, lo_id) > (block.lo_key, block.lo_id)
           ORDER BY lo_key, lo_id LIMIT 1
       ) AS next ON true
       ORDER BY block.lo_key {direction}, block.lo_id {direction}"""
)

# Where a walk down the sort order starts: below the cursor (the block that holds it starts there).
_BEFORE_CURSOR = SQL("AND (block.lo_key, block.lo_id) < (%(after_key)s, %(after_id)s)")

# Where a walk up the sort order starts: at the block that holds the cursor.
_FROM_CURSOR_BLOCK = SQL(
    """AND (block.lo_key, block.lo_id) >= (
           SELECT lo_key, lo_id FROM search_blocks
           WHERE sort_field = %(field)s AND (lo_key, lo_id) <= (%(after_key)s, %(after_id)s)
           ORDER BY lo_key DESC, lo_id DESC LIMIT 1)"""
)

# Index entries of the sort order past the cursor, in walking order, within {bounds}.
_ENTRIES = SQL(
    """SELECT id, {key} AS sort_key, search_text FROM contacts WHERE deleted_at IS NULL {after} {bounds}
       ORDER BY {key} {direction}, id {direction}"""
)

# The first `limit` matches among some {entries}, with their full rows.
_WALK = SQL(
    """WITH page AS (
           SELECT id, sort_key FROM ({entries}) AS walk
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
