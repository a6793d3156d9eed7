"""Fault suite: a fake X API v2 over real HTTP injects one kind of fault per run.

For every kind the faulted run ends in bounded time with the right status and one clear log line
(never an escaped exception), and once the fault clears the next run converges to the exact ground
truth: the database equals a clean collection of the same posts (0 lost, 0 duplicated, same cursors),
the aggregates equal a plain GROUP BY and `PRAGMA integrity_check` is ok. Sleep and clock are fakes,
so rate-limit waits and backoff take no real time.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from backends import settings_env, settings_on
from fakes import FakeXApi, FixedClock, RecordedSleep, Scripted, make_post, make_user, serve_fake_x
from test_aggregates import EQUIVALENT_SQL
from test_collector import snapshot

from tagwatch import store
from tagwatch.collector import Collector
from tagwatch.sources.x import RetryPolicy, XClient

TAGS = ("devops", "sre", "oauth")
NOW = 1_795_000_000.0
USERS = [
    make_user("u1", "alice", 100, "Berlin"),
    make_user("u2", "bob", 50, "Lisboa"),
    make_user("u3", "carol", 7, "São Paulo, Brasil"),
]
PLACES = [{"id": "pl1", "full_name": "Manhattan, NY", "country_code": "us"}]
POLICY = RetryPolicy(timeout=(0.5, 0.25), request_deadline=0.4, max_retries=2)
PROBLEM_400 = {"title": "Invalid Request", "type": "https://api.twitter.com/2/problems/invalid-request"}


def batch(start: int, count: int) -> list[dict]:
    """`count` posts from id `start`: every tag, every author, some geo-tagged, mixed languages."""
    posts = []
    for i in range(count):
        tags = [("DevOps", "sre", "OAuth")[i % 3]] + (["devops"] if i % 4 == 0 else [])
        extra = {"geo": {"place_id": "pl1"}} if i % 5 == 0 else {}
        author = f"u{i % 3 + 1}"
        posts.append(make_post(start + i, tags, author=author, lang=("en", "pt", "de")[i % 3], **extra))
    return posts


FIRST, FAULTED, LATER = batch(10_000, 18), batch(20_000, 36), batch(30_000, 6)


def world() -> FakeXApi:
    return FakeXApi(FIRST, USERS, page_size=4, places=PLACES)


@dataclass(frozen=True)
class Fault:
    """One kind of fault: how the server misbehaves, and what the faulted run must report."""

    name: str
    make: Callable[[FakeXApi, FixedClock], Callable[[dict], Scripted | None]]
    status: str
    action: str | None  # the event.action of the line that says what happened
    error_type: str | None = None


def times(n: int, answer: Callable[[dict], Scripted | None]) -> Callable[[dict], Scripted | None]:
    """Apply `answer` to the first `n` requests it does not decline (None), then behave."""
    used = [0]

    def fault(params: dict) -> Scripted | None:
        if used[0] >= n:
            return None
        scripted = answer(params)
        used[0] += scripted is not None
        return scripted

    return fault


def always(answer: Scripted) -> Callable[[FakeXApi, FixedClock], Callable[[dict], Scripted]]:
    return lambda api, clock: lambda params: answer


def first(n: int, answer: Scripted) -> Callable[[FakeXApi, FixedClock], Callable[[dict], Scripted | None]]:
    return lambda api, clock: times(n, lambda params: answer)


def served(n: int, **how) -> Callable[[FakeXApi, FixedClock], Callable[[dict], Scripted | None]]:
    """The real page for the first `n` requests, delivered badly (`cut`, `trickle`, `hang`)."""
    return lambda api, clock: times(n, lambda params: Scripted(200, api.search(params), **how))


def rate_limited(remaining: str, reset_in: float | None, n: int = 1):
    def make(api: FakeXApi, clock: FixedClock):
        def answer(params: dict) -> Scripted:
            headers = {"x-rate-limit-remaining": remaining}
            if reset_in is not None:
                headers["x-rate-limit-reset"] = str(int(clock() + reset_in))
            return Scripted(429, {"title": "Too Many Requests", "status": 429}, headers)

        return times(n, answer)

    return make


def window_used_up(reset_in: float):
    """The first 200 says remaining 0 with a reset `reset_in` s ahead; the fake records request times."""

    def make(api: FakeXApi, clock: FixedClock):
        def answer(params: dict) -> Scripted:
            api.request_times.append(clock())
            if len(api.request_times) == 1:
                headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(clock() + reset_in))}
                return Scripted(200, api.search(params), headers)
            return None

        api.request_times = []
        api.reset_at = clock() + reset_in
        return answer

    return make


def body(transform: Callable[[dict, FakeXApi, dict], dict]):
    """Serve the real page, changed by `transform(page, api, params)`."""
    return lambda api, clock: lambda params: Scripted(200, transform(api.search(params), api, params))


def with_errors(page: dict, api: FakeXApi, params: dict) -> dict:
    """Partial data: the first author's user object is replaced by an errors[] entry."""
    users = page.get("includes", {}).get("users", [])
    if users:
        missing = users.pop(0)
        page["errors"] = [{"title": "Not Found Error", "detail": f"Could not find user {missing['id']}"}]
    return page


def without_users(page: dict, api: FakeXApi, params: dict) -> dict:
    page.get("includes", {}).pop("users", None)
    return page


def includes_list(page: dict, api: FakeXApi, params: dict) -> dict:
    if "includes" in page:
        page["includes"] = []
    return page


def rejects(param: str, also_without: bool = False):
    """400 for any request carrying `param` (and, with `also_without`, for the fallback too)."""

    def make(api: FakeXApi, clock: FixedClock):
        def answer(params: dict) -> Scripted | None:
            if param in params or also_without:
                detail = {"errors": [{"parameters": {param: ["x"]}, "message": f"Invalid '{param}'"}]}
                return Scripted(400, {**PROBLEM_400, **detail})
            return None

        return answer

    return make


def token_rejected_once(api: FakeXApi, clock: FixedClock):
    return times(1, lambda params: rejects("next_token")(api, clock)(params))


def repeated_token(api: FakeXApi, clock: FixedClock):
    """Every page after the first carries back the next_token it was asked with."""

    def answer(params: dict) -> Scripted | None:
        if not params.get("next_token"):
            return None
        page = api.search(params)
        page["meta"]["next_token"] = params["next_token"]
        return Scripted(200, page)

    return answer


def nothing_new(api: FakeXApi, clock: FixedClock):
    """Every page after the first repeats the first page, with a fresh next_token each time."""
    tokens = itertools.count()

    def answer(params: dict) -> Scripted | None:
        if not params.get("next_token"):
            return None
        page = api.search({k: v for k, v in params.items() if k != "next_token"})
        page.setdefault("meta", {})["next_token"] = f"again{next(tokens)}"
        return Scripted(200, page)

    return answer


def oldest_first(api: FakeXApi, clock: FixedClock):
    """Pages run oldest to newest, each page shuffled, and meta.newest_id claims the wrong post."""

    def answer(params: dict) -> Scripted:
        tag = params["query"].split()[0].lstrip("#").lower()
        since = int(params.get("since_id") or 0)
        after = int(params["next_token"][3:]) if params.get("next_token") else since
        matches = sorted(
            (p for p in api.posts if int(p["id"]) > after and _has_tag(p, tag)), key=lambda p: int(p["id"])
        )
        page = matches[: api.page_size]
        token = f"asc{page[-1]['id']}" if len(matches) > len(page) else None
        return Scripted(200, api.page(page[1::2] + page[::2], token))

    return answer


def empty_page_claiming_newest(api: FakeXApi, clock: FixedClock):
    """#devops answers with no posts but a meta.newest_id far ahead (a since_id trap)."""

    def answer(params: dict) -> Scripted | None:
        if params["query"].startswith("#devops"):
            return Scripted(200, {"meta": {"result_count": 0, "newest_id": "99999999"}})
        return None

    return answer


def truncated_json_for_sre(api: FakeXApi, clock: FixedClock):
    def answer(params: dict) -> Scripted | None:
        if params["query"].startswith("#sre"):
            return Scripted(200, '{"data": [{"id": "1", "text": "cut her')
        return None

    return answer


def _has_tag(post: dict, tag: str) -> bool:
    return any(h["tag"].lower() == tag for h in post["entities"]["hashtags"])


WAIT = "rate_limit_wait"
AUTH = {
    401: {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"},
    402: {"title": "CreditsDepleted", "detail": "Your enrolled account does not have any credits"},
    403: {"title": "Client Forbidden", "reason": "client-not-enrolled", "type": "about:blank"},
}
FAULTS = [
    Fault("429-with-reset", rate_limited("0", 30, n=2), "success", "rate_limit_wait"),
    Fault("429-without-headers", first(1, Scripted(429, {"errors": [{"code": 88}]})), "success", WAIT),
    Fault("429-inconsistent-headers", rate_limited("14", 900, n=2), "success", "rate_limit_wait"),
    Fault("429-reset-beyond-cap", rate_limited("0", 600), "partial", "rate_limit_over_cap"),
    Fault("remaining-0-on-200", window_used_up(45), "success", "rate_limit_wait"),
    Fault("remaining-0-beyond-cap", window_used_up(700), "partial", "rate_limit_over_cap"),
    Fault("503-html", always(Scripted(503, "<html><body>Busy</body></html>")), "failed", "circuit_open"),
    Fault("500", first(2, Scripted(500, {"title": "Internal Error"})), "success", "source_retry"),
    Fault("reset-mid-body", served(2, cut=20), "success", "source_retry"),
    Fault("read-timeout", always(Scripted(hang=1.0)), "failed", "circuit_open", "circuit_open"),
    Fault("trickled-body", served(1, trickle=0.05), "success", "source_retry"),
    Fault("malformed-json", first(1, Scripted(200, "{not json")), "success", "source_retry"),
    Fault("truncated-json", truncated_json_for_sre, "partial", "tag_failed", "source_unavailable"),
    Fault("200-with-errors", body(with_errors), "success", "partial_page"),
    Fault("missing-includes-users", body(without_users), "success", "partial_page"),
    Fault("includes-as-list", body(includes_list), "success", "partial_page"),
    Fault("400-since-id-too-old", rejects("since_id"), "success", "since_id_reset"),
    Fault("400-on-the-fallback-too", rejects("since_id", True), "partial", "tag_failed", "bad_request"),
    Fault("400-next-token-rejected", token_rejected_once, "success", "next_token_rejected"),
    Fault("401", first(1, Scripted(401, AUTH[401])), "failed", "run_failed", "invalid_token"),
    Fault("402", first(1, Scripted(402, AUTH[402])), "failed", "run_failed", "credits_depleted"),
    Fault("403", first(1, Scripted(403, AUTH[403])), "failed", "run_failed", "client_not_enrolled"),
    Fault("empty-page", empty_page_claiming_newest, "success", None),
    Fault("next-token-repeated", repeated_token, "partial", "pagination_stalled"),
    Fault("pages-with-nothing-new", nothing_new, "partial", "pagination_stalled"),
    Fault("pages-not-newest-first", oldest_first, "success", None),
]  # fmt: skip


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> dict:
    """The ground truth: one clean collection of every post into a fresh database."""
    path = tmp_path_factory.mktemp("truth") / "truth.db"
    store.init_db(path)
    api = world()
    api.add(*FAULTED, *LATER)
    base_url, stop = serve_fake_x(api)
    try:
        assert collector(path, base_url, FixedClock(NOW)).run_once().status == "success"
    finally:
        stop()
    return snapshot(path)


def collector(path, base_url: str, clock: FixedClock, sleep: RecordedSleep | None = None) -> Collector:
    settings = settings_on(path, tags=TAGS, sources=("x",), x_bearer_token="t", max_posts_per_tag=1000)
    client = XClient(
        base_url, "t", policy=POLICY, sleep=sleep or RecordedSleep(clock), clock=clock, monotonic=clock
    )
    return Collector(settings, client, clock=clock)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_run_ends_boundedly_with_its_status_and_the_next_run_converges(db_path, fault, truth, caplog):
    path = db_path
    api, clock = world(), FixedClock(NOW)
    sleep = RecordedSleep(clock)
    base_url, stop = serve_fake_x(api)
    try:
        assert collector(path, base_url, clock).run_once().status == "success"  # cursors exist
        api.add(*FAULTED)
        api.fault = fault.make(api, clock)
        caplog.clear()
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="tagwatch"):
            result = collector(path, base_url, clock, sleep).run_once()
        elapsed = time.monotonic() - started
        records = list(caplog.records)
        check_faulted_run(fault, result, records, elapsed, sleep, api)
        api.fault = None
        api.add(*LATER)
        clock.advance(3600)
        assert collector(path, base_url, clock).run_once().status == "success"
    finally:
        stop()
    check_ground_truth(path, truth)


def check_faulted_run(fault: Fault, result, records, elapsed: float, sleep: RecordedSleep, api) -> None:
    assert result.started and result.status == fault.status, [(t.tag, t.status, t.error) for t in result.tags]
    assert elapsed < 8, f"the faulted run took {elapsed:.1f} s of real time"
    assert sum(sleep.waits) <= 300 and all(w <= 300 for w in sleep.waits), sleep.waits  # fake seconds
    actions = [getattr(r, "event.action", None) for r in records]
    if fault.action is not None:
        assert fault.action in actions, actions
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert len(errors) == (1 if fault.status == "failed" else 0), [r.getMessage() for r in errors]
    if fault.error_type is not None:
        flagged = [r for r in records if getattr(r, "error.type", None) == fault.error_type]
        assert flagged, [getattr(r, "error.type", None) for r in records]
    assert not any(r.exc_info for r in records), "a source fault must not log a traceback"
    assert actions.count("run_finished") == 1
    if fault.name == "remaining-0-on-200":  # the second request waited for the reset
        assert api.request_times[1] >= api.reset_at
    if "429" in fault.name and fault.status == "success":  # bounded backoff, not a 15-minute sleep
        assert max(sleep.waits) <= 60, sleep.waits


def check_ground_truth(path, truth: dict) -> None:
    """0 lost, 0 duplicated, same aggregates and cursors as a clean collection; a sound file."""
    assert snapshot(path) == truth
    conn = store.connect(path)
    try:
        if not conn.is_postgresql:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for aggregate_sql, raw_sql in EQUIVALENT_SQL.items():
            assert sorted(map(tuple, conn.execute(aggregate_sql))) == sorted(
                map(tuple, conn.execute(raw_sql))
            )
        assert conn.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0] == 0
        requests = conn.execute("SELECT sum(requests) FROM run_tags").fetchone()[0]
        assert requests > 0
    finally:
        conn.close()


@pytest.mark.slow
def test_kill_9_at_twenty_random_moments_then_completion_gives_the_ground_truth(tmp_path, db_path):
    """Real `tagwatch collect --once` processes against the fake server, each SIGKILLed at a random
    moment after a random number of requests (mid-response, mid-write); posts keep arriving. Each
    next run takes over the dead run's lease at once, and a final run ends at the exact ground truth."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    api = FakeXApi(FIRST, USERS, page_size=4, places=PLACES)
    base_url, stop = serve_fake_x(api, delay=0.01)
    path = db_path
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **settings_env(path),
        "TAGWATCH_SOURCE": "x",
        "X_BEARER_TOKEN": "t",
        "X_API_BASE_URL": base_url,
        "TAGWATCH_TAGS": ",".join(TAGS),
        "TAGWATCH_MAX_POSTS_PER_TAG": "1000",
        "LOG_LEVEL": "WARNING",
    }
    kills, started_runs = 0, 0
    try:
        while kills < 20 and started_runs < 40:
            api.add(*batch(40_000 + 10 * started_runs, 5))  # posts keep arriving between runs
            kills += kill_one_run(api, env, rng)
            started_runs += 1
        final = subprocess.run(COLLECT_ONCE, env=env, capture_output=True, text=True, timeout=120)
    finally:
        stop()
    assert kills == 20, f"seed {seed}: only {kills} kills in {started_runs} runs"
    assert final.returncode == 0 and "Traceback" not in final.stderr, (seed, final.stderr[-2000:])
    truth = clean_collection(tmp_path / "truth.db", api.posts)
    check_ground_truth(path, truth)
    conn = store.connect(path)
    statuses = [row[0] for row in conn.execute("SELECT status FROM runs ORDER BY id")]
    assert statuses[-1] == "success" and "running" not in statuses, (seed, statuses)
    assert len(statuses) >= 21  # every killed run was replaced at once, none waited for a lease


COLLECT_ONCE = [sys.executable, "-m", "tagwatch", "collect", "--once"]


def kill_one_run(api: FakeXApi, env: dict, rng: random.Random) -> int:
    """Start a run and SIGKILL it after a random number of requests plus a random delay; 1 if killed."""
    target = len(api.calls) + rng.randint(1, 4)
    process = subprocess.Popen(COLLECT_ONCE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if api.wait_for_calls(target, 0.05):
            time.sleep(rng.uniform(0, 0.03))
            break
    killed = process.poll() is None
    process.kill()
    process.wait()
    return int(killed)


def clean_collection(path, posts: list[dict]) -> dict:
    """The ground truth for `posts`: one uninterrupted collection into a fresh database."""
    store.init_db(path)
    api = FakeXApi(posts, USERS, page_size=4, places=PLACES)
    base_url, stop = serve_fake_x(api)
    try:
        assert collector(path, base_url, FixedClock(NOW)).run_once().status == "success"
    finally:
        stop()
    return snapshot(path)
