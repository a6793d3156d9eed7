"""The SQLite store: idempotent versioned schema, WAL, upserts and the lease."""

from __future__ import annotations

import os
import socket
import subprocess

import legacy_schema
import pytest
import sqlalchemy as sa
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
    assert abandoned.status == "failed" and abandoned.error.startswith("abandoned")
    store.finish_run(conn, later.run_id, "success")
    assert store.begin_run(conn, source="sample", trigger="api", tags=("sre",), holder="c").started


def test_readonly_connection_cannot_write(db_path):
    reader = store.connect(db_path, readonly=True)
    try:
        reader.execute("INSERT INTO places(id) VALUES ('x')")
        raise AssertionError("write succeeded on a read-only connection")
    except sa.exc.DBAPIError as exc:
        assert (
            "read-only" in str(exc).lower()
            or "readonly" in str(exc).lower()
            or "query_only" in str(exc).lower()
            or "attempt to write" in str(exc)
        )


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _set_holder(conn, host: str, pid: int) -> None:
    conn.execute("UPDATE lease SET host = ?, pid = ?", (host, pid))


def test_begin_run_takes_over_at_once_from_a_dead_process_on_this_host(conn):
    first = store.begin_run(conn, source="x", trigger="manual", tags=("sre",), holder="a", now=1000.0)
    _set_holder(conn, socket.gethostname(), _dead_pid())  # kill -9: the lease is still 120 s away
    assert store.live_lease(conn, now=1001.0) is None
    second = store.begin_run(conn, source="x", trigger="manual", tags=("sre",), holder="b", now=1001.0)
    assert second.started and second.took_over == first.run_id
    row = conn.execute("SELECT status, error FROM runs WHERE id = ?", (first.run_id,)).fetchone()
    assert row.status == "failed" and row.error.startswith("abandoned")
    lease = store.live_lease(conn, now=1002.0)
    assert (lease.run_id, lease.host, lease.pid) == (second.run_id, socket.gethostname(), os.getpid())


@pytest.mark.parametrize(
    "holder", [("elsewhere", 0), ("self", 0)], ids=["other-host-waits-for-the-ttl", "live-local-process"]
)
def test_begin_run_respects_a_live_or_remote_holder_until_the_ttl(conn, holder):
    first = store.begin_run(conn, source="x", trigger="api", tags=("sre",), holder="a", now=1000.0)
    host, pid = (socket.gethostname(), os.getppid()) if holder[0] == "self" else ("other-host", _dead_pid())
    _set_holder(conn, host, pid)
    blocked = store.begin_run(conn, source="x", trigger="api", tags=("sre",), holder="b", now=1100.0)
    assert not blocked.started and blocked.run_id == first.run_id
    assert store.live_lease(conn, now=1100.0).run_id == first.run_id
    after_ttl = store.begin_run(conn, source="x", trigger="api", tags=("sre",), holder="b", now=1121.0)
    assert after_ttl.started and after_ttl.took_over is None


def test_writes_of_a_run_that_lost_its_lease_raise_and_change_nothing(conn):
    old = store.begin_run(conn, source="x", trigger="api", tags=("sre",), holder="a", now=1000.0)
    new = store.begin_run(conn, source="x", trigger="api", tags=("sre",), holder="b", now=2000.0)
    parsed = page([make_post(1, ["sre"])], [])
    with pytest.raises(store.LeaseLost):
        store.store_page(
            conn, parsed, tag="sre", cursor=store.TagCursor("1"), run_id=old.run_id, posts_read=1
        )
    with pytest.raises(store.LeaseLost):
        store.extend_lease(conn, old.run_id, 60)
    with pytest.raises(store.LeaseLost):
        store.finish_tag(conn, old.run_id, "sre", "success")
    assert store.finish_run(conn, old.run_id, "success") is False  # abandoned stays abandoned
    assert conn.execute("SELECT count(*) FROM posts").fetchone()[0] == 0
    assert store.get_cursor(conn, "sre") == store.TagCursor()
    assert store.live_lease(conn, now=2001.0).run_id == new.run_id
    assert store.finish_run(conn, new.run_id, "success") is True
    assert store.live_lease(conn) is None


def test_a_post_stored_without_its_author_gets_the_country_when_the_author_is_seen(conn):
    def store_parsed(posts, users, places=()):
        payload = {"data": posts, "includes": {"users": users, "places": list(places)}}
        with store.transaction(conn):
            store.write_rows(conn, parse_page(payload, DEFAULT_TAGS, "sre"))

    store_parsed([make_post(1, ["sre"], author="u9", lang="pt")], [])
    assert tuple(conn.execute("SELECT country, country_pending FROM posts").fetchone()) == (None, 1)
    store_parsed([make_post(2, ["sre"], author="u1")], [make_user("u1", "alice", 5, "Berlin")])
    assert conn.execute("SELECT country_pending FROM posts WHERE id = 1").fetchone()[0] == 1  # still waiting
    store_parsed([make_post(1, ["sre"], author="u9", lang="pt")], [make_user("u9", "zoe", 3, "Lisboa")])
    row = conn.execute("SELECT country, country_source, country_pending FROM posts WHERE id = 1").fetchone()
    assert tuple(row) == ("PT", "profile", 0)
    assert dict(conn.execute("SELECT id, country FROM posts").all()) == {1: "PT", 2: "DE"}
    breakdown = {tuple(r) for r in conn.execute("SELECT tag, lang, country, posts FROM agg_breakdown")}
    assert breakdown == {("sre", "pt", "PT", 1), ("sre", "en", "DE", 1)}  # moved off the unknown row


def test_a_post_whose_place_was_missing_takes_the_stored_place_first(conn):
    place = {"id": "p1", "full_name": "Manhattan", "country_code": "us"}
    with store.transaction(conn):
        store.write_rows(conn, parse_page({"includes": {"places": [place]}}, DEFAULT_TAGS, None))
    post = make_post(5, ["sre"], author="u1", geo={"place_id": "p1"})
    with store.transaction(conn):
        payload = {"data": [post], "includes": {"users": [make_user("u1", "alice", 5, "Berlin")]}}
        store.write_rows(conn, parse_page(payload, DEFAULT_TAGS, "sre"))
    row = conn.execute("SELECT country, country_source, country_pending FROM posts").fetchone()
    assert tuple(row) == ("US", "place", 0)  # as on a complete page, not the author's DE


def test_init_db_migrates_a_version_1_database_in_place(tmp_path):
    path = tmp_path / "v1.db"
    conn = legacy_schema.build(path, version=1)
    conn.execute("INSERT INTO lease(name, run_id, holder, expires_at) VALUES ('collect', 1, 'h:1', 5)")
    conn.close()
    assert store.init_db(path) == store.SCHEMA_VERSION == 3
    migrated = store.connect(path)
    assert tuple(migrated.execute("SELECT host, pid FROM lease").fetchone()) == (None, None)
    assert store.live_lease(migrated, now=1.0).holder == "h:1"  # no host recorded: the TTL decides


def test_init_db_upgrades_a_previous_release_database_in_place(tmp_path):
    """A database the release before Alembic made (user_version 2, no alembic_version) keeps its rows."""
    path = tmp_path / "previous.db"
    old = legacy_schema.build(path)
    old.execute("INSERT INTO posts(id, created_at, created_ts, text, collected_at) VALUES (7, '', 1, '', '')")
    old.execute("INSERT INTO agg_tag(tag, posts, newest_ts) VALUES ('', 1, 1)")
    old.close()
    assert store.init_db(path) == store.SCHEMA_VERSION
    conn = store.connect(path)
    assert conn.execute("SELECT id FROM posts").scalars().all() == [7]
    head = f"{store.SCHEMA_VERSION:04d}"
    assert conn.execute("SELECT version_num FROM alembic_version").scalar_one() == head
    assert conn.execute("PRAGMA user_version").scalar_one() == 2
    with store.transaction(conn):  # the new revision's counter works on the old data
        conn.execute("UPDATE agg_tag SET posts = posts + 1")
    assert conn.execute("SELECT version FROM data_version").scalar_one() == 1


def test_init_db_upgrades_revision_1_in_place_and_is_idempotent(db_url):
    """Both backends: a database at revision 0001 with data upgrades to head and keeps every row."""
    from alembic import command

    from tagwatch import database, schema

    conn = database.connect(db_url)
    if not conn.is_postgresql:
        conn.execute("PRAGMA journal_mode = WAL")
    command.upgrade(schema._config(conn), "0001")
    conn.execute("INSERT INTO runs(started_at, source, trigger, status) VALUES ('s', 'x', 'manual', 'ok')")
    assert store.schema_version(conn) == 1
    assert store.init_db(db_url) == store.init_db(db_url) == store.SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM runs").scalar_one() == 1
    assert store.schema_version(conn) == store.SCHEMA_VERSION
    conn.close()
