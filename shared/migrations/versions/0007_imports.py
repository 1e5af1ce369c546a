"""Imports (SPEC §11): a job per uploaded file, and the rows it rejected.

A job holds its file until it is done, so a worker that dies midway leaves nothing half forgotten: the
next one to claim it reads the file again and carries on after `processed`, the rows already applied.
Each batch of rows commits in one transaction with the job's counts and its rejected rows, so a batch
is applied once or not at all (command_api.imports). Inserting a job wakes the workers (`NOTIFY
imports`); a worker announces each batch's progress on `import_progress`, which the notifier forwards to
the importer's WebSocket connections.

Revision ID: 0007
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE import_jobs (
            id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            owner_id        bigint REFERENCES users (id),  -- null for sample data (make seed)
            actor           jsonb NOT NULL,
            source          text NOT NULL DEFAULT 'import',
            correlation_id  text,
            media_type      text NOT NULL,
            content         bytea,  -- the file, until the job is done
            status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
            rows            integer NOT NULL DEFAULT 0,
            processed       integer NOT NULL DEFAULT 0,
            created         integer NOT NULL DEFAULT 0,
            rejected        integer NOT NULL DEFAULT 0,
            attempts        integer NOT NULL DEFAULT 0,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX import_jobs_running ON import_jobs (created_at) WHERE status = 'running';

        CREATE TABLE import_errors (
            job_id   uuid NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
            line     integer NOT NULL,
            field    text NOT NULL,
            message  text NOT NULL
        );
        CREATE INDEX import_errors_of_job ON import_errors (job_id, line);

        CREATE FUNCTION import_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NOTIFY imports;
            RETURN NULL;
        END $$;
        CREATE TRIGGER import_jobs_notify AFTER INSERT ON import_jobs
            FOR EACH STATEMENT EXECUTE FUNCTION import_jobs_notify();
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE import_errors, import_jobs; DROP FUNCTION import_jobs_notify")
