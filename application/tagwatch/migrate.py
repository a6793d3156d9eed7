"""`tagwatch migrate-data`: copy one store into another (SQLite → PostgreSQL), resumable, then verify.

Each batch is one write transaction on the target, upserting by primary key, so a run that stops anywhere
can run again: posts and post_tags (append-only, the bulk) continue after the last key already copied,
the other tables are upserted whole (they change in place: followers, aggregates, cursors, runs). The
collector must be stopped meanwhile. Identity sequences on PostgreSQL are moved past the copied ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tagwatch import database
from tagwatch.database import Connection

#: (table, primary key columns, copied by keyset after the target's last key)
TABLES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("places", ("id",), False),
    ("users", ("source", "id"), False),
    ("posts", ("id",), True),
    ("post_tags", ("tag", "post_id"), True),
    ("agg_quarter", ("tag", "bucket", "source"), False),
    ("agg_breakdown", ("tag", "lang", "country", "source"), False),
    ("agg_user", ("source", "user_id", "tag"), False),
    ("agg_tag", ("tag", "source"), False),
    ("tag_state", ("source", "tag"), False),
    ("runs", ("id",), False),
    ("run_sources", ("run_id", "source"), False),
    ("run_tags", ("run_id", "source", "tag"), False),
)
AGGREGATES = ("agg_quarter", "agg_breakdown", "agg_user", "agg_tag")
IDENTITIES = ("runs",)
EXIT_OK, EXIT_MISMATCH = 0, 1


@dataclass(frozen=True)
class Mismatch:
    """A table whose copy differs from the source: row counts, or (aggregates) contents."""

    table: str
    source: int
    target: int


def total_rows(source: Connection) -> int:
    """Rows the copy reads at most (the progress bar's length)."""
    return sum(source.execute(f"SELECT count(*) FROM {table}").scalar_one() for table, _, _ in TABLES)


def copy(source: Connection, target: Connection, batch: int, advance: Callable[[int], None]) -> None:
    """Copy every table in batches, each one target transaction; `advance(n)` after each batch."""
    for table, keys, resumable in TABLES:
        columns = list(source.execute(f"SELECT * FROM {table} LIMIT 0").keys())
        after = _last_key(target, table, keys) if resumable else None
        if after is not None:
            advance(_count_upto(source, table, keys, after))
        while True:
            rows = _read(source, table, columns, keys, after, batch)
            if not rows:
                break
            with database.transaction(target):
                _upsert(target, table, columns, keys, rows)
            after = tuple(rows[-1][columns.index(key)] for key in keys)
            advance(len(rows))
    if target.is_postgresql:
        for table in IDENTITIES:
            target.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )


def _last_key(conn: Connection, table: str, keys: tuple[str, ...]) -> tuple | None:
    order = ", ".join(f"{k} DESC" for k in keys)
    row = conn.execute(f"SELECT {', '.join(keys)} FROM {table} ORDER BY {order} LIMIT 1").first()
    return tuple(row) if row else None


def _after(keys: tuple[str, ...]) -> str:
    return f"({', '.join(keys)}) > ({', '.join('?' * len(keys))})"


def _count_upto(conn: Connection, table: str, keys: tuple[str, ...], key: tuple) -> int:
    return conn.execute(f"SELECT count(*) FROM {table} WHERE NOT {_after(keys)}", key).scalar_one()


def _read(
    conn: Connection, table: str, columns: list[str], keys: tuple[str, ...], after: tuple | None, n: int
) -> list:
    where = f"WHERE {_after(keys)}" if after is not None else ""
    sql = f"SELECT {', '.join(columns)} FROM {table} {where} ORDER BY {', '.join(keys)} LIMIT ?"
    return conn.execute(sql, (*(after or ()), n)).all()


def _upsert(conn: Connection, table: str, columns: list[str], keys: tuple[str, ...], rows) -> None:
    others = [c for c in columns if c not in keys]
    update = f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in others)}" if others else "DO NOTHING"
    conn.executemany(
        f"INSERT INTO {table}({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        f" ON CONFLICT({', '.join(keys)}) {update}",
        [tuple(row) for row in rows],
    )


def verify(source: Connection, target: Connection) -> list[Mismatch]:
    """Tables whose row counts differ, and aggregate tables whose contents differ."""
    mismatches = []
    for table, keys, _ in TABLES:
        counts = [conn.execute(f"SELECT count(*) FROM {table}").scalar_one() for conn in (source, target)]
        if counts[0] != counts[1]:
            mismatches.append(Mismatch(table, *counts))
        elif table in AGGREGATES:
            order = ", ".join(keys)
            source_rows, target_rows = (
                {tuple(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}")}
                for conn in (source, target)
            )
            if source_rows != target_rows:  # counts: rows only in the source, only in the target
                only_source, only_target = len(source_rows - target_rows), len(target_rows - source_rows)
                mismatches.append(Mismatch(table, only_source, only_target))
    return mismatches
