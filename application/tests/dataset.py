"""A small hand-built dataset stored through the real write path, for the API tests and schemathesis.

Six posts by four users over two days; post 101 carries two tracked tags and is read twice; a third page
refreshes dave's follower count (10 → 1000). The expected figures in test_api.py follow from this.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from fakes import make_post, make_user

from tagwatch import store
from tagwatch.config import DEFAULT_TAGS
from tagwatch.parse import parse_page

USERS = {
    "u1": make_user("u1", "alice", 500, "Berlin"),
    "u2": make_user("u2", "bob", 900, ""),
    "u3": make_user("u3", "carol", 900, "São Paulo"),
    "u4": make_user("u4", "dave", 10, "Mumbai, India"),
}
PLACE_US = {"id": "place-us", "full_name": "Austin, TX", "country_code": "us", "country": "United States"}


def post(post_id: int, created_at: str, tags: list[str], author: str, lang: str, **extra: Any) -> dict:
    """An X API v2 post at a given time."""
    return make_post(post_id, tags, author=author, lang=lang, created_at=created_at, **extra)


POSTS = {
    101: post(101, "2026-11-18T09:10:00.000Z", ["devops", "sre"], "u1", "en"),
    102: post(102, "2026-11-18T09:50:00.000Z", ["DevOps"], "u2", "en"),
    103: post(103, "2026-11-18T11:05:00.000Z", ["sre"], "u3", "pt"),
    104: post(104, "2026-11-18T11:20:00.000Z", ["devops"], "u3", "pt"),
    105: post(
        105, "2026-11-18T14:30:00.000Z", ["devops", "Observability"], "u4", "en", geo={"place_id": "place-us"}
    ),
    106: post(106, "2026-11-19T02:00:00.000Z", ["sre", "notatrackedtag"], "u1", "de"),
}


def page(post_ids: list[int], users: list[dict], places: list[dict] = ()) -> dict:
    """A recent-search page carrying some posts and the given includes."""
    return {
        "data": [POSTS[i] for i in post_ids],
        "includes": {"users": users, "places": list(places)},
        "meta": {"result_count": len(post_ids)},
    }


def seed(conn: sqlite3.Connection, tags: tuple[str, ...] = DEFAULT_TAGS) -> int:
    """Store the dataset as a failed run (devops ok, sre failed) plus a refresh page; returns the run id."""
    run = store.begin_run(conn, source="sample", trigger="schedule", tags=("devops", "sre"), holder="test")
    devops = page([101, 102, 104, 105], [USERS["u1"], USERS["u2"], USERS["u3"], USERS["u4"]], [PLACE_US])
    sre = page([101, 103, 106], [USERS["u1"], USERS["u3"]])
    for tag, payload in (("devops", devops), ("sre", sre)):
        parsed = parse_page(payload, tags, tag, "sample")
        store.store_page(
            conn,
            parsed,
            tag=tag,
            cursor=store.TagCursor(),
            run_id=run.run_id,
            posts_read=len(parsed.posts),
            source="sample",
        )
    store.finish_tag(conn, run.run_id, "devops", "success", source="sample")
    store.finish_tag(conn, run.run_id, "sre", "failed", "source_unavailable", source="sample")
    store.finish_run(conn, run.run_id, "failed", "sre: source_unavailable")
    refresh = page([105], [{**USERS["u4"], "public_metrics": {"followers_count": 1000}}], [PLACE_US])
    with store.transaction(conn):
        store.write_rows(conn, parse_page(refresh, tags, "observability", "sample"))
    return run.run_id
