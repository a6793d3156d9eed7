"""Read-only database access for request handlers: pooled read-only connections, one snapshot per call,
and every database fault turned into a 503.

On PostgreSQL each call reads in one REPEATABLE READ READ ONLY transaction from SQLAlchemy's pool, with
TAGWATCH_DB_STATEMENT_TIMEOUT_MS as statement_timeout, and the data version is the counter every write
transaction bumps (revision 0002). On SQLite:

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

import psycopg
import sqlalchemy as sa
from flask import current_app

from tagwatch import database as stores
from tagwatch.api.errors import ApiError
from tagwatch.database import DB_ERRORS, Connection

T = TypeVar("T")
DEFAULT_BUSY_TIMEOUT_MS = 2000  # short: a locked database is a 503 well before gunicorn's worker timeout
MAX_IDLE = 16
Identity = tuple[int, int]


@dataclass
class Reader:
    """A query-only connection and the file (device, inode) it was opened on."""

    conn: Connection
    identity: Identity


@dataclass(frozen=True)
class Snapshot:
    """One read transaction: its connection and the Unix time the data was read."""

    conn: Connection
    read_at: float


def not_ready(detail: str) -> ApiError:
    """The 503 every database fault becomes."""
    return ApiError(503, "Database not ready", detail)


FAULTS = (
    sa.exc.OperationalError,  # locked, unreachable, refused, auth failed, killed, statement timeout, …
    sa.exc.InternalError,
    sa.exc.DisconnectionError,
    sa.exc.TimeoutError,  # no pooled connection came free in time
    sa.exc.PendingRollbackError,
)


def is_fault(exc: BaseException) -> bool:
    """An error of the database, its files, server or locks, not of our SQL (those stay 500s: bugs)."""
    if isinstance(exc, FAULTS) or _schema_missing(exc):
        return True
    return type(exc) is sa.exc.DatabaseError  # e.g. "file is not a database", "disk image is malformed"


def _schema_missing(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return isinstance(orig, psycopg.errors.UndefinedTable) or "no such table" in str(orig or exc)


def as_not_ready(exc: BaseException) -> ApiError:
    """A database fault as a 503 naming what to do (the driver's message, never the URL's password)."""
    if _schema_missing(exc):
        return not_ready("The database schema is missing (run `tagwatch init-db`).")
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return not_ready(f"The database cannot be read right now: {lines[0] if lines else type(exc).__name__}")


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

    backend = stores.SQLITE

    def __init__(self, path: str, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self._engine = sa.create_engine(
            "sqlite://", creator=self._connect_file, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
        )
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

    def _connect_file(self) -> sqlite3.Connection:
        """`mode=rw` so that a missing file is an error, never created."""
        uri = f"file:{quote(str(Path(self.path).absolute()))}?mode=rw"
        return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)

    def open(self) -> Reader:
        """A new query-only connection of the current file."""
        for _ in range(3):
            before = self.current()
            try:
                conn = Connection(self._engine.connect())
            except DB_ERRORS as exc:
                raise as_not_ready(exc) from exc
            if self.current() == before:  # not replaced while we opened it
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
        except DB_ERRORS as exc:
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
                return self._probe.identity, self._probe.conn.execute("PRAGMA data_version").scalar_one()
            except DB_ERRORS as exc:
                self._probe.conn.close()
                self._probe = None
                if not is_fault(exc):
                    raise
                raise as_not_ready(exc) from exc


class PostgresDatabase:
    """The readers of one PostgreSQL database in this worker process: SQLAlchemy's pool of psycopg
    connections, each call in its own REPEATABLE READ READ ONLY transaction."""

    backend = stores.POSTGRESQL

    def __init__(self, url: str, statement_timeout_ms: int) -> None:
        self.path = stores.masked(url)  # names the database in cache keys; no password
        # no pre-ping: it would double every request's round trips; after a server restart the first
        # request on a dead connection is a 503 and SQLAlchemy then invalidates the whole pool
        self._engine = stores.engine(url, statement_timeout_ms=statement_timeout_ms, pre_ping=False)

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A pooled connection, given back afterwards; faults (including at connect) become 503s."""
        conn = None
        try:
            conn = Connection(self._engine.connect())
            yield conn
        except DB_ERRORS as exc:
            if not is_fault(exc):
                raise
            raise as_not_ready(exc) from exc
        finally:
            if conn is not None:
                conn.close()

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """One snapshot: every SELECT inside sees the same commits."""
        with self._connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            conn.execute("SELECT 1").all()  # takes the snapshot
            yield Snapshot(conn, time.time())
            conn.execute("COMMIT")

    def version(self) -> int:
        """The data_version counter: every write transaction bumps it (one cheap read)."""
        with self._connection() as conn:
            return conn.execute("SELECT version FROM data_version WHERE id = 1").scalar_one()


_databases: dict[tuple[str, int], Database | PostgresDatabase] = {}
_registry_lock = threading.Lock()


def database() -> Database | PostgresDatabase:
    """This worker's readers of the app's configured database."""
    settings = current_app.config["SETTINGS"]
    url = settings.db_url
    path = stores.sqlite_path(url)
    busy = current_app.config.get("DB_BUSY_TIMEOUT_MS", DEFAULT_BUSY_TIMEOUT_MS)
    key = (url, busy if path is not None else settings.db_statement_timeout_ms)
    with _registry_lock:
        db = _databases.get(key)
        if db is None:
            db = _databases[key] = Database(path, busy) if path is not None else PostgresDatabase(url, key[1])
        return db


def read(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """`fn(conn, …)` in one snapshot; returns its result and the time the data was read."""
    with database().snapshot() as snap:
        return fn(snap.conn, *args, **kwargs), snap.read_at


def query(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(conn, …)` in one snapshot; a missing, broken or locked database is a 503, never a 500."""
    return read(fn, *args, **kwargs)[0]
