"""The store's schema: Alembic upgrades either backend to the head revision, idempotently.

Revisions are numbered 0001, 0002, …; that number is the schema version (`/readyz`). Concurrent
`tagwatch init-db` runs wait for each other: on SQLite inside BEGIN IMMEDIATE, on PostgreSQL under a
session advisory lock; the one that comes second finds the schema at head and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from tagwatch import database
from tagwatch.database import Connection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn.sa if conn is not None else None
    return config


def head_version() -> int:
    """The schema version this code expects (the newest revision)."""
    return int(ScriptDirectory.from_config(_config()).get_current_head())


SCHEMA_VERSION = head_version()


def schema_version(conn: Connection) -> int:
    """The revision the database is at (0 = empty or no Alembic record)."""
    revision = MigrationContext.configure(conn.sa).get_current_revision()
    return int(revision) if revision else 0


def init_db(target: str | Path | URL) -> int:
    """Create or migrate the schema to head (idempotent, never drops data); returns the schema version."""
    path = database.sqlite_path(target)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = database.connect(target)
    try:
        if conn.is_postgresql:
            return _upgrade_postgresql(conn)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            command.upgrade(_config(conn), "head")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return schema_version(conn)
    finally:
        conn.close()


def _upgrade_postgresql(conn: Connection) -> int:
    conn.execute(f"SELECT pg_advisory_lock({database.MIGRATION_LOCK})")
    try:
        conn.execute("BEGIN")
        try:
            command.upgrade(_config(conn), "head")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return schema_version(conn)
    finally:
        conn.execute(f"SELECT pg_advisory_unlock({database.MIGRATION_LOCK})")
