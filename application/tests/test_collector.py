"""Collection runs: incremental cursors, exact resume, crash safety, budgets and run records."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from fakes import (
    FAKE_BASE_URL,
    FakeXApi,
    RecordedSleep,
    Scripted,
    fake_session,
    make_post,
    make_user,
    serve_fake_x,
)

from tagwatch import store
from tagwatch.collector import Collector
from tagwatch.config import Settings
from tagwatch.sources.x import XClient

TAGS = ("devops", "sre", "oauth")
USERS = [make_user("u1", "alice", 100, "Lisboa"), make_user("u2", "bob", 50, "NYC")]


class Crash(BaseException):
    """Stands for the process dying (not an Exception, so nothing catches it)."""


def corpus() -> FakeXApi:
    """37 posts; every third also carries #sre, some #oauth."""
    posts = []
    for i in range(37):
        tags = ["DevOps"] + (["sre"] if i % 3 == 0 else []) + (["OAuth"] if i % 7 == 0 else [])
        posts.append(
            make_post(10_000 + i, tags, author="u1" if i % 2 else "u2", lang="en" if i % 4 else "pt")
        )
    return FakeXApi(posts, USERS, page_size=10)


def make_collector(db_path, api: FakeXApi, budget: int = 1000, conn=None) -> Collector:
    settings = Settings(
        db_path=str(db_path), tags=TAGS, source="x", x_bearer_token="t", max_posts_per_tag=budget
    )
    client = XClient(FAKE_BASE_URL, "t", session=fake_session(api), sleep=RecordedSleep(), clock=lambda: 0.0)
    return Collector(settings, client, conn=conn)


def snapshot(db_path) -> dict:
    """Every data row that must not depend on how the collection was interrupted."""
    conn = store.connect(db_path)
    tables = {
        "posts": "SELECT id, created_at, text, lang, author_id, country, country_source FROM posts"
        " ORDER BY id",
        "post_tags": "SELECT * FROM post_tags ORDER BY tag, post_id",
        "users": "SELECT id, username, followers FROM users ORDER BY id",
        "agg_quarter": "SELECT * FROM agg_quarter ORDER BY 1, 2",
        "agg_breakdown": "SELECT * FROM agg_breakdown ORDER BY 1, 2, 3",
        "agg_user": "SELECT * FROM agg_user ORDER BY 1, 2",
        "agg_tag": "SELECT * FROM agg_tag ORDER BY 1",
        "cursors": "SELECT tag, since_id, pending_next_token FROM tag_state ORDER BY tag",
    }
    result = {name: [tuple(r) for r in conn.execute(sql)] for name, sql in tables.items()}
    conn.close()
    return result


def test_collector_stores_posts_once_and_links_every_tracked_tag(db_path):
    api = corpus()
    result = make_collector(db_path, api).run_once()
    assert result.status == "success"
    rows = snapshot(db_path)
    assert len(rows["posts"]) == 37
    tag_counts = {tag: sum(1 for t, _ in rows["post_tags"] if t == tag) for tag in TAGS}
    assert tag_counts == {"devops": 37, "sre": 13, "oauth": 6}
    devops = next(t for t in result.tags if t.tag == "devops")
    sre = next(t for t in result.tags if t.tag == "sre")
    assert (devops.posts_read, devops.posts_new, devops.requests) == (37, 37, 4)
    assert (sre.posts_read, sre.posts_new) == (13, 0)  # already stored via #devops


def test_collector_second_run_with_nothing_new_reads_zero_posts(db_path):
    api = corpus()
    make_collector(db_path, api).run_once()
    served = len(api.served)
    calls_before = len(api.calls)
    second = make_collector(db_path, api).run_once()
    assert len(api.served) == served  # zero posts read (X bills per post)
    assert sum(t.posts_read for t in second.tags) == 0
    assert [c["since_id"] for c in api.calls[calls_before:]] == ["10036", "10036", "10035"]


def test_collector_cursor_is_the_newest_id_of_the_tags_own_query(db_path):
    api = corpus()
    make_collector(db_path, api).run_once()
    cursors = dict((tag, since) for tag, since, _ in snapshot(db_path)["cursors"])
    assert cursors == {"devops": "10036", "sre": "10036", "oauth": "10035"}


def test_collector_incremental_run_reads_only_new_posts(db_path):
    api = corpus()
    make_collector(db_path, api).run_once()
    api.add(make_post(20_000, ["devops", "oauth"], author="u1"), make_post(20_001, ["sre"], author="u2"))
    served = len(api.served)
    result = make_collector(db_path, api).run_once()
    assert sorted(api.served[served:]) == [
        "20000",
        "20000",
        "20001",
    ]  # devops and oauth queries both see 20000
    assert sum(t.posts_new for t in result.tags) == 2
    assert len(snapshot(db_path)["posts"]) == 39


def test_collector_every_later_page_of_a_run_uses_the_same_since_id(db_path):
    api = corpus()
    make_collector(db_path, api).run_once()
    api.add(*[make_post(30_000 + i, ["devops"]) for i in range(25)])
    start = len(api.calls)
    make_collector(db_path, api).run_once()
    devops_calls = [c for c in api.calls[start:] if c["query"].startswith("#devops")]
    assert [c["since_id"] for c in devops_calls] == ["10036"] * 3
    assert snapshot(db_path)["cursors"][0] == ("devops", "30024", None)


def test_collector_budget_bounds_reads_and_moves_cursor_to_newest(db_path):
    api = corpus()
    result = make_collector(db_path, api, budget=15).run_once()
    devops = next(t for t in result.tags if t.tag == "devops")
    assert devops.posts_read == 20  # two pages of 10: the second page is the last one the budget allows
    cursors = {tag: (since, pending) for tag, since, pending in snapshot(db_path)["cursors"]}
    assert cursors["devops"] == ("10036", None)


def test_collector_fatal_source_error_ends_the_run_for_all_tags(db_path):
    api = corpus()
    api.script.append(Scripted(401, {"title": "Unauthorized", "status": 401, "detail": "Unauthorized"}))
    collector = make_collector(db_path, api)
    result = collector.run_once()
    assert result.status == "failed" and result.error.kind == "invalid_token"
    assert len(api.calls) == 1
    run = collector.conn.execute("SELECT status, error FROM runs WHERE id = ?", (result.run_id,)).fetchone()
    assert run["status"] == "failed" and "401" in run["error"]
    assert collector.conn.execute("SELECT count(*) FROM lease").fetchone()[0] == 0  # released


def test_collector_non_fatal_failure_fails_one_tag_and_continues(db_path):
    api = corpus()
    api.script.extend([Scripted(503, "Service Unavailable")] * 6)  # devops exhausts its retries
    result = make_collector(db_path, api).run_once()
    assert [t.error.kind if t.error else None for t in result.tags] == ["source_unavailable", None, None]
    assert result.status == "partial"


def test_collector_records_the_run_with_per_tag_figures(db_path):
    api = corpus()
    collector = make_collector(db_path, api)
    result = collector.run_once()
    run = collector.conn.execute("SELECT * FROM runs WHERE id = ?", (result.run_id,)).fetchone()
    assert (run["status"], run["source"], run["trigger"]) == ("success", "x", "schedule")
    figures = collector.conn.execute(
        "SELECT tag, requests, posts_read, posts_new, status FROM run_tags WHERE run_id = ? ORDER BY tag",
        (result.run_id,),
    ).fetchall()
    assert [tuple(f) for f in figures] == [
        ("devops", 4, 37, 37, "success"),
        ("oauth", 1, 6, 0, "success"),
        ("sre", 2, 13, 0, "success"),
    ]


def test_collector_refuses_a_second_concurrent_run(db_path):
    api = corpus()
    holder = store.begin_run(store.connect(db_path), source="x", trigger="api", tags=TAGS, holder="other")
    result = make_collector(db_path, api).run_once()
    assert result.started is False and result.run_id == holder.run_id
    assert api.calls == []


def crash_on_request(api: FakeXApi, n: int) -> None:
    """Make the n-th HTTP call (0-based) kill the process."""
    original = api.answer
    counter = itertools.count()

    def answer(params):
        if next(counter) == n:
            raise Crash()
        return original(params)

    api.answer = answer


@pytest.mark.parametrize("crash_at", [0, 1, 2, 3, 5, 6])
def test_collector_crash_mid_run_then_rerun_equals_uninterrupted(tmp_path, crash_at):
    clean_db, crashed_db = tmp_path / "clean.db", tmp_path / "crashed.db"
    for path in (clean_db, crashed_db):
        store.init_db(path)
    clean_api = corpus()
    make_collector(clean_db, clean_api).run_once()

    api = corpus()
    crash_on_request(api, crash_at)
    with pytest.raises(Crash):
        make_collector(crashed_db, api).run_once()
    api.answer = FakeXApi.answer.__get__(api)
    _expire_lease(crashed_db)
    make_collector(crashed_db, api).run_once()

    assert snapshot(crashed_db) == snapshot(clean_db)
    assert len(api.served) <= len(clean_api.served) + 10  # at most the page in flight is read again


@pytest.mark.parametrize("fail_on_cursor_write", [1, 2, 4])
def test_collector_crash_inside_a_page_transaction_rolls_it_back(tmp_path, monkeypatch, fail_on_cursor_write):
    clean_db, crashed_db = tmp_path / "clean.db", tmp_path / "crashed.db"
    for path in (clean_db, crashed_db):
        store.init_db(path)
    make_collector(clean_db, corpus()).run_once()

    original, calls = store.save_cursor, itertools.count(1)

    def failing_save_cursor(conn, tag, cursor):
        original(conn, tag, cursor)
        if next(calls) == fail_on_cursor_write:
            raise Crash()

    monkeypatch.setattr(store, "save_cursor", failing_save_cursor)
    api = corpus()
    with pytest.raises(Crash):
        make_collector(crashed_db, api).run_once()
    monkeypatch.setattr(store, "save_cursor", original)
    _expire_lease(crashed_db)
    make_collector(crashed_db, api).run_once()
    assert snapshot(crashed_db) == snapshot(clean_db)


def test_collector_resumes_pending_pagination_with_saved_since_id_and_token(db_path):
    api = corpus()
    make_collector(db_path, api).run_once()
    api.add(*[make_post(40_000 + i, ["devops"]) for i in range(25)])
    crash_on_request(api, 1)  # after the first devops page is stored
    with pytest.raises(Crash):
        make_collector(db_path, api).run_once()
    assert snapshot(db_path)["cursors"][0] == ("devops", "10036", "nt40015")
    api.answer = FakeXApi.answer.__get__(api)
    _expire_lease(db_path)
    start = len(api.calls)
    make_collector(db_path, api).run_once()
    first = api.calls[start]
    assert (first["since_id"], first["next_token"]) == ("10036", "nt40015")
    assert snapshot(db_path)["cursors"][0] == ("devops", "40024", None)


def test_collect_once_against_a_real_http_server_stores_exactly_what_was_served(tmp_path):
    api = corpus()
    base_url, stop = serve_fake_x(api)
    env = {
        "PATH": "/usr/bin:/bin",
        "TAGWATCH_DB": str(tmp_path / "x.db"),
        "TAGWATCH_SOURCE": "x",
        "X_BEARER_TOKEN": "secret-token-123",
        "X_API_BASE_URL": base_url,
        "TAGWATCH_TAGS": ",".join(TAGS),
    }
    try:
        first = subprocess.run(
            [sys.executable, "-m", "tagwatch", "collect", "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        served = sorted(set(api.served))
        second = subprocess.run(
            [sys.executable, "-m", "tagwatch", "collect", "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        stop()
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    stored = [str(row[0]) for row in snapshot(tmp_path / "x.db")["posts"]]
    assert stored == served
    assert sorted(set(api.served)) == served and len(api.served) == 37 + 13 + 6  # the second run read nothing
    assert "secret-token-123" not in first.stdout + first.stderr + second.stdout + second.stderr


def _expire_lease(db_path) -> None:
    """What the lease TTL does after a crash: the next run may start."""
    conn = store.connect(db_path)
    conn.execute("UPDATE lease SET expires_at = 0")
    conn.close()


def test_collector_stopped_run_marks_unreached_tags_skipped(db_path):
    api = corpus()
    collector = make_collector(db_path, api)
    collector.should_stop = lambda: len(api.calls) > 0  # SIGTERM arrives during the first tag
    result = collector.run_once()
    statuses = dict(
        collector.conn.execute(
            "SELECT tag, status FROM run_tags WHERE run_id = ?", (result.run_id,)
        ).fetchall()
    )
    assert statuses == {"devops": "interrupted", "sre": "skipped", "oauth": "skipped"}
    assert result.status == "interrupted"
    assert (
        snapshot(db_path)["cursors"][0][2] is not None
    )  # devops left its pagination pending for the next run
