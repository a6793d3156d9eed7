"""The Bluesky client and parser against a fake Bluesky service over real HTTP (sessions, search, profiles).

Sleep and clock are fakes, so rate-limit waits and backoff take no real time.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from fakes import NOW, FixedClock, RecordedSleep, Scripted
from fakes_bluesky import FakeBluesky, post, profile, serve_bluesky

from tagwatch.parse_bluesky import parse_page
from tagwatch.sources.base import SourceError, StopRequested
from tagwatch.sources.bluesky import BlueskyClient
from tagwatch.sources.http import Attempts, RetryPolicy

TRACKED = ("devops", "sre", "oauth")
HANDLE, PASSWORD = "collector.bsky.social", "abcd-efgh-ijkl-mnop"
# generous: a loaded CI machine answers late
POLICY = RetryPolicy(timeout=(1.0, 1.0), request_deadline=1.0, max_retries=2)
SEARCH, PROFILES = "app.bsky.feed.searchPosts", "app.bsky.actor.getProfiles"
LOGIN, REFRESH = "com.atproto.server.createSession", "com.atproto.server.refreshSession"


class Service:
    """A fake service with six #devops posts by three authors, and a client logged in to it."""

    def __init__(self, password: str = PASSWORD) -> None:
        self.clock = FixedClock(NOW)
        self.sleep = RecordedSleep(self.clock)
        self.fake = FakeBluesky(HANDLE, PASSWORD, self.clock)
        self.stop = serve_bluesky(self.fake)
        self.authors = [profile(1, 1500, "Ana"), profile(2, 0, ""), profile(3, 42)]
        self.fake.profiles = {p["did"]: p for p in self.authors}
        ana, nobody, three = self.authors
        self.fake.add(
            post(1, ana, NOW - 60, ["DevOps", "sre"], langs=["pt-BR", "en"]),
            post(2, nobody, NOW - 100, ["devops"], extra_tags=["OAuth"]),
            post(3, three, NOW - 3600, ["devops"], langs=["en"]),
            post(4, ana, NOW - 7200, ["devops", "kubernetes"]),
            post(5, three, NOW - 7300, ["devops"], langs=[]),
            post(6, nobody, NOW - 9000, ["devops"], indexed=NOW - 9500),  # createdAt after indexedAt
            post(7, ana, NOW - 100, ["sre"]),
        )
        self.client = BlueskyClient(
            self.fake.base_url,
            HANDLE,
            password,
            policy=POLICY,
            sleep=self.sleep,
            clock=self.clock,
            monotonic=self.clock,
        )

    def read(self, tag: str = "devops", cursor: str | None = None, budget: int = 100) -> list:
        return list(self.client.pages(tag, cursor, budget))


@pytest.fixture
def svc():
    service = Service()
    yield service
    service.stop()


def keys(pages) -> list[str]:
    return [p.key for page in pages for p in parse_page(page.payload, TRACKED, "devops").posts]


def test_first_run_logs_in_once_searches_by_tag_and_reads_every_post(svc):
    pages = svc.read()
    assert [p.result_count for p in pages] == [6]
    assert len(svc.fake.calls_to(LOGIN)) == 1
    search = svc.fake.calls_to(SEARCH)[0]
    assert (search.param("q"), search.query["tag"], search.param("sort"), search.param("limit")) == (
        "#devops",
        ["devops"],
        "latest",
        "100",
    )
    assert search.param("since") == "2026-11-17T11:06:40.000Z"  # a day back, the first time
    assert search.headers["Authorization"] == "Bearer access-1"
    assert keys(pages) == [f"at://did:plc:user{a:04d}/app.bsky.feed.post/3k{n:08d}" for n, a in
                           [(1, 1), (2, 2), (3, 3), (4, 1), (5, 3), (6, 2)]]  # fmt: skip


def test_rows_carry_exact_users_languages_tags_and_followers(svc):
    parsed = parse_page(svc.read()[0].payload, TRACKED, "devops")
    posts = {p.source_id.rsplit("/", 1)[-1]: p for p in parsed.posts}
    assert (posts["3k00000001"].lang, posts["3k00000001"].tags) == ("pt", ("devops", "sre"))
    assert (posts["3k00000002"].lang, posts["3k00000002"].tags) == (None, ("devops", "oauth"))
    assert (posts["3k00000003"].lang, posts["3k00000005"].lang) == ("en", None)
    assert posts["3k00000001"].text == "post 1 #DevOps #sre"
    assert posts["3k00000001"].url == "https://bsky.app/profile/user1.bsky.social/post/3k00000001"
    assert (posts["3k00000006"].created_at, posts["3k00000006"].country_source) == (
        "2026-11-18T08:36:40.000Z",
        "none",
    )
    users = {u.id: (u.username, u.name, u.followers, u.country) for u in parsed.users}
    assert users == {
        "did:plc:user0001": ("user1.bsky.social", "Ana", 1500, None),
        "did:plc:user0002": ("user2.bsky.social", None, 0, None),
        "did:plc:user0003": ("user3.bsky.social", "User 3", 42, None),
    }


def test_second_run_reads_nothing_and_new_posts_appear_only_after(svc):
    first = svc.read()
    state = json.loads(first[-1].cursor)
    assert state["since"] == NOW - 60 - 120 and "pending" not in state  # newest sortAt less the overlap
    second = svc.read(cursor=first[-1].cursor)
    assert [p.result_count for p in second] == [0]
    assert (
        len(svc.fake.calls_to(SEARCH)[-1].query) == 5
        and svc.fake.calls_to(SEARCH)[-1].param("cursor") is None
    )
    svc.clock.advance(600)
    svc.fake.add(post(8, svc.authors[2], svc.clock() - 30, ["devops"]))
    third = svc.read(cursor=second[-1].cursor)
    assert keys(third) == ["at://did:plc:user0003/app.bsky.feed.post/3k00000008"]
    assert [p.result_count for p in svc.read(cursor=third[-1].cursor)] == [0]


def test_cursor_pagination_within_a_budget_resumes_exactly_then_catches_up(svc):
    svc.fake.add(*[post(100 + i, svc.authors[i % 3], NOW - 200 - i, ["devops"]) for i in range(240)])
    first = svc.read(budget=150)
    assert [p.result_count for p in first] == [100, 50]
    assert [c.param("cursor") for c in svc.fake.calls_to(SEARCH)] == [None, "100"]
    pending = json.loads(first[-1].cursor)["pending"]
    assert pending["page"] == "150" and pending["since"] == NOW - 86_400
    svc.clock.advance(60)
    svc.fake.add(post(999, svc.authors[0], svc.clock() - 5, ["devops"]))
    second = svc.read(cursor=first[-1].cursor, budget=1000)
    assert [c.param("cursor") for c in svc.fake.calls_to(SEARCH)][2:] == ["150", None]
    everything = keys(first) + keys(second)
    assert len(everything) == len(set(everything)) == 247  # 246 old posts and the new one, each once
    assert "pending" not in json.loads(second[-1].cursor)


def test_profiles_are_fetched_in_batches_of_25_and_cached_for_the_run(svc):
    many = [profile(10 + i, i) for i in range(30)]
    svc.fake.profiles.update({p["did"]: p for p in many})
    svc.fake.add(*[post(300 + i, author, NOW - 500 - i, ["devops", "sre"]) for i, author in enumerate(many)])
    pages = svc.read()
    batches = [len(c.query["actors"]) for c in svc.fake.calls_to(PROFILES)]
    assert batches == [25, 8]  # 33 distinct authors
    followers = {u.id: u.followers for p in pages for u in parse_page(p.payload, TRACKED, "devops").users}
    assert followers["did:plc:user0039"] == 29
    svc.read("sre")
    assert len(svc.fake.calls_to(PROFILES)) == 2  # cached for the run
    svc.client.new_run()
    svc.read("sre")
    assert len(svc.fake.calls_to(PROFILES)) == 4


def test_an_expired_token_is_refreshed_and_a_failed_refresh_logs_in_again(svc, caplog):
    with caplog.at_level(logging.DEBUG):
        cursor = svc.read()[-1].cursor
        svc.fake.expire_access()
        assert [p.result_count for p in svc.read(cursor=cursor)] == [0]
        assert (len(svc.fake.calls_to(LOGIN)), len(svc.fake.calls_to(REFRESH))) == (1, 1)
        assert svc.fake.calls_to(SEARCH)[-1].headers["Authorization"] == "Bearer access-3"
        svc.fake.expire_access()
        svc.fake.expire_refresh()
        assert [p.result_count for p in svc.read(cursor=cursor)] == [0]
        assert (len(svc.fake.calls_to(LOGIN)), len(svc.fake.calls_to(REFRESH))) == (2, 2)
    actions = [getattr(r, "event.action", None) for r in caplog.records]
    assert actions.count("session_created") == 2 and actions.count("session_refreshed") == 1
    assert "session_refresh_failed" in actions
    for secret in [PASSWORD, *svc.fake.access, *svc.fake.refresh]:
        assert secret not in caplog.text
    assert PASSWORD not in repr(svc.client) and "access-" not in repr(svc.client._session)


def test_a_refused_login_is_fatal_and_never_shows_the_password(caplog):
    wrong = "wrong-app-password-zzzz"
    service = Service(password=wrong)
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(SourceError) as raised:
            service.read()
    finally:
        service.stop()
    assert raised.value.kind == "invalid_credentials" and raised.value.fatal and raised.value.status == 401
    assert "BLUESKY_APP_PASSWORD" in str(raised.value)
    assert len(service.fake.calls_to(LOGIN)) == 1 and not service.fake.calls_to(SEARCH)
    for text in (str(raised.value), repr(service.client), caplog.text):
        assert wrong not in text and PASSWORD not in text


def test_a_429_waits_until_ratelimit_reset(svc):
    svc.fake.fault = lambda r: (
        Scripted(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
                 {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(NOW) + 30)})
        if r.path.endswith(SEARCH) and len(svc.fake.calls_to(SEARCH)) == 1 else None
    )  # fmt: skip
    pages = svc.read()
    assert svc.sleep.waits == [31.0] and [p.result_count for p in pages] == [6]
    assert pages[0].requests == 4  # login, the 429, the search, the profiles


@pytest.mark.parametrize(
    "failure",
    [
        Scripted(503, "<html>busy</html>"),
        Scripted(502, {"error": "UpstreamFailure", "message": "Upstream Failure"}),
        Scripted(200, '{"posts": [{"uri": "at://x"'),
        Scripted(200, ["not", "an", "object"]),
        Scripted(hang=2.0),
        Scripted(200, {"posts": []}, cut=3),
    ],
    ids=["503-html", "502", "malformed-json", "array-not-object", "timeout", "reset-mid-body"],
)
def test_transient_failures_are_retried_and_counted(svc, failure):
    svc.fake.fault = lambda r: (
        failure if r.path.endswith(SEARCH) and len(svc.fake.calls_to(SEARCH)) == 1 else None
    )
    attempts = Attempts()
    started = time.monotonic()
    pages = list(svc.client.pages("devops", None, 100, attempts))
    assert time.monotonic() - started < 6  # no real backoff: sleeps are recorded
    assert [p.result_count for p in pages] == [6] and len(svc.sleep.waits) == 1
    assert attempts.requests == pages[0].requests == len(svc.fake.calls) == 4


def test_a_repeated_page_cursor_stalls_and_keeps_the_committed_since(svc, caplog):
    cursor = svc.read()[-1].cursor
    svc.fake.add(*[post(500 + i, svc.authors[0], NOW - 10 - i, ["devops"]) for i in range(5)])

    def same_cursor(request):
        if not request.path.endswith(SEARCH):
            return None
        page = svc.fake.search(request)
        page.body["cursor"] = request.param("cursor") or "2"
        return page

    svc.fake.fault = same_cursor
    with caplog.at_level(logging.WARNING, logger="tagwatch"):
        pages = svc.read(cursor=cursor, budget=2)
        pages += svc.read(cursor=pages[-1].cursor)
    assert pages[-1].partial_errors[0]["kind"] == "pagination_stalled"
    state = json.loads(pages[-1].cursor)
    assert "pending" not in state and state["since"] == json.loads(cursor)["since"]
    assert "pagination_stalled" in [getattr(r, "event.action", None) for r in caplog.records]


def test_a_rejected_page_cursor_restarts_the_pagination_once(svc):
    first = svc.read(budget=2)
    assert json.loads(first[-1].cursor)["pending"]["page"] == "2"
    svc.fake.fault = lambda r: (
        Scripted(400, {"error": "InvalidRequest", "message": "invalid cursor"})
        if r.param("cursor") == "2"
        else None
    )
    pages = svc.read(cursor=first[-1].cursor)
    assert pages[0].partial_errors[0]["kind"] == "cursor_rejected"
    assert sum(p.result_count for p in pages) == 4  # the two read already are dropped


def test_profiles_that_cannot_be_fetched_leave_followers_unknown(svc):
    svc.fake.fault = lambda r: Scripted(503, "down") if r.path.endswith(PROFILES) else None
    page = svc.read()[0]
    assert page.result_count == 6 and page.partial_errors[0]["kind"] == "profiles_unavailable"
    assert {u.followers for u in parse_page(page.payload, TRACKED, "devops").users} == {None}


def test_a_stop_request_during_a_wait_ends_the_walk(svc):
    svc.fake.script.append(Scripted(503, "down"))
    svc.client.should_stop = lambda: True
    with pytest.raises(StopRequested):
        svc.read()


@pytest.mark.parametrize(
    ("path", "answer", "kind"),
    [
        (
            LOGIN,
            Scripted(400, {"error": "AuthFactorTokenRequired", "message": "email code"}),
            "invalid_credentials",
        ),
        (LOGIN, Scripted(400, {"error": "AccountTakedown", "message": "gone"}), "access_refused"),
        (LOGIN, Scripted(200, {"did": "did:plc:x"}), "source_unavailable"),  # a 200 without tokens
        (SEARCH, Scripted(403, {"error": "Forbidden", "message": "search needs auth"}), "access_refused"),
        (SEARCH, Scripted(400, {"error": "BadQueryString", "message": "bad q"}), "bad_request"),
    ],
)
def test_refusals_map_to_the_error_kinds_the_collector_acts_on(svc, path, answer, kind):
    svc.fake.fault = lambda r: answer if r.path.endswith(path) else None
    with pytest.raises(SourceError) as raised:
        svc.read()
    assert raised.value.kind == kind


def test_invalid_tokens_log_in_again_and_give_up_after_bounded_tries(svc):
    svc.fake.fault = lambda r: (
        Scripted(401, {"error": "InvalidToken", "message": "bad"}) if r.path.endswith(SEARCH) else None
    )
    with pytest.raises(SourceError) as raised:
        svc.read()
    assert raised.value.kind == "invalid_credentials"
    assert (len(svc.fake.calls_to(LOGIN)), len(svc.fake.calls_to(SEARCH))) == (3, 3)


def test_an_unreadable_cursor_starts_afresh(svc, caplog):
    with caplog.at_level(logging.WARNING, logger="tagwatch"):
        pages = svc.read(cursor='{"v": 1, "since": "soon"}')
    assert [p.result_count for p in pages] == [6]
    assert "cursor_unreadable" in [getattr(r, "event.action", None) for r in caplog.records]
