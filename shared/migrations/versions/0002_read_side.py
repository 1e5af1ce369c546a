"""The read side: every version of every contact, the indexes that keep lists and search fast, a read-only role.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: The role query-api reads as. Created without LOGIN or password: operators grant those (see README).
READER_ROLE = "contacts_reader"


def upgrade() -> None:
    op.execute(
        f"""
        -- Invariant 2: the primary key makes recording a version idempotent.
        CREATE TABLE contact_versions (
            contact_id      bigint NOT NULL,
            version         integer NOT NULL CHECK (version > 0),
            op              text NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
            contact         jsonb,  -- the snapshot the event carried; null for a deletion
            changed_fields  text[] NOT NULL,
            source          text NOT NULL,
            at              timestamptz NOT NULL,
            event_id        uuid NOT NULL,
            seq             bigint NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (contact_id, version)
        );

        -- Case-insensitive substring search over names, email and phone. Query-api repeats this expression
        -- (query_api.views.SEARCH_TEXT) so the planner can use the index; chr(31) keeps fields apart.
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX contacts_search ON contacts USING gin (
            lower(first_name || ' ' || last_name || chr(31) || email || chr(31) || phone) gin_trgm_ops
        ) WHERE deleted_at IS NULL;

        -- One index per sort order, each ending in id: the keyset cursor's tie-breaker.
        CREATE INDEX contacts_by_last_name ON contacts ((last_name COLLATE "und-x-icu"), id) WHERE deleted_at IS NULL;
        CREATE INDEX contacts_by_first_name ON contacts ((first_name COLLATE "und-x-icu"), id)
            WHERE deleted_at IS NULL;
        CREATE INDEX contacts_by_email ON contacts ((email COLLATE "und-x-icu"), id) WHERE deleted_at IS NULL;
        CREATE INDEX contacts_by_updated_at ON contacts (updated_at, id) WHERE deleted_at IS NULL;

        -- Roles belong to the whole cluster: create it once, whichever database migrates first.
        DO $$ BEGIN
            CREATE ROLE {READER_ROLE} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$;
        GRANT USAGE ON SCHEMA public TO {READER_ROLE};
        GRANT SELECT ON contacts, contact_versions TO {READER_ROLE};
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        REVOKE ALL ON contacts, contact_versions FROM {READER_ROLE};
        REVOKE USAGE ON SCHEMA public FROM {READER_ROLE};
        DROP INDEX contacts_search, contacts_by_last_name, contacts_by_first_name, contacts_by_email,
            contacts_by_updated_at;
        DROP TABLE contact_versions;
        """
    )
