"""SQLite storage: schema, the per-page write path, tag cursors, runs and the collection lease.

This module holds the only SQL that writes. A page, its aggregate updates and the tag's resume
state commit in one transaction, so a crash at any point followed by a re-run yields the same rows.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tagwatch import timestamps
from tagwatch.parse import ParsedPage, PostRow, UserRow

BUCKET_SECONDS = 900  # quarter hours: every current UTC offset is a multiple of 15 minutes
ALL_TAGS = ""  # aggregate rows under this tag count each post once
LEASE_NAME = "collect"
LEASE_TTL_SECONDS = 120.0

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE users(id TEXT PRIMARY KEY, username TEXT, name TEXT, location TEXT,
            followers INTEGER NOT NULL DEFAULT 0, updated_at TEXT)""",
        """CREATE TABLE places(id TEXT PRIMARY KEY, full_name TEXT, country_code TEXT,
            country TEXT)""",
        """CREATE TABLE posts(id INTEGER PRIMARY KEY, created_at TEXT NOT NULL,
            created_ts INTEGER NOT NULL, text TEXT NOT NULL, lang TEXT, author_id TEXT,
            place_id TEXT, country TEXT, country_source TEXT, collected_at TEXT NOT NULL)""",
        "CREATE INDEX posts_by_author ON posts(author_id, id)",
        """CREATE TABLE post_tags(tag TEXT NOT NULL, post_id INTEGER NOT NULL,
            PRIMARY KEY(tag, post_id)) WITHOUT ROWID""",
        "CREATE INDEX post_tags_by_post ON post_tags(post_id)",
        """CREATE TABLE agg_quarter(tag TEXT NOT NULL, bucket INTEGER NOT NULL,
            posts INTEGER NOT NULL, PRIMARY KEY(tag, bucket)) WITHOUT ROWID""",
        """CREATE TABLE agg_breakdown(tag TEXT NOT NULL, lang TEXT NOT NULL, country TEXT NOT NULL,
            posts INTEGER NOT NULL, PRIMARY KEY(tag, lang, country)) WITHOUT ROWID""",
        """CREATE TABLE agg_user(user_id TEXT NOT NULL, tag TEXT NOT NULL, posts INTEGER NOT NULL,
            followers INTEGER NOT NULL, username TEXT, PRIMARY KEY(user_id, tag)) WITHOUT ROWID""",
        "CREATE INDEX agg_user_top ON agg_user(tag, followers DESC, username)",
        """CREATE TABLE agg_tag(tag TEXT PRIMARY KEY, posts INTEGER NOT NULL,
            newest_ts INTEGER NOT NULL)""",
        """CREATE TABLE tag_state(tag TEXT PRIMARY KEY, since_id TEXT, pending_since_id TEXT,
            pending_next_token TEXT, pending_newest_id TEXT, updated_at TEXT)""",
        """CREATE TABLE runs(id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL,
            finished_at TEXT, source TEXT NOT NULL, trigger TEXT NOT NULL, status TEXT NOT NULL,
            error TEXT)""",
        """CREATE TABLE run_tags(run_id INTEGER NOT NULL, tag TEXT NOT NULL,
            requests INTEGER NOT NULL DEFAULT 0, posts_read INTEGER NOT NULL DEFAULT 0,
            posts_new INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending',
            error TEXT, PRIMARY KEY(run_id, tag))""",
        """CREATE TABLE lease(name TEXT PRIMARY KEY, run_id INTEGER, holder TEXT NOT NULL,
            expires_at REAL NOT NULL)""",
    ),
    (  # the post list's filters (GET /api/v1/posts) each use an index, newest first
        "CREATE INDEX IF NOT EXISTS users_by_username ON users(username COLLATE NOCASE)",
        "CREATE INDEX IF NOT EXISTS posts_by_lang ON posts(lang COLLATE NOCASE, id)",
        "CREATE INDEX IF NOT EXISTS posts_by_country ON posts(country, id)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class TagCursor:
    """Where a tag's collection stands: the committed since_id and any half-followed pagination."""

    since_id: str | None = None
    pending_since_id: str | None = None
    pending_next_token: str | None = None
    pending_newest_id: str | None = None


@dataclass(frozen=True)
class RunStart:
    """Outcome of asking for the lease: our new run id, or the id of the run that holds it."""

    run_id: int
    started: bool


def connect(path: str | Path, readonly: bool = False) -> sqlite3.Connection:
    """Open a connection in autocommit mode (transactions are explicit) with a busy timeout."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=10, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: keeps index pages hot during big seeds
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception: the unit of crash safety."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def init_db(path: str | Path) -> int:
    """Create or migrate the schema (idempotent, never drops data); returns the schema version."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        version = schema_version(conn)
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            with transaction(conn):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
        return schema_version(conn)
    finally:
        conn.close()


def schema_version(conn: sqlite3.Connection) -> int:
    """The migration number the database is at (0 = empty)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def get_cursor(conn: sqlite3.Connection, tag: str) -> TagCursor:
    """The tag's stored cursor, or an empty one for a tag never collected."""
    row = conn.execute(
        "SELECT since_id, pending_since_id, pending_next_token, pending_newest_id "
        "FROM tag_state WHERE tag = ?",
        (tag,),
    ).fetchone()
    return TagCursor(*row) if row else TagCursor()


def save_cursor(conn: sqlite3.Connection, tag: str, cursor: TagCursor) -> None:
    """Upsert a tag's cursor (call inside the page's transaction)."""
    conn.execute(
        "INSERT INTO tag_state(tag, since_id, pending_since_id, pending_next_token,"
        " pending_newest_id, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(tag) DO UPDATE SET since_id = excluded.since_id,"
        " pending_since_id = excluded.pending_since_id,"
        " pending_next_token = excluded.pending_next_token,"
        " pending_newest_id = excluded.pending_newest_id, updated_at = excluded.updated_at",
        (
            tag,
            cursor.since_id,
            cursor.pending_since_id,
            cursor.pending_next_token,
            cursor.pending_newest_id,
            timestamps.utc(),
        ),
    )


def store_page(
    conn: sqlite3.Connection,
    page: ParsedPage,
    *,
    tag: str,
    cursor: TagCursor,
    run_id: int | None,
    posts_read: int,
    requests: int = 1,
) -> int:
    """Store one page with its aggregates, cursor and run figures atomically; returns new posts."""
    with transaction(conn):
        new_posts = write_rows(conn, page)
        save_cursor(conn, tag, cursor)
        if run_id is not None:
            conn.execute(
                "UPDATE run_tags SET requests = requests + ?, posts_read = posts_read + ?,"
                " posts_new = posts_new + ? WHERE run_id = ? AND tag = ?",
                (requests, posts_read, len(new_posts), run_id, tag),
            )
            renew_lease(conn, run_id)
    return len(new_posts)


def write_rows(conn: sqlite3.Connection, page: ParsedPage) -> list[PostRow]:
    """Upsert places and users, insert unseen posts and fold them into the aggregates."""
    conn.executemany(
        "INSERT INTO places(id, full_name, country_code, country) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET full_name = excluded.full_name,"
        " country_code = excluded.country_code, country = excluded.country",
        [(p.id, p.full_name, p.country_code, p.country) for p in page.places],
    )
    upsert_users(conn, page.users)
    new_posts = unseen_posts(conn, page.posts)
    collected_at = timestamps.utc()
    conn.executemany(
        "INSERT INTO posts(id, created_at, created_ts, text, lang, author_id, place_id, country,"
        " country_source, collected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                p.id,
                p.created_at,
                p.created_ts,
                p.text,
                p.lang,
                p.author_id,
                p.place_id,
                p.country,
                p.country_source,
                collected_at,
            )
            for p in new_posts
        ],
    )
    conn.executemany(
        "INSERT INTO post_tags(tag, post_id) VALUES (?, ?)",
        [(tag, p.id) for p in new_posts for tag in p.tags],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO users(id, followers) VALUES (?, 0)",
        [(p.author_id,) for p in new_posts if p.author_id],
    )
    add_to_aggregates(conn, new_posts)
    return new_posts


def upsert_users(conn: sqlite3.Connection, users: Sequence[UserRow]) -> None:
    """Insert or refresh users (latest follower count wins) and keep agg_user's copy in step."""
    now = timestamps.utc()
    conn.executemany(
        "INSERT INTO users(id, username, name, location, followers, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
        " username = coalesce(excluded.username, username), name = coalesce(excluded.name, name),"
        " location = excluded.location, followers = excluded.followers,"
        " updated_at = excluded.updated_at",
        [(u.id, u.username, u.name, u.location, u.followers, now) for u in users],
    )
    conn.executemany(
        "UPDATE agg_user SET followers = ?, username = coalesce(?, username)"
        " WHERE user_id = ? AND (followers != ? OR username IS NOT coalesce(?, username))",
        [(u.followers, u.username, u.id, u.followers, u.username) for u in users],
    )


def unseen_posts(conn: sqlite3.Connection, posts: Sequence[PostRow]) -> list[PostRow]:
    """Posts of the page that are not stored yet (first occurrence wins within the page)."""
    by_id = {}
    for post in posts:
        by_id.setdefault(post.id, post)
    ids = list(by_id)
    seen: set[int] = set()
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        marks = ",".join("?" * len(chunk))
        seen.update(row[0] for row in conn.execute(f"SELECT id FROM posts WHERE id IN ({marks})", chunk))
    return [post for post_id, post in by_id.items() if post_id not in seen]


def add_to_aggregates(conn: sqlite3.Connection, posts: Sequence[PostRow]) -> None:
    """Fold new posts into the small tables the summaries read, so reads never scan posts."""
    quarter: Counter[tuple[str, int]] = Counter()
    breakdown: Counter[tuple[str, str, str]] = Counter()
    per_user: Counter[tuple[str, str]] = Counter()
    per_tag: Counter[str] = Counter()
    newest: dict[str, int] = {}
    for post in posts:
        bucket = post.created_ts // BUCKET_SECONDS
        for tag in (ALL_TAGS, *post.tags):
            quarter[(tag, bucket)] += 1
            per_tag[tag] += 1
            newest[tag] = max(newest.get(tag, 0), post.created_ts)
            if post.author_id:
                per_user[(post.author_id, tag)] += 1
            if tag != ALL_TAGS:
                breakdown[(tag, post.lang or "", post.country or "")] += 1
    conn.executemany(
        "INSERT INTO agg_quarter(tag, bucket, posts) VALUES (?, ?, ?)"
        " ON CONFLICT(tag, bucket) DO UPDATE SET posts = posts + excluded.posts",
        [(tag, bucket, n) for (tag, bucket), n in quarter.items()],
    )
    conn.executemany(
        "INSERT INTO agg_breakdown(tag, lang, country, posts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(tag, lang, country) DO UPDATE SET posts = posts + excluded.posts",
        [(tag, lang, country, n) for (tag, lang, country), n in breakdown.items()],
    )
    conn.executemany(
        "INSERT INTO agg_user(user_id, tag, posts, followers, username)"
        " SELECT ?, ?, ?, followers, username FROM users WHERE id = ? AND true"
        " ON CONFLICT(user_id, tag) DO UPDATE SET posts = posts + excluded.posts",
        [(user_id, tag, n, user_id) for (user_id, tag), n in per_user.items()],
    )
    conn.executemany(
        "INSERT INTO agg_tag(tag, posts, newest_ts) VALUES (?, ?, ?)"
        " ON CONFLICT(tag) DO UPDATE SET posts = posts + excluded.posts,"
        " newest_ts = max(newest_ts, excluded.newest_ts)",
        [(tag, n, newest[tag]) for tag, n in per_tag.items()],
    )


def begin_run(
    conn: sqlite3.Connection,
    *,
    source: str,
    trigger: str,
    tags: Sequence[str],
    holder: str,
    now: float | None = None,
    ttl: float = LEASE_TTL_SECONDS,
) -> RunStart:
    """Take the collection lease and record a new run, or report the run that holds the lease."""
    now = time.time() if now is None else now
    with transaction(conn):
        row = conn.execute("SELECT run_id, expires_at FROM lease WHERE name = ?", (LEASE_NAME,)).fetchone()
        if row is not None and row["expires_at"] > now:
            return RunStart(run_id=row["run_id"], started=False)
        conn.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?,"
            " error = 'abandoned: the process running it stopped' WHERE status = 'running'",
            (timestamps.utc(now),),
        )
        run_id = conn.execute(
            "INSERT INTO runs(started_at, source, trigger, status) VALUES (?, ?, ?, 'running')",
            (timestamps.utc(now), source, trigger),
        ).lastrowid
        conn.executemany("INSERT INTO run_tags(run_id, tag) VALUES (?, ?)", [(run_id, tag) for tag in tags])
        conn.execute(
            "INSERT INTO lease(name, run_id, holder, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET run_id = excluded.run_id,"
            " holder = excluded.holder, expires_at = excluded.expires_at",
            (LEASE_NAME, run_id, holder, now + ttl),
        )
    return RunStart(run_id=int(run_id), started=True)


def renew_lease(conn: sqlite3.Connection, run_id: int, extra: float = 0.0, now: float | None = None) -> None:
    """Push the lease's expiry forward (by `extra` more seconds before a long wait)."""
    now = time.time() if now is None else now
    conn.execute(
        "UPDATE lease SET expires_at = ? WHERE name = ? AND run_id = ?",
        (now + LEASE_TTL_SECONDS + extra, LEASE_NAME, run_id),
    )


def extend_lease(conn: sqlite3.Connection, run_id: int, seconds: float) -> None:
    """Keep the lease through a known wait (a rate-limit reset), in its own transaction."""
    with transaction(conn):
        renew_lease(conn, run_id, extra=seconds)


def finish_tag(
    conn: sqlite3.Connection, run_id: int, tag: str, status: str, error: str | None = None
) -> None:
    """Record how one tag's part of a run ended."""
    with transaction(conn):
        conn.execute(
            "UPDATE run_tags SET status = ?, error = ? WHERE run_id = ? AND tag = ?",
            (status, error, run_id, tag),
        )


def finish_run(conn: sqlite3.Connection, run_id: int, status: str, error: str | None = None) -> None:
    """Close a run and release the lease in one transaction."""
    with transaction(conn):
        conn.execute(
            "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?",
            (status, error, timestamps.utc(), run_id),
        )
        conn.execute(  # tags a stopped or failed run never reached
            "UPDATE run_tags SET status = 'skipped' WHERE run_id = ? AND status = 'pending'", (run_id,)
        )
        conn.execute("DELETE FROM lease WHERE name = ? AND run_id = ?", (LEASE_NAME, run_id))
