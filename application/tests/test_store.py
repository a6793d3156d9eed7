"""The SQLite store: idempotent versioned schema, WAL, upserts and the lease."""

from __future__ import annotations

import sqlite3

from fakes import make_post, make_user

from tagwatch import store
from tagwatch.config import DEFAULT_TAGS
from tagwatch.parse import parse_page


def page(posts, users):
    return parse_page({"data": posts, "includes": {"users": users}}, DEFAULT_TAGS, None)


def test_init_db_is_idempotent_versioned_and_keeps_data(tmp_path):
    path = tmp_path / "sub" / "t.db"
    assert store.init_db(path) == store.SCHEMA_VERSION
    conn = store.connect(path)
    with store.transaction(conn):
        store.write_rows(conn, page([make_post(1, ["sre"])], [make_user("u1", "alice", 5)]))
    assert store.init_db(path) == store.SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM posts").fetchone()[0] == 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_write_rows_never_duplicates_and_refreshes_followers(conn):
    with store.transaction(conn):
        store.write_rows(
            conn,
            page([make_post(1, ["sre"]), make_post(2, ["sre", "devops"])], [make_user("u1", "alice", 5)]),
        )
    with store.transaction(conn):
        new = store.write_rows(
            conn,
            page([make_post(2, ["sre", "devops"]), make_post(3, ["sre"])], [make_user("u1", "alice", 9)]),
        )
    assert [p.id for p in new] == [3]
    assert conn.execute("SELECT count(*) FROM posts").fetchone()[0] == 3
    assert conn.execute("SELECT followers FROM users WHERE id = 'u1'").fetchone()[0] == 9
    assert {
        tuple(r) for r in conn.execute("SELECT tag, posts, followers FROM agg_user WHERE user_id = 'u1'")
    } == {
        ("", 3, 9),
        ("sre", 3, 9),
        ("devops", 1, 9),
    }


def test_write_rows_unknown_author_gets_a_placeholder_user(conn):
    with store.transaction(conn):
        store.write_rows(conn, page([make_post(1, ["sre"], author="ghost")], []))
    assert tuple(conn.execute("SELECT id, username, followers FROM users").fetchone()) == ("ghost", None, 0)
    with store.transaction(conn):
        store.write_rows(conn, page([], [make_user("ghost", "casper", 42)]))
    assert tuple(conn.execute("SELECT username, followers FROM agg_user WHERE tag = ''").fetchone()) == (
        "casper",
        42,
    )


def test_transaction_rolls_back_everything_on_error(conn):
    try:
        with store.transaction(conn):
            store.write_rows(conn, page([make_post(1, ["sre"])], []))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert conn.execute("SELECT count(*) FROM posts").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM agg_quarter").fetchone()[0] == 0


def test_begin_run_lease_is_exclusive_until_released_or_expired(conn):
    first = store.begin_run(conn, source="sample", trigger="api", tags=("sre",), holder="a", now=1000.0)
    second = store.begin_run(conn, source="sample", trigger="api", tags=("sre",), holder="b", now=1001.0)
    assert first.started and not second.started and second.run_id == first.run_id
    later = store.begin_run(
        conn, source="sample", trigger="api", tags=("sre",), holder="b", now=1000.0 + 10_000
    )
    assert later.started and later.run_id != first.run_id
    abandoned = conn.execute("SELECT status, error FROM runs WHERE id = ?", (first.run_id,)).fetchone()
    assert abandoned["status"] == "failed" and abandoned["error"].startswith("abandoned")
    store.finish_run(conn, later.run_id, "success")
    assert store.begin_run(conn, source="sample", trigger="api", tags=("sre",), holder="c").started


def test_readonly_connection_cannot_write(db_path):
    reader = store.connect(db_path, readonly=True)
    try:
        reader.execute("INSERT INTO places(id) VALUES ('x')")
        raise AssertionError("write succeeded on a read-only connection")
    except sqlite3.OperationalError as exc:
        assert (
            "readonly" in str(exc).lower()
            or "query_only" in str(exc).lower()
            or "attempt to write" in str(exc)
        )
