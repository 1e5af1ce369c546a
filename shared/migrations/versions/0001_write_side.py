"""Contacts, the transactional outbox, the relay's stream state and idempotency keys.

Revision ID: 0001
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE contacts (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            first_name  text NOT NULL,
            last_name   text NOT NULL,
            email       text NOT NULL,
            phone       text NOT NULL,
            version     integer NOT NULL CHECK (version > 0),
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            deleted_at  timestamptz
        );
        -- Invariant 3: one live contact per email, whatever its case.
        CREATE UNIQUE INDEX contacts_email_key ON contacts (lower(email)) WHERE deleted_at IS NULL;

        CREATE TABLE outbox (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id        uuid NOT NULL UNIQUE,
            routing_key     text NOT NULL,
            payload         json NOT NULL,  -- json, not jsonb: keeps the body's key order
            correlation_id  text,
            created_at      timestamptz NOT NULL DEFAULT now(),
            seq             bigint UNIQUE,
            published_at    timestamptz
        );
        CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
        CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

        -- Wake the relay at commit, whoever wrote the row.
        CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NOTIFY outbox;
            RETURN NULL;
        END $$;
        CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

        -- The stream the relay numbers: its epoch and the last seq handed out.
        CREATE TABLE relay_state (
            singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            epoch      uuid NOT NULL DEFAULT gen_random_uuid(),
            last_seq   bigint NOT NULL DEFAULT 0
        );
        INSERT INTO relay_state DEFAULT VALUES;

        CREATE TABLE idempotency_keys (
            key          text PRIMARY KEY,
            fingerprint  text NOT NULL,
            contact_id   bigint,
            result       jsonb,
            created_at   timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys, relay_state, outbox, contacts; DROP FUNCTION outbox_notify")
