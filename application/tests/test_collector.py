"""Collection runs: incremental cursors, exact resume, crash safety, budgets and run records."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys

import pytest
from backends import settings_on
from fakes import (
    FAKE_BASE_URL,
    NOW,
    FakeXApi,
    FixedClock,
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
from tagwatch.sources.x import RetryPolicy, XClient

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
    settings = settings_on(db_path, tags=TAGS, sources=("x",), x_bearer_token="t", max_posts_per_tag=budget)
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
        "agg_quarter": "SELECT * FROM agg_quarter ORDER BY 1, 2, 3",
        "agg_breakdown": "SELECT * FROM agg_breakdown ORDER BY 1, 2, 3, 4",
        "agg_user": "SELECT * FROM agg_user ORDER BY 1, 2, 3",
        "agg_tag": "SELECT * FROM agg_tag ORDER BY 1, 2",
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
    assert run.status == "failed" and "401" in run.error
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
    assert (run.status, run.source, run.trigger) == ("success", "x", "schedule")
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

    def failing_save_cursor(conn, tag, cursor, source="x"):
        original(conn, tag, cursor, source)
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


def actions(caplog) -> list[str]:
    return [getattr(r, "event.action", None) for r in caplog.records]


def run_tags(conn, run_id: int) -> dict[str, tuple]:
    rows = conn.execute("SELECT tag, status, requests FROM run_tags WHERE run_id = ?", (run_id,))
    return {tag: (status, requests) for tag, status, requests in rows}


@pytest.mark.sqlite_only  # compares with a second database file beside it
def test_collector_stop_mid_pagination_is_interrupted_and_resumes_exactly(db_path, caplog):
    api = corpus()
    collector = make_collector(db_path, api)
    collector.should_stop = lambda: len(api.calls) >= 2  # SIGTERM after devops's second page
    with caplog.at_level(logging.INFO, logger="tagwatch"):
        result = collector.run_once()
    assert result.status == "interrupted"
    assert run_tags(collector.conn, result.run_id) == {
        "devops": ("interrupted", 2),
        "sre": ("skipped", 0),
        "oauth": ("skipped", 0),
    }
    assert actions(caplog).count("run_interrupted") == 1
    assert snapshot(db_path)["cursors"] == [("devops", None, "nt10017")]  # exact resume state
    run = collector.conn.execute("SELECT status FROM runs WHERE id = ?", (result.run_id,)).fetchone()
    assert run.status == "interrupted"
    clean = tmp_db(db_path.parent / "clean.db")
    make_collector(clean, corpus()).run_once()
    assert make_collector(db_path, api).run_once().status == "success"
    assert snapshot(db_path) == snapshot(clean)


def tmp_db(path):
    store.init_db(path)
    return path


def test_collector_stop_during_a_wait_drops_the_page_in_flight(db_path):
    api = corpus()
    api.script.append(Scripted(503, "Service Unavailable"))
    stopped = []
    collector = make_collector(db_path, api)
    collector.client._sleep = lambda seconds: stopped.append(seconds)  # SIGTERM arrives during backoff
    collector.should_stop = lambda: bool(stopped)
    result = collector.run_once()
    assert result.status == "interrupted" and len(api.calls) == 1
    assert run_tags(collector.conn, result.run_id)["devops"] == ("interrupted", 1)
    assert snapshot(db_path)["posts"] == [] and snapshot(db_path)["cursors"] == []


def test_collector_repeated_next_token_stalls_without_moving_since_id(db_path, caplog):
    api = corpus()
    make_collector(db_path, api).run_once()
    api.add(*[make_post(50_000 + i, ["devops"]) for i in range(25)])

    def same_token(params):
        if params.get("next_token"):
            page = api.search(params)
            page["meta"]["next_token"] = params["next_token"]
            return Scripted(200, page)
        return None

    api.fault = same_token
    start = len(api.calls)
    with caplog.at_level(logging.INFO, logger="tagwatch"):
        result = make_collector(db_path, api).run_once()
    devops = next(t for t in result.tags if t.tag == "devops")
    assert (devops.status, devops.requests) == ("stalled", 2)  # not 793 requests
    assert result.status == "partial" and "pagination_stalled" in actions(caplog)
    assert len([c for c in api.calls[start:] if c["query"].startswith("#devops")]) == 2
    assert snapshot(db_path)["cursors"][0] == ("devops", "10036", None)  # 15 unread posts not skipped
    api.fault = None
    make_collector(db_path, api).run_once()
    assert {p[0] for p in snapshot(db_path)["posts"]} >= {50_000 + i for i in range(25)}


def test_collector_pages_with_nothing_new_stall(db_path):
    api = corpus()
    tokens = itertools.count()

    def first_page_forever(params):
        if params.get("next_token"):
            page = api.search({k: v for k, v in params.items() if k != "next_token"})
            page["meta"]["next_token"] = f"fresh{next(tokens)}"
            return Scripted(200, page)
        return None

    api.fault = first_page_forever
    result = make_collector(db_path, api).run_once()
    assert [(t.tag, t.status, t.requests) for t in result.tags] == [
        ("devops", "stalled", 2),
        ("sre", "stalled", 2),
        ("oauth", "success", 1),  # one page, no next_token: nothing to stall on
    ]
    cursors = [("devops", None, None), ("oauth", "10035", None), ("sre", None, None)]
    assert snapshot(db_path)["cursors"] == cursors  # stalled tags read again from the old since_id


def test_collector_empty_page_with_a_token_stalls_and_request_budget_bounds_a_source(db_path, caplog):
    api = corpus()
    endless = itertools.count(1)

    def new_post_forever(params):
        n = next(endless)
        return Scripted(200, api.page([make_post(90_000 + n, ["sre"])], f"more{n}"))

    api.fault = new_post_forever
    collector = make_collector(db_path, api)
    collector.settings = Settings(**{**collector.settings.__dict__, "max_requests_per_tag": 7})
    with caplog.at_level(logging.INFO, logger="tagwatch"):
        result = collector.run_once()
    assert [t.requests for t in result.tags] == [7, 7, 7]  # new posts forever: the request budget ends it
    assert "request_budget_spent" in actions(caplog)
    api.fault = lambda params: Scripted(200, {"meta": {"result_count": 0, "next_token": "same"}})
    result = make_collector(db_path, api).run_once()
    assert [(t.status, t.requests) for t in result.tags] == [("stalled", 1)] * 3


def test_collector_cursor_is_the_highest_id_stored_not_what_meta_claims(db_path):
    api = corpus()
    real_search = api.search

    def lying_meta(params):
        page = real_search(params)
        page.setdefault("meta", {})["newest_id"] = "99999999"
        return page

    api.search = lying_meta
    make_collector(db_path, api).run_once()
    cursors = {tag: since for tag, since, _ in snapshot(db_path)["cursors"]}
    assert cursors == {"devops": "10036", "sre": "10036", "oauth": "10035"}


def test_collector_rejected_next_token_is_dropped_and_the_tag_restarts(db_path, caplog):
    api = corpus()
    make_collector(db_path, api).run_once()
    store.save_cursor(store.connect(db_path), "devops", store.TagCursor("10000", "10000", "garbage", None))
    invalid = {"errors": [{"parameters": {"next_token": ["garbage"]}, "message": "Invalid 'next_token'"}]}
    api.fault = lambda params: Scripted(400, invalid) if params.get("next_token") == "garbage" else None
    with caplog.at_level(logging.INFO, logger="tagwatch"):
        result = make_collector(db_path, api).run_once()
    assert result.status == "success" and "next_token_rejected" in actions(caplog)
    assert snapshot(db_path)["cursors"][0] == ("devops", "10036", None)
    assert make_collector(db_path, api).run_once().status == "success"  # not poisoned for later runs


def test_collector_since_id_rejected_on_the_fallback_too_is_a_clean_tag_failure(db_path):
    api = corpus()
    make_collector(db_path, api).run_once()
    too_old = {"errors": [{"parameters": {"since_id": ["1"]}, "message": "Invalid 'since_id'"}]}
    api.fault = lambda params: Scripted(400, too_old)
    result = make_collector(db_path, api).run_once()
    assert result.status == "partial"
    assert [(t.status, t.error.kind, t.requests) for t in result.tags] == [("failed", "bad_request", 2)] * 3


def test_collector_failed_tag_counts_every_attempt_like_the_source_counter(db_path):
    from tagwatch import metrics

    before = _requests_counted()
    api = corpus()
    api.script.extend([Scripted(503, "Service Unavailable")] * 5)
    collector = make_collector(db_path, api)
    result = collector.run_once()
    counts = run_tags(collector.conn, result.run_id)
    assert counts["devops"] == ("failed", 5)  # not "0 requests" after 5 HTTP calls
    assert sum(n for _, n in counts.values()) == len(api.calls) == _requests_counted() - before
    assert metrics.SOURCE_REQUESTS.labels(source="x", status="503")._value.get() >= 5


def _requests_counted() -> float:
    from prometheus_client import REGISTRY

    return sum(
        s.value
        for family in REGISTRY.collect()
        if family.name == "tagwatch_source_requests"
        for s in family.samples
        if s.name.endswith("_total") and s.labels.get("source") == "x"
    )


def test_collector_circuit_opens_after_consecutive_unavailable_tags(tmp_path, caplog):
    tags = ("a", "b", "c", "d", "e")
    path = tmp_db(tmp_path / "c.db")
    api = FakeXApi([], USERS)
    api.fault = lambda params: Scripted(503, "<html>down</html>")
    settings = Settings(db_path=str(path), tags=tags, sources=("x",), x_bearer_token="t")
    client = XClient(FAKE_BASE_URL, "t", session=fake_session(api), sleep=RecordedSleep(), clock=lambda: 0.0)
    collector = Collector(settings, client)
    with caplog.at_level(logging.INFO, logger="tagwatch"):
        result = collector.run_once()
    assert result.status == "failed" and result.error_type == "circuit_open"
    assert len(api.calls) == 3 * 5  # not 5 tags x 5 attempts
    assert [s for s, _ in run_tags(collector.conn, result.run_id).values()] == ["failed"] * 3 + [
        "skipped"
    ] * 2
    assert actions(caplog).count("circuit_open") == 1
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_collector_rate_limit_beyond_the_cap_ends_the_run_partial_and_the_next_resumes(db_path, caplog):
    api = corpus()
    api.script.extend([Scripted(200, api.search({"query": "#devops", "max_results": "100"}))])
    api.script[0].body["meta"]["next_token"] = "nt10027"
    api.script[0].headers.update({"x-rate-limit-remaining": "0", "x-rate-limit-reset": "700"})
    with caplog.at_level(logging.INFO, logger="tagwatch"):
        result = make_collector(db_path, api).run_once()
    assert result.status == "partial" and "rate_limit_over_cap" in actions(caplog)
    assert [(t.tag, t.status) for t in result.tags] == [("devops", "failed")]
    assert snapshot(db_path)["cursors"] == [("devops", None, "nt10027")]  # saved: the next run resumes
    assert make_collector(db_path, api).run_once().status == "success"
    assert len(snapshot(db_path)["posts"]) == 37


def test_collector_any_exception_fails_the_run_with_one_error_line_and_the_next_run_works(
    db_path, caplog, monkeypatch
):
    api = corpus()
    real = store.store_page

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(store, "store_page", broken)
    collector = make_collector(db_path, api)
    with caplog.at_level(logging.INFO, logger="tagwatch"):
        result = collector.run_once()  # returns: the collector loop goes on
    assert (result.status, result.error_type) == ("failed", "KeyError")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and getattr(errors[0], "event.action") == "run_failed"
    assert errors[0].exc_info is not None  # the formatter writes error.stack_trace from it
    row = collector.conn.execute("SELECT status, error FROM runs WHERE id = ?", (result.run_id,)).fetchone()
    assert row.status == "failed" and "a bug" in row.error
    assert run_tags(collector.conn, result.run_id)["devops"] == ("failed", 1)
    assert collector.conn.execute("SELECT count(*) FROM lease").fetchone()[0] == 0
    monkeypatch.setattr(store, "store_page", real)
    assert make_collector(db_path, api).run_once().status == "success"


@pytest.mark.sqlite_only  # PRAGMA max_page_count
def test_collector_disk_full_is_a_clean_failed_run_and_the_database_stays_intact(db_path, caplog):
    api = FakeXApi([make_post(100 + i, ["devops"], text="long " * 600) for i in range(10)], USERS)
    conn = store.connect(db_path)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # no room for a single new page
    with caplog.at_level(logging.INFO, logger="tagwatch"):
        result = make_collector(db_path, api, conn=conn).run_once()
    assert result.status == "failed" and "full" in str(result.error)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and getattr(errors[0], "error.type") == "OperationalError"
    check = store.connect(db_path)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert check.execute("SELECT count(*) FROM posts").fetchone()[0] == 0
    assert check.execute("SELECT status FROM runs").fetchone()[0] == "failed"
    assert make_collector(db_path, api).run_once().status == "success"


def test_collector_second_writer_is_fenced_until_the_lease_expires_and_the_first_stops(db_path, caplog):
    """A run sleeps in a long retry backoff; a second collector cannot start until the lease expires,
    then runs; the first wakes up, finds its lease gone and stops instead of writing."""
    clock = FixedClock(NOW)
    api = corpus()
    api.script.append(Scripted(503, "Service Unavailable"))
    second_run = []

    def long_sleep(seconds):
        other = make_collector(db_path, corpus(), conn=store.connect(db_path))
        other.clock = clock
        assert other.run_once().started is False  # the lease was renewed before this sleep
        clock.advance(seconds + store.LEASE_TTL_SECONDS + 1)  # ...and has now expired
        second_run.append(other.run_once())

    first = make_collector(db_path, api)
    first.clock = first.client._clock = clock
    first.client._sleep = long_sleep
    first.client.policy = RetryPolicy(backoff_base=200, backoff_cap=200)
    with caplog.at_level(logging.INFO, logger="tagwatch"):
        result = first.run_once()
    assert second_run[0].started and second_run[0].status == "success"
    assert (result.status, result.error_type) == ("failed", "LeaseLost")
    runs = dict(first.conn.execute("SELECT id, status FROM runs").fetchall())
    assert runs == {result.run_id: "failed", second_run[0].run_id: "success"}  # not overwritten
    assert len(snapshot(db_path)["posts"]) == 37
    written = first.conn.execute("SELECT sum(posts_new) FROM run_tags WHERE run_id = ?", (result.run_id,))
    assert written.fetchone()[0] == 0  # the fenced run wrote nothing


def test_collector_lease_is_renewed_before_every_wait(db_path):
    api = corpus()
    api.script.extend([Scripted(503, "Service Unavailable"), Scripted(429, {}, {"x-rate-limit-reset": "40"})])
    collector = make_collector(db_path, api)
    renewals = []
    real_extend = store.extend_lease

    def extend(conn, run_id, seconds, now=None):
        renewals.append(seconds)
        real_extend(conn, run_id, seconds, now)

    store.extend_lease, restore = extend, store.extend_lease
    try:
        collector.run_once()
    finally:
        store.extend_lease = restore
    assert renewals == collector.client._sleep.waits and len(renewals) == 2  # backoff and 429 wait


def test_collector_that_cannot_even_record_a_run_fails_with_one_line_and_returns(db_path, caplog):
    reader = store.connect(db_path, readonly=True)  # as if the database became read-only
    with caplog.at_level(logging.INFO, logger="tagwatch"):
        result = make_collector(db_path, corpus(), conn=reader).run_once()
    assert (result.started, result.status, result.run_id, result.error_type) == (
        False,
        "failed",
        None,
        "OperationalError" if str(db_path).endswith(".db") else "InternalError",  # PG: ReadOnlySqlTransaction
    )
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [getattr(r, "event.action") for r in errors] == ["run_failed"]
