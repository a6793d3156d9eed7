"""Read-only database access for request handlers: one cached connection per worker thread."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from flask import current_app

from tagwatch import store
from tagwatch.api.errors import ApiError

_local = threading.local()


def reader() -> sqlite3.Connection:
    """This thread's query-only connection; 503 while the collector has not created the database."""
    path = current_app.config["SETTINGS"].db_path
    conn = getattr(_local, "conns", {}).get(path)
    if conn is None:
        if not Path(path).exists():
            raise ApiError(
                503, "Database not ready", "The database has not been created yet (run `tagwatch init-db`)."
            )
        conn = store.connect(path, readonly=True)
        _local.__dict__.setdefault("conns", {})[path] = conn
    return conn


def query(fn, *args, **kwargs):
    """Run a read function; a missing schema, a locked or a broken database is a clear 503, never a 500."""
    try:
        return fn(reader(), *args, **kwargs)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise ApiError(
                503, "Database not ready", "The database schema is missing (run `tagwatch init-db`)."
            ) from exc
        raise ApiError(503, "Database not ready", f"The database cannot be read right now: {exc}") from exc
    except sqlite3.DatabaseError as exc:  # e.g. a file that is not a SQLite database
        raise ApiError(503, "Database not ready", f"The database cannot be read: {exc}") from exc
