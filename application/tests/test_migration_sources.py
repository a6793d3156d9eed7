"""Revision 0003 (a source on every row) upgrades a database made by revision 0002 in place, on SQLite and
PostgreSQL: nothing is dropped, each row gets the source the documented rule gives it, and the rebuilt
aggregates equal a plain GROUP BY over the posts."""

from __future__ import annotations

import pytest
from alembic import command
from test_aggregates import EQUIVALENT_SQL

from tagwatch import database, schema, store

#: two runs: an x run (10:00-10:05) then a sample run (11:00-11:05); a post collected at 09:00 predates both
RUNS = (
    (1, "2026-01-01T10:00:00Z", "2026-01-01T10:05:00Z", "x", "success"),
    (2, "2026-01-01T11:00:00Z", "2026-01-01T11:05:00Z", "sample", "partial"),
)
POSTS = (  # id, collected_at, author, lang, country, tags
    (101, "2026-01-01T10:01:00Z", "u1", "en", "DE", ("devops",)),
    (102, "2026-01-01T10:02:00Z", "u2", "de", None, ("devops", "sre")),
    (201, "2026-01-01T11:01:00Z", "u1", "en", None, ("sre",)),
    (50, "2026-01-01T09:00:00Z", None, None, None, ("oauth",)),
)


@pytest.fixture
def url(db_url: str) -> str:
    """An empty database of the backend (conftest's both-backends fixture)."""
    return db_url


def make_version_2(url: str) -> None:
    """A database at revision 0002 holding what that schema's code wrote: posts, users, aggregates,
    cursors and two finished runs of different sources."""
    conn = database.connect(url)
    conn.execute("BEGIN")
    command.upgrade(schema._config(conn), "0002")
    for run in RUNS:
        conn.execute(
            "INSERT INTO runs(id, started_at, finished_at, source, trigger, status)"
            " VALUES (?, ?, ?, ?, 'manual', ?)",
            run,
        )
        conn.execute(
            "INSERT INTO run_tags(run_id, tag, requests, posts_read, posts_new, status)"
            " VALUES (?, 'devops', 2, 5, 1, 'success')",
            (run[0],),
        )
    for user, name, followers in (("u1", "alice", 10), ("u2", "bob", 20), ("u3", "carol", 30)):
        conn.execute("INSERT INTO users(id, username, followers) VALUES (?, ?, ?)", (user, name, followers))
    for post_id, collected, author, lang, country, tags in POSTS:
        conn.execute(
            "INSERT INTO posts(id, created_at, created_ts, text, lang, author_id, country, collected_at)"
            " VALUES (?, ?, ?, 'text', ?, ?, ?, ?)",
            (post_id, "2026-01-01T08:00:00Z", 1767254400 + post_id, lang, author, country, collected),
        )
        for tag in tags:
            conn.execute("INSERT INTO post_tags(tag, post_id) VALUES (?, ?)", (tag, post_id))
    conn.execute("INSERT INTO agg_tag(tag, posts, newest_ts) VALUES ('', 4, 1767254601)")
    conn.execute("INSERT INTO tag_state(tag, since_id) VALUES ('devops', '201')")
    conn.execute("COMMIT")
    conn.close()


def test_revision_3_moves_a_revision_2_database_in_place(url):
    make_version_2(url)
    assert store.init_db(url) == store.SCHEMA_VERSION == 3
    conn = store.connect(url)
    # a post takes the source of the run whose window holds collected_at; before any run: the latest run's
    assert dict(conn.execute("SELECT id, source FROM posts").all()) == {
        101: "x",
        102: "x",
        201: "sample",
        50: "sample",
    }
    assert dict(conn.execute("SELECT id, source_key FROM posts").all()) == {i: str(i) for i, *_ in POSTS}
    # a user once per source with posts by them; a user without posts: the latest run's source
    assert sorted(conn.execute("SELECT source, id, username, followers FROM users").all()) == [
        ("sample", "u1", "alice", 10),
        ("sample", "u3", "carol", 30),
        ("x", "u1", "alice", 10),
        ("x", "u2", "bob", 20),
    ]
    assert conn.execute("SELECT source, tag, since_id FROM tag_state").all() == [("sample", "devops", "201")]
    assert sorted(conn.execute("SELECT run_id, source, tag, posts_read FROM run_tags").all()) == [
        (1, "x", "devops", 5),
        (2, "sample", "devops", 5),
    ]
    assert sorted(conn.execute("SELECT run_id, source, status FROM run_sources").all()) == [
        (1, "x", "success"),
        (2, "sample", "partial"),
    ]
    assert conn.execute("SELECT count(*) FROM post_tags").scalar() == 5
    for aggregate_sql, raw_sql in EQUIVALENT_SQL.items():
        found = sorted(tuple(row) for row in conn.execute(aggregate_sql))
        assert found == sorted(tuple(row) for row in conn.execute(raw_sql)), aggregate_sql
    assert conn.execute("SELECT sum(posts) FROM agg_tag WHERE tag = ''").scalar() == 4
    assert store.init_db(url) == 3  # idempotent


def test_revision_3_on_a_database_without_runs_marks_the_posts_sample(url):
    """Only `tagwatch seed` writes outside runs, and it writes sample posts."""
    conn = database.connect(url)
    conn.execute("BEGIN")
    command.upgrade(schema._config(conn), "0002")
    conn.execute(
        "INSERT INTO posts(id, created_at, created_ts, text, collected_at) VALUES (7, 'a', 0, 't', 'b')"
    )
    conn.execute("COMMIT")
    conn.close()
    store.init_db(url)
    assert store.connect(url).execute("SELECT source, source_key FROM posts").all() == [("sample", "7")]
