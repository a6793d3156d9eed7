"""Connections to the store on either backend: SQLite (a file) or PostgreSQL, through SQLAlchemy Core.

The SQL of the package is portable (standard SQL plus `INSERT … ON CONFLICT`, which both backends speak);
SQLAlchemy supplies the dialects, the driver (sqlite3, psycopg 3) and PostgreSQL's connection pool. A
`Connection` runs that SQL as `text()` clauses, numbering the `?` placeholders the code is written with,
and runs in autocommit: write transactions are explicit (`transaction`), as SQLite's BEGIN IMMEDIATE or
PostgreSQL's BEGIN plus the writer lock, so both backends let one writer transaction in at a time.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, CursorResult, make_url
from sqlalchemy.pool import NullPool

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
#: pg_advisory_xact_lock key of the writer lock (PostgreSQL's stand-in for BEGIN IMMEDIATE)
WRITER_LOCK = 0x7461_6777  # "tagw"
#: pg_advisory_lock key held while the schema migrates (concurrent `tagwatch init-db`)
MIGRATION_LOCK = 0x7461_676D  # "tagm"
DB_ERRORS = (sa.exc.SQLAlchemyError,)
URL_FORM = "sqlite:///path or postgresql://user:password@host:port/db"
_PLACEHOLDER = re.compile(r"\?")


class BadDatabaseUrl(ValueError):
    """TAGWATCH_DATABASE_URL is not a sqlite:/// or postgresql:// URL."""


def parse_url(raw: str) -> URL:
    """`sqlite:///path` or `postgresql://user:password@host:port/db` (also `postgres://`), with the
    PostgreSQL driver set to psycopg 3; raises BadDatabaseUrl on anything else."""
    try:
        url = make_url(raw)
    except (sa.exc.ArgumentError, ValueError):
        raise BadDatabaseUrl("not a URL of the form scheme://…") from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        backend = POSTGRESQL
    if backend == SQLITE and driver in ("", "pysqlite"):
        if not url.database or url.database == ":memory:":
            raise BadDatabaseUrl("a sqlite URL needs a file path: sqlite:///data/tagwatch.db")
        return url.set(drivername=SQLITE)
    if backend == POSTGRESQL and driver in ("", "psycopg"):
        if not url.database:
            raise BadDatabaseUrl("a postgresql URL needs a database name: postgresql://user@host:5432/db")
        return url.set(drivername="postgresql+psycopg")
    raise BadDatabaseUrl(f"unsupported scheme {url.drivername!r}: use sqlite:///path or postgresql://…")


def sqlite_url(path: str | Path) -> str:
    """The URL of a SQLite file path (relative paths stay relative)."""
    return f"sqlite:///{path}"


def as_url(target: str | Path) -> URL:
    """A database URL from a URL or, as the code and tests long used, a SQLite file path."""
    text = str(target)
    return parse_url(text if "://" in text else sqlite_url(text))


def masked(target: str | Path | URL) -> str:
    """The URL as given, with its password hidden, for logs and messages."""
    if isinstance(target, URL):
        return target.render_as_string(hide_password=True)
    text = str(target)
    try:
        return make_url(text if "://" in text else sqlite_url(text)).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "(not a URL)"


def backend_of(target: str | Path | URL) -> str:
    """`sqlite` or `postgresql`."""
    url = target if isinstance(target, URL) else as_url(target)
    return url.get_backend_name()


def sqlite_path(target: str | Path | URL) -> str | None:
    """The file of a SQLite URL (None for PostgreSQL)."""
    url = target if isinstance(target, URL) else as_url(target)
    return url.database if url.get_backend_name() == SQLITE else None


_engines: dict[tuple[str, tuple[tuple[str, Any], ...]], sa.Engine] = {}
_engines_lock = threading.Lock()


def engine(target: str | Path | URL, **options: Any) -> sa.Engine:
    """The process's engine for a URL (one pool per URL and options; SQLite opens a file per connect)."""
    url = target if isinstance(target, URL) else as_url(target)
    key = (url.render_as_string(hide_password=False), tuple(sorted(options.items())))
    with _engines_lock:
        found = _engines.get(key)
        if found is None:
            found = _engines[key] = _create_engine(url, **options)
        return found


def _create_engine(
    url: URL,
    statement_timeout_ms: int | None = None,
    pool_size: int = 4,
    readonly: bool = False,
    pre_ping: bool = True,
) -> sa.Engine:
    if url.get_backend_name() == SQLITE:
        created = sa.create_engine(
            url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={"timeout": 10, "check_same_thread": False},
        )
        sa.event.listen(created, "connect", _sqlite_pragmas)
        return created
    options = [f"-c statement_timeout={int(statement_timeout_ms)}"] if statement_timeout_ms else []
    if readonly:
        options.append("-c default_transaction_read_only=on")
    connect_args: dict[str, Any] = {"connect_timeout": 5, "options": " ".join(options)}
    return sa.create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_size=pool_size,
        max_overflow=4,
        pool_timeout=5,
        pool_pre_ping=pre_ping,
        connect_args=connect_args,
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA busy_timeout = 10000")
    dbapi_conn.execute("PRAGMA synchronous = NORMAL")
    dbapi_conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: keeps index pages hot during big seeds


def dispose_all() -> None:
    """Close every pooled connection (after a fork, or at the end of tests)."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for each in engines:
        each.dispose()


@functools.lru_cache(maxsize=1024)
def _text(sql: str) -> sa.TextClause:
    """`?` placeholders as the numbered bind parameters of a text() clause."""
    counter = iter(range(10_000))
    return sa.text(_PLACEHOLDER.sub(lambda _: f":p{next(counter)}", sql))


@functools.lru_cache(maxsize=256)
def _driver_sql(sql: str, postgresql: bool) -> str:
    """`?` placeholders in the driver's own style: sqlite3's are `?`, psycopg's `%s` (a literal % doubled)."""
    return _PLACEHOLDER.sub("%s", sql.replace("%", "%%")) if postgresql else sql


def _binds(params: Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(params, Mapping):
        return dict(params)
    return {f"p{index}": value for index, value in enumerate(params)}


class Connection:
    """One autocommit connection of either backend; `execute` runs portable SQL with `?` parameters."""

    def __init__(self, conn: sa.Connection) -> None:
        self.sa = conn
        self.backend = conn.dialect.name

    @property
    def is_postgresql(self) -> bool:
        return self.backend == POSTGRESQL

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> CursorResult:
        """Run one statement; rows support index, unpacking and attribute access (`row.id`)."""
        self._reconnect_if_lost()
        with _short_errors():
            return self.sa.execute(_text(sql), _binds(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each parameter row (nothing for none). The rows go to the driver as they
        are (`exec_driver_sql`): building SQLAlchemy's bind parameters row by row cost ingest more time than
        the database's own work. Errors and lost connections are still handled by SQLAlchemy."""
        batch = [tuple(row) for row in rows]
        if batch:
            self._reconnect_if_lost()
            with _short_errors():
                self.sa.exec_driver_sql(_driver_sql(sql, self.is_postgresql), batch)

    def _reconnect_if_lost(self) -> None:
        """After the server dropped the connection (restart, pg_terminate_backend) SQLAlchemy has
        invalidated it; a long-lived connection (the collector's) takes a new one on its next statement."""
        if self.sa.invalidated:
            self.sa.rollback()

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open on the server side (after an error it may be gone)."""
        if self.sa.invalidated:
            return False
        raw = self.sa.connection.dbapi_connection
        if self.is_postgresql:
            return raw.info.transaction_status != 0  # psycopg's pq.TransactionStatus.IDLE
        return bool(raw.in_transaction)

    def close(self) -> None:
        self.sa.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _short_errors() -> Iterator[None]:
    """Errors read as the driver's message: no SQL text or parameters (post text, huge batches) in run
    records, logs or 503 details."""
    try:
        yield
    except sa.exc.StatementError as exc:
        exc.statement, exc.params, exc.code = None, None, None  # type: ignore[assignment]
        raise


def connect(target: str | Path | URL, readonly: bool = False) -> Connection:
    """An autocommit connection (transactions are explicit); `readonly` refuses writes."""
    url = target if isinstance(target, URL) else as_url(target)
    pg_readonly = readonly and url.get_backend_name() == POSTGRESQL
    conn = Connection((engine(url, readonly=True) if pg_readonly else engine(url)).connect())
    try:
        if readonly and not pg_readonly:
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """The write transaction: one writer at a time, rolled back on any exception.

    SQLite takes its write lock at BEGIN IMMEDIATE; PostgreSQL takes a transaction-scoped advisory lock,
    the same serialisation. SQLite has already rolled back by itself after some errors (SQLITE_FULL);
    a second ROLLBACK would hide the real error, so it is issued only while a transaction is open.
    """
    if conn.is_postgresql:
        conn.execute("BEGIN")
        try:
            conn.execute(f"SELECT pg_advisory_xact_lock({WRITER_LOCK})")
        except BaseException:
            _rollback(conn)
            raise
    else:
        conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("UPDATE data_version SET version = version + 1")  # read by the API's caches
    except BaseException:
        _rollback(conn)
        raise
    conn.execute("COMMIT")


def _rollback(conn: Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except DB_ERRORS:  # the connection itself is gone: the server rolled back
        pass
