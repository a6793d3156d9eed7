"""Read-only database access for request handlers: pooled read-only connections, one snapshot per call,
and every database fault turned into a 503.

On PostgreSQL each call reads in one REPEATABLE READ READ ONLY transaction from SQLAlchemy's pool, with
TAGWATCH_DB_STATEMENT_TIMEOUT_MS as statement_timeout, and the data version is the counter every write
transaction bumps (revision 0002), read on probe connections of their own: one prepared SELECT per
request, the whole cost of a cache hit. On SQLite:

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


@contextmanager
def driver_errors(base: type[Exception]) -> Iterator[None]:
    """The driver's own exceptions (of a connection used without SQLAlchemy) as SQLAlchemy's, which
    is_fault and as_not_ready read."""
    try:
        yield
    except base as exc:
        raise sa.exc.DBAPIError.instance(None, None, exc, base) from exc


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
                raw = self._probe.conn.sa.connection.dbapi_connection  # no SQLAlchemy on every request
                with driver_errors(sqlite3.Error):
                    return self._probe.identity, raw.execute("PRAGMA data_version").fetchone()[0]
            except DB_ERRORS as exc:
                self._probe.conn.close()
                self._probe = None
                if not is_fault(exc):
                    raise
                raise as_not_ready(exc) from exc


class PostgresDatabase:
    """The readers of one PostgreSQL database in this worker process: SQLAlchemy's pool of psycopg
    connections, each call in its own REPEATABLE READ READ ONLY transaction, and the probe connections
    that read the data version."""

    backend = stores.POSTGRESQL

    def __init__(self, url: str, statement_timeout_ms: int) -> None:
        self.path = stores.masked(url)  # names the database in cache keys; no password
        # no pre-ping: it would double every request's round trips; after a server restart the first
        # request on a dead connection is a 503 and SQLAlchemy then invalidates the whole pool
        self._engine = stores.engine(url, statement_timeout_ms=statement_timeout_ms, pre_ping=False)
        self._probe = VersionProbe(self._engine.url, statement_timeout_ms)

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
        """The data_version counter: every write transaction bumps it (one round trip on the probe)."""
        try:
            return self._probe.read()
        except DB_ERRORS as exc:
            if not is_fault(exc):
                raise
            raise as_not_ready(exc) from exc


class VersionProbe:
    """Autocommit psycopg connections of this worker that only read the data_version row: a cache hit
    costs one prepared SELECT, without SQLAlchemy's pool, a transaction or a ping. Each concurrent request
    takes its own (no waiting behind another's round trip); any error closes them all, as a server restart
    leaves every one dead, and the next read connects anew."""

    SQL = "SELECT version FROM data_version WHERE id = 1"

    def __init__(self, url: sa.URL, statement_timeout_ms: int) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._options = f"-c statement_timeout={int(statement_timeout_ms)}" if statement_timeout_ms else ""
        self._idle: list[psycopg.Cursor] = []
        self._lock = threading.Lock()

    def read(self) -> int:
        """The version now; database errors are raised as SQLAlchemy's exceptions, like the pool's."""
        cursor = None
        try:
            with driver_errors(psycopg.Error):
                cursor = self._take()
                cursor.execute(self.SQL, prepare=True)
                row = cursor.fetchone()
        except DB_ERRORS:
            if cursor is not None:
                cursor.connection.close()
            self.close()
            raise
        self._give(cursor)
        if row is None:
            raise sa.exc.DatabaseError(self.SQL, None, LookupError("the data_version row is missing"))
        return row[0]

    def _take(self) -> psycopg.Cursor:
        """An idle probe (its cursor is kept: a new one per read cost a third of the check's CPU)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5, options=self._options)
        return conn.cursor()

    def _give(self, cursor: psycopg.Cursor) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(cursor)
                return
        cursor.connection.close()

    def close(self) -> None:
        """Close every idle connection (the next read connects anew)."""
        with self._lock:
            stale, self._idle = self._idle, []
        for cursor in stale:
            cursor.connection.close()


_databases: dict[tuple[str, int, int], Database | PostgresDatabase] = {}
_registry_lock = threading.Lock()


def database() -> Database | PostgresDatabase:
    """This worker's readers of the app's configured database (the URL is parsed once, not per request)."""
    settings = current_app.config["SETTINGS"]
    busy = current_app.config.get("DB_BUSY_TIMEOUT_MS", DEFAULT_BUSY_TIMEOUT_MS)
    url, timeout_ms = settings.db_url, settings.db_statement_timeout_ms
    key = (url, busy, timeout_ms)
    db = _databases.get(key)
    if db is not None:
        return db
    with _registry_lock:
        db = _databases.get(key)
        if db is None:
            path = stores.sqlite_path(url)
            db = Database(path, busy) if path is not None else PostgresDatabase(url, timeout_ms)
            _databases[key] = db
        return db


def read(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """`fn(conn, …)` in one snapshot; returns its result and the time the data was read."""
    with database().snapshot() as snap:
        return fn(snap.conn, *args, **kwargs), snap.read_at


def query(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(conn, …)` in one snapshot; a missing, broken or locked database is a 503, never a 500."""
    return read(fn, *args, **kwargs)[0]
