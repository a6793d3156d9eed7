"""The schema of the release before Alembic, built the way that release built it (a copy of its
MIGRATIONS and `PRAGMA user_version`), for the upgrade-in-place tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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
    (  # schema 2: lease holder process (fencing), posts waiting for their author or place,
        # run requests (POST /api/v1/collect) and the heartbeat of long-running collectors
        "ALTER TABLE lease ADD COLUMN host TEXT",
        "ALTER TABLE lease ADD COLUMN pid INTEGER",
        "ALTER TABLE posts ADD COLUMN country_pending INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX posts_country_pending ON posts(author_id, place_id) WHERE country_pending = 1",
        """CREATE TABLE run_requests(id INTEGER PRIMARY KEY AUTOINCREMENT, requested_at TEXT NOT NULL,
            requested_ts REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending', claimed_by TEXT,
            claimed_at TEXT, run_id INTEGER)""",
        # at most one open request: every open row has the same indexed value (1)
        """CREATE UNIQUE INDEX run_requests_one_open ON run_requests(status IN ('pending', 'claimed'))
            WHERE status IN ('pending', 'claimed')""",
        # the claimed request learns its run id in the transaction that creates the run
        """CREATE TRIGGER run_requests_link_run AFTER INSERT ON runs WHEN NEW.trigger = 'api' BEGIN
            UPDATE run_requests SET status = 'started', run_id = NEW.id WHERE status = 'claimed'; END""",
        """CREATE TABLE collectors(holder TEXT PRIMARY KEY, started_at TEXT NOT NULL,
            beat_ts REAL NOT NULL)""",
        # the post list's filters (GET /api/v1/posts) each use an index, newest first
        "CREATE INDEX IF NOT EXISTS users_by_username ON users(username COLLATE NOCASE)",
        "CREATE INDEX IF NOT EXISTS posts_by_lang ON posts(lang COLLATE NOCASE, id)",
        "CREATE INDEX IF NOT EXISTS posts_by_country ON posts(country, id)",
    ),
)


def build(path: Path, version: int = len(MIGRATIONS)) -> sqlite3.Connection:
    """A database at legacy `version` (the previous release made version 2), left open for inserts."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for number, statements in enumerate(MIGRATIONS[:version], start=1):
        conn.execute("BEGIN IMMEDIATE")
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    return conn
