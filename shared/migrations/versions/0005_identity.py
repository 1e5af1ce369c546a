"""Identity (SPEC §8): users, their sessions (revocable), and who made each version.

A user's username is unique whatever its case. A session is revoked by setting `revoked_at` and
announcing its id with `NOTIFY identity` in the same transaction (shared.identity.Revocations); the
read-only role may see which sessions were revoked, and nothing else of them, so that query-api can
load that set as the role it reads as. `contact_versions.actor` is who made a version: null for the
versions recorded before this migration, and for commands over RabbitMQ sent without a `user_id`.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

READER_ROLE = "contacts_reader"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE users (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            username       text NOT NULL,
            name           text NOT NULL,
            role           text NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
            password_hash  text NOT NULL,
            disabled       boolean NOT NULL DEFAULT false,
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX users_username ON users (lower(username));

        CREATE TABLE sessions (
            id          uuid PRIMARY KEY,
            user_id     bigint NOT NULL REFERENCES users (id),
            created_at  timestamptz NOT NULL DEFAULT now(),
            expires_at  timestamptz NOT NULL,
            revoked_at  timestamptz
        );
        -- A user's live sessions, revoked together; the revoked ones each process loads at start.
        CREATE INDEX sessions_of_user ON sessions (user_id) WHERE revoked_at IS NULL;
        CREATE INDEX sessions_revoked ON sessions (expires_at) WHERE revoked_at IS NOT NULL;
        GRANT SELECT (id, expires_at, revoked_at) ON sessions TO {READER_ROLE};

        ALTER TABLE contact_versions ADD COLUMN actor jsonb;
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE contact_versions DROP COLUMN actor; DROP TABLE sessions; DROP TABLE users;")
