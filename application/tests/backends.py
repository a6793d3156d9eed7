"""Test databases of either backend: a SQLite file path or a PostgreSQL URL, and settings on them."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tagwatch import database, store
from tagwatch.config import Settings


def settings_env(db: Path | str) -> dict[str, str]:
    """The environment variable that points a tagwatch process at `db`."""
    if str(db).startswith("postgresql"):
        return {"TAGWATCH_DATABASE_URL": str(db)}
    return {"TAGWATCH_DB": str(db)}


def settings_on(db: Path | str, **kwargs: Any) -> Settings:
    """Settings whose store is `db` (a file path, or a postgresql:// URL as the db_path fixture gives)."""
    if str(db).startswith("postgresql"):
        return Settings(database_url=str(db), **kwargs)
    return Settings(db_path=str(db), **kwargs)


@contextmanager
def pg_database(server: str, template: str = "template0") -> Iterator[str]:
    """A new database copied from `template` on the test server, dropped afterwards; yields its URL."""
    name = f"tw_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} ENCODING 'UTF8'")
    try:
        yield database.parse_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        database.dispose_all()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def fresh_store(request: pytest.FixtureRequest) -> Iterator[str]:
    """A store at the schema's head for one use (a hypothesis example): a temporary SQLite file, or on
    PostgreSQL a copy of the session's template database."""
    if request.getfixturevalue("backend") == "postgresql":
        template = request.getfixturevalue("pg_template")
        with pg_database(request.getfixturevalue("pg_server"), template) as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.db"
        store.init_db(path)
        yield str(path)
