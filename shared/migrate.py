"""Create the database if it is absent, then apply every migration: `python -m shared.migrate`."""

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from shared.settings import get_settings

MIGRATIONS = Path(__file__).with_name("migrations")


def create_database_if_absent(url: str) -> None:
    name = conninfo_to_dict(url).get("dbname")
    if not name:
        return
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))


def upgrade(url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    sqlalchemy_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))  # configparser escaping
    command.upgrade(config, "head")


def let_role_log_in(url: str, role: str, password: str) -> None:
    """Give a role created NOLOGIN by the migrations (the read-only one) a login with `password`.

    Deployment, not schema: the password comes from the environment on every run, never from a migration.
    """
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))


def main() -> None:
    settings = get_settings()
    url = settings.database_url
    create_database_if_absent(url)
    upgrade(url)
    if settings.query_database_role and settings.query_database_password:
        let_role_log_in(url, settings.query_database_role, settings.query_database_password.get_secret_value())


if __name__ == "__main__":
    main()
