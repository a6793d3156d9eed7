"""Read-only database access for request handlers: pooled query-only connections, one snapshot per call,
the file watched, and every SQLite fault turned into a 503.

A pool (not one connection per thread) because gevent workers run each request in its own greenlet. Each
connection remembers which file it opened (device, inode): when the path is deleted or replaced, idle
connections are closed at once and busy ones when they come back, so no worker keeps serving an unlinked
file, and the next request opens the new one.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from flask import current_app

from tagwatch.api.errors import ApiError

T = TypeVar("T")
DEFAULT_BUSY_TIMEOUT_MS = 2000  # short: a locked database is a 503 well before gunicorn's worker timeout
MAX_IDLE = 16
Identity = tuple[int, int]


@dataclass
class Reader:
    """A query-only connection and the file (device, inode) it was opened on."""

    conn: sqlite3.Connection
    identity: Identity


@dataclass(frozen=True)
class Snapshot:
    """One read transaction: its connection and the Unix time the data was read."""

    conn: sqlite3.Connection
    read_at: float


def not_ready(detail: str) -> ApiError:
    """The 503 every database fault becomes."""
    return ApiError(503, "Database not ready", detail)


def is_fault(exc: BaseException) -> bool:
    """An error of the database file or its locks, not of our SQL (those stay 500s: they are bugs)."""
    if isinstance(exc, sqlite3.OperationalError | sqlite3.InternalError):
        return True
    return type(exc) is sqlite3.DatabaseError  # e.g. "file is not a database", "disk image is malformed"


def as_not_ready(exc: sqlite3.Error) -> ApiError:
    """A database fault as a 503 naming what to do."""
    if "no such table" in str(exc):
        return not_ready("The database schema is missing (run `tagwatch init-db`).")
    return not_ready(f"The database cannot be read right now: {exc}")


def file_identity(path: str) -> Identity:
    """(device, inode) of the database file; 503 when it does not exist."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise not_ready("The database has not been created yet (run `tagwatch init-db`).") from None
    except OSError as exc:
        raise not_ready(f"The database file cannot be reached: {exc.strerror}") from None
    return stat.st_dev, stat.st_ino


class Database:
    """The readers of one database path in this worker process."""

    def __init__(self, path: str, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._idle: list[Reader] = []
        self._identity: Identity | None = None
        self._lock = threading.Lock()
        self._probe: Reader | None = None
        self._probe_lock = threading.RLock()  # open() inside version() may come back through _forget()

    def current(self) -> Identity:
        """The file's identity now; on any change every idle reader of the old file is closed."""
        try:
            identity = file_identity(self.path)
        except ApiError:
            self._forget(None)
            raise
        if identity != self._identity:
            self._forget(identity)
        return identity

    def _forget(self, identity: Identity | None) -> None:
        """Close every idle reader and the probe: they hold a file that is gone or replaced."""
        with self._lock:
            stale, self._idle, self._identity = self._idle, [], identity
        with self._probe_lock:
            if self._probe is not None and self._probe.identity != identity:
                stale.append(self._probe)
                self._probe = None
        for reader in stale:
            reader.conn.close()

    def open(self) -> Reader:
        """A new query-only connection; `mode=rw` so that a missing file is an error, never created."""
        for _ in range(3):
            before = self.current()
            uri = f"file:{quote(str(Path(self.path).absolute()))}?mode=rw"
            try:
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise as_not_ready(exc) from exc
            if self.current() == before:  # not replaced while we opened it
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                conn.execute("PRAGMA query_only = ON")
                return Reader(conn, before)
            conn.close()
        raise not_ready("The database file keeps being replaced; try again.")

    def checkout(self) -> Reader:
        """An idle reader of the current file, or a new one."""
        identity = self.current()
        with self._lock:
            while self._idle:
                reader = self._idle.pop()
                if reader.identity == identity:
                    return reader
                reader.conn.close()
        return self.open()

    def checkin(self, reader: Reader) -> None:
        """Back to the pool, unless its file was replaced meanwhile or the pool is full."""
        with self._lock:
            if reader.identity == self._identity and len(self._idle) < MAX_IDLE:
                self._idle.append(reader)
                return
        reader.conn.close()

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """One read transaction: every SELECT inside sees the same commit. Faults become 503s."""
        reader = self.checkout()
        healthy = False
        try:
            reader.conn.execute("BEGIN")
            reader.conn.execute("SELECT 1 FROM sqlite_schema LIMIT 1").fetchall()  # pins the snapshot
            yield Snapshot(reader.conn, time.time())
            reader.conn.execute("COMMIT")
            healthy = True
        except sqlite3.Error as exc:
            if not is_fault(exc):
                raise
            raise as_not_ready(exc) from exc
        finally:
            if healthy:
                self.checkin(reader)
            else:
                reader.conn.close()

    def version(self) -> tuple[Identity, int]:
        """A token that changes whenever anyone commits to the current file (data_version of one probe
        connection shared by the worker: data_version values of different connections do not compare)."""
        identity = self.current()
        with self._probe_lock:
            if self._probe is None or self._probe.identity != identity:
                if self._probe is not None:
                    self._probe.conn.close()
                    self._probe = None
                self._probe = self.open()
            try:
                return self._probe.identity, self._probe.conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error as exc:
                self._probe.conn.close()
                self._probe = None
                if not is_fault(exc):
                    raise
                raise as_not_ready(exc) from exc


_databases: dict[tuple[str, int], Database] = {}
_registry_lock = threading.Lock()


def database() -> Database:
    """This worker's Database for the app's configured path."""
    path = current_app.config["SETTINGS"].db_path
    busy = current_app.config.get("DB_BUSY_TIMEOUT_MS", DEFAULT_BUSY_TIMEOUT_MS)
    with _registry_lock:
        db = _databases.get((path, busy))
        if db is None:
            db = _databases[(path, busy)] = Database(path, busy)
        return db


def read(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """`fn(conn, …)` in one snapshot; returns its result and the time the data was read."""
    with database().snapshot() as snap:
        return fn(snap.conn, *args, **kwargs), snap.read_at


def query(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(conn, …)` in one snapshot; a missing, broken or locked database is a 503, never a 500."""
    return read(fn, *args, **kwargs)[0]
