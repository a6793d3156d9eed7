"""Fault suite of the Bluesky client, the equivalents of test_faults.py's X faults.

A fake Bluesky service over real HTTP (test_bluesky_source.Service); sleep and clock are fakes, so no
test waits for real. A fault must end in a SourceError of the kind the collector acts on, or be
recovered from, without a loop, without losing a post (the committed `since` never moves past posts
not read) and without the app password or a session token in any log record or error message.
One-off transient faults (503, 502, malformed JSON, array-not-object, read timeout, reset mid-body)
are in test_bluesky_source.py; here are the persistent ones, the trickled body, the rate-limit
variants, the status codes, the session and the pagination traps.
"""

from __future__ import annotations

import json
import logging

import pytest
from fakes import NOW, Scripted
from fakes_bluesky import post
from feed_faults import actions, assert_clean
from test_bluesky_source import LOGIN, PASSWORD, PROFILES, REFRESH, SEARCH, TRACKED, Service

from tagwatch.parse_bluesky import parse_page
from tagwatch.sources.base import SourceError


@pytest.fixture
def svc(caplog):
    """Six #devops posts by three authors; every log record captured."""
    caplog.set_level(logging.DEBUG)
    service = Service()
    yield service
    service.stop()


def secrets(svc: Service) -> list[str]:
    """The app password and every token the fake issued."""
    return [PASSWORD, *svc.fake.access, *svc.fake.refresh]


def on(nsid: str, answer, first: int | None = None):
    """A fault answering requests to `nsid` with `answer(request)` (the first `first` only, if set)."""
    used = [0]

    def fault(request):
        if not request.path.endswith(nsid) or (first is not None and used[0] >= first):
            return None
        used[0] += 1
        return answer(request)

    return fault


def failing(svc: Service, **kwargs) -> SourceError:
    """The SourceError that reading #devops raises."""
    with pytest.raises(SourceError) as raised:
        svc.read(**kwargs)
    return raised.value


def keys(pages) -> list[str]:
    return [p.key for page in pages for p in parse_page(page.payload, TRACKED, "devops").posts]


def paged(svc: Service, size: int, then=None):
    """Search pages of `size` posts; `then(request, page)` may change each page."""

    def answer(request):
        request.query["limit"] = [str(size)]
        page = svc.fake.search(request)
        return then(request, page) if then else page

    return on(SEARCH, answer)


def limited(svc: Service, reset_in: float | None, remaining: str = "0") -> Scripted:
    headers = {"RateLimit-Limit": "3000", "RateLimit-Remaining": remaining}
    if reset_in is not None:
        headers["RateLimit-Reset"] = str(int(svc.clock() + reset_in))
    return Scripted(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, headers)


# ---- rate limits ---------------------------------------------------------------------------------


def test_a_429_beyond_the_cap_ends_the_run_for_bluesky_without_waiting(svc, caplog):
    svc.fake.fault = on(SEARCH, lambda r: limited(svc, 600))
    error = failing(svc)
    assert (error.kind, error.status, error.ends_run, error.fatal) == ("rate_limited", 429, True, False)
    assert svc.sleep.waits == [] and "rate_limit_over_cap" in actions(caplog.records)
    assert_clean(caplog.records, *secrets(svc), errors=(error,))


@pytest.mark.parametrize(
    ("reset_in", "remaining"),
    [(None, "0"), (30, "7"), (3600, "0")],
    ids=["no-reset", "remaining-not-0", "reset-beyond-the-window"],
)
def test_a_429_without_a_consistent_reset_backs_off_boundedly_and_continues(svc, reset_in, remaining):
    svc.fake.fault = on(SEARCH, lambda r: limited(svc, reset_in, remaining), first=1)
    pages = svc.read()
    assert len(svc.sleep.waits) == 1 and 2.5 <= svc.sleep.waits[0] <= 5.0  # backoff from 5 s, jittered
    assert [p.result_count for p in pages] == [6]


def test_429s_in_a_row_wait_three_times_then_end_the_run_as_rate_limited(svc):
    svc.fake.fault = on(SEARCH, lambda r: limited(svc, 10))
    assert failing(svc).kind == "rate_limited"
    assert svc.sleep.waits == [11.0, 11.0, 11.0] and len(svc.fake.calls_to(SEARCH)) == 4


def test_remaining_0_on_a_200_makes_the_next_request_wait_for_the_reset(svc):
    reset = int(svc.clock()) + 20
    sent_at = []

    def used_up(request):
        sent_at.append(svc.clock())
        if not request.path.endswith(SEARCH) or len(svc.fake.calls_to(SEARCH)) > 1:
            return None
        page = svc.fake.search(request)
        page.headers.update({"RateLimit-Remaining": "0", "RateLimit-Reset": str(reset)})
        return page

    svc.fake.fault = used_up
    assert [p.result_count for p in svc.read()] == [6]
    assert svc.sleep.waits == [21.0] and sent_at[-1] >= reset  # getProfiles waited for the window


# ---- the service fails ---------------------------------------------------------------------------

PERSISTENT = [
    (Scripted(500, {"error": "InternalServerError", "message": "Internal Server Error"}), "HTTP 500"),
    (Scripted(502, "<html>Bad Gateway</html>"), "HTTP 502"),
    (Scripted(hang=1.0), "timeout (deadline 0.5 s)"),
    (Scripted(200, {"posts": [{"uri": "at://x"}] * 100}, trickle=0.05), "timeout (deadline 0.5 s)"),
    (Scripted(200, '{"posts": ['), "malformed JSON in a 200 response"),
    (Scripted(200, ["posts"]), "malformed JSON in a 200 response"),
]


@pytest.mark.parametrize(
    ("failure", "problem"),
    PERSISTENT,
    ids=["500", "502-html", "read-timeout", "trickled-body", "malformed-json", "array-not-object"],
)
def test_a_search_failing_every_attempt_raises_one_clear_error(svc, caplog, failure, problem):
    svc.fake.fault = on(SEARCH, lambda r: failure)
    error = failing(svc)
    assert (error.kind, error.fatal, error.ends_run) == ("source_unavailable", False, False)
    assert str(error) == f"Bluesky did not answer after 3 attempts: {problem}"
    assert len(svc.fake.calls_to(SEARCH)) == 3 and len(svc.sleep.waits) == 2
    assert_clean(caplog.records, *secrets(svc), errors=(error,))


def test_a_trickled_body_is_cut_at_the_request_deadline_and_retried(svc):
    svc.fake.fault = on(SEARCH, lambda r: Scripted(200, svc.fake.search(r).body, trickle=0.05), first=1)
    pages = svc.read()
    assert [p.result_count for p in pages] == [6] and len(svc.sleep.waits) == 1
    assert len(svc.fake.calls_to(SEARCH)) == 2


@pytest.mark.parametrize(
    "body",
    [{"cursor": "4"}, {"posts": "none", "cursor": "4"}, {"posts": None}],
    ids=["no-posts", "posts-not-a-list", "posts-null"],
)
def test_a_search_answer_without_a_posts_list_fails_the_tag_mid_pagination_and_loses_nothing(
    svc, caplog, body
):
    svc.fake.fault = paged(
        svc, 2, lambda request, page: Scripted(200, body) if request.param("cursor") else page
    )
    pages = []
    with pytest.raises(SourceError) as raised:
        pages.extend(svc.client.pages("devops", None, 100))
    assert (raised.value.kind, raised.value.fatal) == ("source_unavailable", False)
    assert str(raised.value) == "Bluesky answered a search without a posts list"
    assert json.loads(pages[-1].cursor)["pending"]["page"] == "2"  # the pagination resumes there
    svc.fake.fault = paged(svc, 2)
    read = keys(pages) + keys(svc.read(cursor=pages[-1].cursor))
    assert len(read) == len(set(read)) == 6
    assert_clean(caplog.records, *secrets(svc), errors=(raised.value,))


@pytest.mark.parametrize(
    "body", [{"profiles": 5}, {"profiles": {"did": "x"}}, {}], ids=["int", "object", "none"]
)
def test_a_malformed_profiles_answer_leaves_followers_unknown(svc, body):
    svc.fake.fault = on(PROFILES, lambda r: Scripted(200, body))
    page = svc.read()[0]
    assert page.result_count == 6 and page.error is None
    assert page.partial_errors[0]["kind"] == "profiles_unavailable"
    assert {u.followers for u in parse_page(page.payload, TRACKED, "devops").users} == {None}


# ---- status codes --------------------------------------------------------------------------------

STATUSES = [
    (403, "Forbidden", "access_refused", True),
    (404, "MethodNotImplemented", "bad_request", False),
    (410, "Gone", "bad_request", False),
    (422, "InvalidRequest", "bad_request", False),
    (400, "BadQueryString", "bad_request", False),
]


@pytest.mark.parametrize(("status", "name", "kind", "fatal"), STATUSES, ids=[str(s[0]) for s in STATUSES])
def test_each_refusal_of_the_search_has_its_kind(svc, caplog, status, name, kind, fatal):
    svc.fake.fault = on(SEARCH, lambda r: Scripted(status, {"error": name, "message": "refused"}))
    error = failing(svc)
    assert (error.kind, error.status, error.fatal) == (kind, status, fatal)
    assert name in str(error) and len(svc.fake.calls_to(SEARCH)) == 1  # a refusal is not retried
    assert_clean(caplog.records, *secrets(svc), errors=(error,))


# ---- the session ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401], ids=["pds-400", "appview-401"])
def test_an_expired_access_token_is_refreshed_once_and_the_read_continues(svc, caplog, status):
    expired = Scripted(status, {"error": "ExpiredToken", "message": "Token has expired"})
    svc.fake.fault = on(SEARCH, lambda r: expired, first=1)
    pages = svc.read()
    assert [p.result_count for p in pages] == [6]
    assert (len(svc.fake.calls_to(LOGIN)), len(svc.fake.calls_to(REFRESH))) == (1, 1)
    assert svc.fake.calls_to(REFRESH)[0].headers["Authorization"] == "Bearer refresh-2"
    assert svc.fake.calls_to(SEARCH)[-1].headers["Authorization"] == "Bearer access-3"
    assert actions(caplog.records).count("session_refreshed") == 1
    assert_clean(caplog.records, *secrets(svc))


def test_a_refused_refresh_and_a_refused_login_give_an_auth_error(svc, caplog):
    cursor = svc.read()[-1].cursor
    svc.fake.expire_access()
    svc.fake.expire_refresh()
    svc.fake.password = "the-password-was-revoked"
    error = failing(svc, cursor=cursor)
    assert (error.kind, error.fatal, error.status) == ("invalid_credentials", True, 401)
    assert (len(svc.fake.calls_to(REFRESH)), len(svc.fake.calls_to(LOGIN))) == (1, 2)
    assert "session_refresh_failed" in actions(caplog.records)
    assert_clean(caplog.records, *secrets(svc), errors=(error,))


def test_a_refresh_the_service_cannot_answer_is_a_source_error_not_a_new_login(svc):
    cursor = svc.read()[-1].cursor
    svc.fake.expire_access()
    svc.fake.fault = on(REFRESH, lambda r: Scripted(503, "down"))
    error = failing(svc, cursor=cursor)
    assert error.kind == "source_unavailable" and len(svc.fake.calls_to(REFRESH)) == 3
    assert len(svc.fake.calls_to(LOGIN)) == 1


def test_tokens_expiring_at_once_give_up_after_bounded_refreshes(svc, caplog):
    svc.fake.fault = on(SEARCH, lambda r: Scripted(400, {"error": "ExpiredToken", "message": "expired"}))
    error = failing(svc)
    assert (error.kind, error.fatal) == ("invalid_credentials", True)
    assert (len(svc.fake.calls_to(SEARCH)), len(svc.fake.calls_to(REFRESH))) == (3, 3)
    assert_clean(caplog.records, *secrets(svc), errors=(error,))


# ---- pagination traps ----------------------------------------------------------------------------


def test_an_empty_page_that_points_further_is_followed_and_nothing_is_lost(svc, caplog):
    def empty_second(request, page):
        return Scripted(200, {"posts": [], "cursor": "4"}) if request.param("cursor") == "2" else page

    svc.fake.fault = paged(svc, 2, empty_second)
    pages = svc.read()
    assert [p.result_count for p in pages] == [2, 0, 2]
    assert [c.param("cursor") for c in svc.fake.calls_to(SEARCH)] == [None, "2", "4"]
    assert keys(pages) == [f"at://did:plc:user{a:04d}/app.bsky.feed.post/3k{n:08d}" for n, a in
                           [(1, 1), (2, 2), (5, 3), (6, 2)]]  # fmt: skip
    assert json.loads(pages[-1].cursor)["since"] == NOW - 60 - 120
    assert_clean(caplog.records, *secrets(svc))


def test_empty_pages_in_a_row_stall_and_the_committed_since_stays(svc, caplog):
    cursor = svc.read()[-1].cursor
    svc.clock.advance(600)
    svc.fake.add(*[post(30 + i, svc.authors[0], svc.clock() - 10 * i, ["devops"]) for i in range(6)])

    def then_empty(request, page):
        offset = int(request.param("cursor") or 0)
        return page if offset < 2 else Scripted(200, {"posts": [], "cursor": str(offset + 2)})

    svc.fake.fault = paged(svc, 2, then_empty)
    pages = svc.read(cursor=cursor)
    assert [p.result_count for p in pages] == [2, 0, 0, 0] and len(svc.fake.calls_to(SEARCH)) == 1 + 4
    assert pages[-1].partial_errors == [
        {"kind": "pagination_stalled", "detail": "3 pages in a row without posts"}
    ]
    assert json.loads(pages[-1].cursor) == json.loads(cursor)  # since did not move past posts not read
    svc.fake.fault = None
    rest = keys(svc.read(cursor=pages[-1].cursor))
    assert set(keys(pages) + rest) == {
        f"at://did:plc:user0001/app.bsky.feed.post/3k{30 + i:08d}" for i in range(6)
    }
    assert "pagination_stalled" in actions(caplog.records)


def test_a_cursor_leading_back_to_a_page_already_read_stalls(svc):
    def back_to_the_first(request, page):
        if request.param("cursor") == "4":
            page.body["cursor"] = "2"
        return page

    svc.fake.fault = paged(svc, 2, back_to_the_first)
    pages = svc.read()
    assert [p.result_count for p in pages] == [2, 2, 2] and len(svc.fake.calls_to(SEARCH)) == 3
    assert pages[-1].partial_errors[0] == {"kind": "pagination_stalled", "detail": "cursor 2 again"}
    assert json.loads(pages[-1].cursor)["since"] is None  # the next run reads the lookback again
