"""Writers wake the relay only while it waits to be woken (docs/benchmarks.md, "Where a write's time goes").

A transaction that runs `NOTIFY` takes one lock for the whole database at commit and holds it until its
commit is flushed, so notifying writers commit one at a time: at 16 clients a single-row insert ran
6 to 8 times slower with the old per-statement `NOTIFY outbox` than without it. Now the relay says in
`relay_state.listening` whether it waits for a wake-up; while events keep coming it polls instead, and
says it does not, and the trigger's `NOTIFY` is skipped. A write that read `listening` just before the
relay set it is found by the relay's next poll (relay_poll_seconds) at the latest.

Revision ID: 0008
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE relay_state ADD COLUMN listening boolean NOT NULL DEFAULT true;
        CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT listening FROM relay_state) THEN
                NOTIFY outbox;
            END IF;
            RETURN NULL;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NOTIFY outbox;
            RETURN NULL;
        END $$;
        ALTER TABLE relay_state DROP COLUMN listening;
        """
    )
