"""Limits (SPEC §8): one row per subject of a limit (shared.limits), counted by every command-api instance.

`key` is a digest of the limit's name and its subject (a user id, a username, a client address), so no
username or address is kept here. The table is UNLOGGED: counting writes no WAL, and a crash of PostgreSQL
empties it, which only starts every window afresh. The relay's housekeeping deletes the windows that ended.

Revision ID: 0006
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE UNLOGGED TABLE rate_limits (
            key          bytea PRIMARY KEY,
            window_ends  timestamptz NOT NULL,
            hits         integer NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE rate_limits")
