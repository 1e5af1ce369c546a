"""Search text stored once per row, and sort indexes that carry it, so a search walks an index alone.

The lowered haystack of migration 0002's search index becomes a stored generated column. The trigram
index covers that column, and each sort index includes it: a search page walks the sort order as an
index-only scan, testing each entry without visiting the table, and the trigram index's matches are
rechecked against stored text instead of lowering four fields per row.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: The sort indexes of 0002 and their keys; query_api.views.SORT_KEYS repeats the keys.
SORT_KEYS = {
    "last_name": '(last_name COLLATE "und-x-icu")',
    "first_name": '(first_name COLLATE "und-x-icu")',
    "email": '(email COLLATE "und-x-icu")',
    "updated_at": "updated_at",
}
SEARCH_TEXT = "lower(first_name || ' ' || last_name || chr(31) || email || chr(31) || phone)"


def _sort_indexes(include: str) -> str:
    return "\n".join(
        f"DROP INDEX contacts_by_{field};"
        f" CREATE INDEX contacts_by_{field} ON contacts ({key}, id) {include} WHERE deleted_at IS NULL;"
        for field, key in SORT_KEYS.items()
    )


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE contacts ADD COLUMN search_text text GENERATED ALWAYS AS ({SEARCH_TEXT}) STORED;
        DROP INDEX contacts_search;
        CREATE INDEX contacts_search ON contacts USING gin (search_text gin_trgm_ops) WHERE deleted_at IS NULL;
        {_sort_indexes("INCLUDE (search_text)")}
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        {_sort_indexes("")}
        DROP INDEX contacts_search;
        ALTER TABLE contacts DROP COLUMN search_text;
        CREATE INDEX contacts_search ON contacts USING gin ({SEARCH_TEXT} gin_trgm_ops) WHERE deleted_at IS NULL;
        """
    )
