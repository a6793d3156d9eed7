"""The post list's filters use indexes (EXPLAIN QUERY PLAN): /api/v1/posts stays fast at a million posts."""

from __future__ import annotations

import dataset
import pytest

from tagwatch import queries

NO_FILTERS = {"tag": None, "lang": None, "country": None, "username": None}


def plan_of_list_posts(conn, before: int | None = None, **filters) -> tuple[list[str], list[str]]:
    """(ids returned, query plan lines) of queries.list_posts with `filters`."""
    statements: list[str] = []
    raw = conn.sa.connection.dbapi_connection
    raw.set_trace_callback(statements.append)
    try:
        posts, _ = queries.list_posts(conn, before=before, limit=5, **{**NO_FILTERS, **filters})
    finally:
        raw.set_trace_callback(None)
    plan = [
        row[3]
        for sql in statements
        if sql.lstrip().upper().startswith("SELECT") and "post_tags WHERE post_id IN" not in sql
        for row in conn.execute("EXPLAIN QUERY PLAN " + sql)
    ]
    return [p["id"] for p in posts], plan


@pytest.mark.parametrize(
    ("filters", "ids", "index"),
    [
        ({"username": "@Carol"}, ["104", "103"], "users_by_username"),
        ({"lang": "EN"}, ["105", "102", "101"], "posts_by_lang"),
        ({"lang": "pt"}, ["104", "103"], "posts_by_lang"),
        ({"country": "de"}, ["106", "101"], "posts_by_country"),
        ({"tag": "sre"}, ["106", "103", "101"], "USING PRIMARY KEY (tag=?"),
        ({"username": "@Carol"}, ["104", "103"], "posts_by_author (author_id=?"),
        ({"tag": "sre", "username": "alice"}, ["106", "101"], "users_by_username"),
        ({"tag": "devops", "country": "US"}, ["105"], "USING PRIMARY KEY (tag=?"),
    ],
)
@pytest.mark.parametrize("before", [None, 106])
def test_list_posts_filters_use_an_index(conn, filters, ids, index, before):
    dataset.seed(conn)
    got, plan = plan_of_list_posts(conn, before=before, **filters)
    assert got == [i for i in ids if before is None or int(i) < before]
    assert any(index in line for line in plan), plan
    assert not any(line.startswith("SCAN") for line in plan), plan  # no full scan of posts or users


@pytest.mark.parametrize(
    "filters", [{"tag": "devops"}, {"username": "carol"}, {"lang": "en"}, {"country": "DE"}]
)
def test_list_posts_reads_in_key_order(conn, filters):
    """Newest first straight from an index: no sort of every post of the tag or author."""
    dataset.seed(conn)
    _, plan = plan_of_list_posts(conn, **filters)
    assert not any("TEMP B-TREE" in line for line in plan), plan
