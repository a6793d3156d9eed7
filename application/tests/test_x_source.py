"""The X API v2 client against a scripted fake X transport, with injected sleep and clock."""

from __future__ import annotations

import logging
import time

import pytest
import requests
from fakes import (
    FAKE_BASE_URL,
    FakeXApi,
    FixedClock,
    RecordedSleep,
    Scripted,
    fake_session,
    make_post,
    make_user,
    serve_fake_x,
)

from tagwatch.sources.base import SourceError, StopRequested
from tagwatch.sources.x import Attempts, RetryPolicy, XClient

TOKEN = "AAAAAAAAAAAAAAAAAAAAAsecret-bearer-token-value"


def corpus(n: int = 25, tag: str = "devops") -> FakeXApi:
    posts = [make_post(1000 + i, [tag], author="u1") for i in range(n)]
    return FakeXApi(posts, [make_user("u1", "alice", 10)])


def client_for(api: FakeXApi, sleep: RecordedSleep, clock=lambda: 1_000.0, **policy) -> XClient:
    return XClient(
        FAKE_BASE_URL,
        TOKEN,
        session=fake_session(api),
        sleep=sleep,
        clock=clock,
        policy=RetryPolicy(**policy) if policy else None,
    )


def test_client_follows_next_token_until_no_more_pages():
    api = corpus(25)
    api.page_size = 10
    pages = list(client_for(api, RecordedSleep()).pages("devops", None, None, budget=100))
    assert [p.result_count for p in pages] == [10, 10, 5]
    assert [c.get("next_token") for c in api.calls] == [None, "nt1015", "nt1005"]
    assert api.served == [str(i) for i in range(1024, 999, -1)]


def test_client_sends_documented_query_fields_and_bearer():
    api = corpus(1)
    list(client_for(api, RecordedSleep()).pages("devops", "900", None, budget=100))
    call = api.calls[0]
    assert call["query"] == "#devops -is:retweet"
    assert call["max_results"] == "100"
    assert call["since_id"] == "900"
    assert call["tweet.fields"] == "created_at,lang,author_id,entities,geo"
    assert call["expansions"] == "author_id,geo.place_id"
    assert call["user.fields"] == "username,name,location,public_metrics"
    assert call["place.fields"] == "country_code,full_name,country"
    assert call["_authorization"] == f"Bearer {TOKEN}"


def test_client_stops_at_budget_and_asks_for_no_more_than_needed():
    api = corpus(50)
    pages = list(client_for(api, RecordedSleep()).pages("devops", None, None, budget=15))
    assert [c["max_results"] for c in api.calls] == ["15"]
    assert sum(p.result_count for p in pages) == 15


def test_client_requests_at_least_ten_as_x_requires():
    api = corpus(50)
    list(client_for(api, RecordedSleep()).pages("devops", None, None, budget=3))
    assert api.calls[0]["max_results"] == "10"


def test_client_waits_for_rate_limit_reset_then_continues(caplog):
    api = corpus(5)
    api.script.append(
        Scripted(429, {"title": "Too Many Requests", "status": 429}, {"x-rate-limit-reset": "1060"})
    )
    sleep = RecordedSleep()
    with caplog.at_level(logging.WARNING, logger="tagwatch.collector.source"):
        pages = list(client_for(api, sleep).pages("devops", None, None, budget=100))
    assert sleep.waits == [61.0]
    assert pages[0].result_count == 5 and pages[0].requests == 2
    wait_record = next(r for r in caplog.records if getattr(r, "event.action", None) == "rate_limit_wait")
    assert wait_record.levelno == logging.WARNING
    assert getattr(wait_record, "tagwatch.wait_seconds") == 61.0


def test_client_rate_limit_without_reset_header_backs_off_boundedly():
    api = corpus(5)
    api.script.append(Scripted(429, {"errors": [{"code": 88, "message": "Rate limit exceeded"}]}))
    sleep = RecordedSleep()
    list(client_for(api, sleep).pages("devops", None, None, budget=100))
    assert len(sleep.waits) == 1 and 1.0 <= sleep.waits[0] <= 60.0 * 15


def test_client_rate_limit_reset_beyond_cap_fails_without_waiting():
    api = corpus(5)
    api.script.append(Scripted(429, {"title": "Too Many Requests"}, {"x-rate-limit-reset": "1600"}))
    sleep = RecordedSleep()
    with pytest.raises(SourceError) as raised:
        list(client_for(api, sleep).pages("devops", None, None, budget=100))
    assert raised.value.kind == "rate_limited" and not raised.value.fatal
    assert sleep.waits == []


def test_client_usage_cap_is_fatal():
    api = corpus(5)
    body = {
        "title": "UsageCapExceeded",
        "detail": "Usage cap exceeded: Monthly product cap",
        "type": "https://api.twitter.com/2/problems/usage-capped",
    }
    api.script.append(Scripted(429, body))
    with pytest.raises(SourceError) as raised:
        list(client_for(api, RecordedSleep()).pages("devops", None, None, budget=100))
    assert raised.value.kind == "usage_capped" and raised.value.fatal


@pytest.mark.parametrize(
    "failure",
    [
        Scripted(503, "Service Unavailable"),
        Scripted(500, {"title": "Internal Error"}),
        Scripted(200, "{not json"),
        Scripted(raises=requests.ConnectTimeout("connect timed out")),
        Scripted(raises=requests.ReadTimeout("read timed out")),
        Scripted(raises=requests.ConnectionError("connection refused")),
    ],
    ids=["text-503", "json-500", "malformed-200", "connect-timeout", "read-timeout", "connection-error"],
)
def test_client_retries_transient_failures_with_backoff(failure):
    api = corpus(5)
    api.script.extend([failure, failure])
    sleep = RecordedSleep()
    pages = list(client_for(api, sleep, backoff_base=2.0).pages("devops", None, None, budget=100))
    assert pages[0].result_count == 5
    assert len(sleep.waits) == 2
    assert 1.0 <= sleep.waits[0] <= 2.0 and 2.0 <= sleep.waits[1] <= 4.0  # exponential, jittered


def test_client_gives_up_after_bounded_retries():
    api = corpus(5)
    api.script.extend([Scripted(503, "Service Unavailable")] * 10)
    sleep = RecordedSleep()
    with pytest.raises(SourceError) as raised:
        list(client_for(api, sleep, max_retries=3).pages("devops", None, None, budget=100))
    assert raised.value.kind == "source_unavailable"
    assert len(sleep.waits) == 3 and len(api.calls) == 4


def test_client_keeps_partial_errors_of_a_200():
    api = corpus(0)
    body = {
        "data": [make_post(7, ["devops"])],
        "errors": [{"title": "Not Found Error", "detail": "Could not find place", "resource_id": "p1"}],
        "meta": {"result_count": 1, "newest_id": "7"},
    }
    api.script.append(Scripted(200, body))
    page = next(client_for(api, RecordedSleep()).pages("devops", None, None, budget=100))
    assert page.result_count == 1 and page.partial_errors[0]["detail"] == "Could not find place"


def test_client_falls_back_when_since_id_is_too_old():
    api = corpus(5)
    body = {
        "errors": [
            {"parameters": {"since_id": ["1"]}, "message": "Invalid 'since_id':'1'. 'since_id' must be ..."}
        ],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    api.script.append(Scripted(400, body))
    page = next(client_for(api, RecordedSleep()).pages("devops", "1", None, budget=100))
    assert page.since_id is None and page.result_count == 5
    assert "since_id" in api.calls[0] and "since_id" not in api.calls[1]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            401,
            {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"},
            "invalid_token",
        ),
        (402, {"title": "CreditsDepleted", "detail": "Your account has no credits"}, "credits_depleted"),
        (
            403,
            {
                "title": "Client Forbidden",
                "reason": "client-not-enrolled",
                "type": "https://api.x.com/2/problems/client-forbidden",
            },
            "client_not_enrolled",
        ),
        (
            403,
            {"errors": [{"code": 453, "message": "You currently have access to a subset of endpoints"}]},
            "client_not_enrolled",
        ),
    ],
)
def test_client_auth_and_credit_errors_are_fatal_and_never_show_the_token(status, body, kind, caplog):
    api = corpus(5)
    api.script.append(Scripted(status, body))
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceError) as raised:
        list(client_for(api, RecordedSleep()).pages("devops", None, None, budget=100))
    assert raised.value.kind == kind and raised.value.fatal and raised.value.status == status
    assert TOKEN not in str(raised.value) and TOKEN not in repr(raised.value)
    assert TOKEN not in caplog.text


def test_client_repr_hides_token():
    client = client_for(corpus(1), RecordedSleep())
    assert TOKEN not in repr(client)


def test_client_waits_for_the_reset_after_a_200_with_remaining_zero():
    api = corpus(25)
    api.page_size = 10
    api.script.append(
        Scripted(
            200,
            api.search({"query": "#devops", "max_results": "10"}),
            {"x-rate-limit-remaining": "0", "x-rate-limit-reset": "1045"},
        )
    )
    clock = FixedClock(1_000.0)
    sleep = RecordedSleep(clock)
    renewed = []
    client = client_for(api, sleep, clock=clock)
    client.on_wait = renewed.append
    pages = list(client.pages("devops", None, None, budget=100))
    assert sleep.waits == [46.0] and renewed == [46.0]  # before the second request, not after a 429
    assert [p.result_count for p in pages] == [10, 10, 5]


def test_client_429_with_inconsistent_headers_backs_off_boundedly():
    api = corpus(5)
    headers = {"x-rate-limit-remaining": "14", "x-rate-limit-reset": "1900"}  # remaining > 0 yet a 429
    api.script.extend([Scripted(429, {"title": "Too Many Requests"}, headers)] * 2)
    sleep = RecordedSleep()
    pages = list(client_for(api, sleep).pages("devops", None, None, budget=100))
    assert pages[0].result_count == 5 and len(sleep.waits) == 2
    assert all(w <= 60 for w in sleep.waits)  # not the 900 s the reset header claims


def test_client_429_after_the_allowed_waits_gives_up_and_ends_the_run():
    api = corpus(5)
    api.script.extend([Scripted(429, {}, {"x-rate-limit-reset": "1010"})] * 10)
    sleep = RecordedSleep()
    with pytest.raises(SourceError) as raised:
        list(client_for(api, sleep).pages("devops", None, None, budget=100))
    assert raised.value.kind == "rate_limited" and raised.value.ends_run and not raised.value.fatal
    assert len(sleep.waits) == 3


def test_client_stops_retrying_when_the_tag_time_budget_is_spent():
    api = corpus(5)
    api.script.extend([Scripted(503, "down")] * 10)
    clock = FixedClock(0.0)
    client = client_for(api, RecordedSleep(clock), clock=clock, backoff_base=20.0)
    client.monotonic = clock
    with pytest.raises(SourceError) as raised:
        list(client.pages("devops", None, None, budget=100, attempts=Attempts(deadline=25.0)))
    assert raised.value.kind == "source_unavailable" and "time budget" in str(raised.value)
    assert len(api.calls) == 2  # the third attempt's backoff would end after the deadline
    with pytest.raises(SourceError) as spent:
        client.fetch_page("devops", None, None, attempts=Attempts(deadline=0.0))
    assert spent.value.kind == "time_budget_spent"


def test_client_counts_every_attempt_even_when_the_page_fails():
    api = corpus(5)
    api.script.extend([Scripted(500, {"title": "Internal Error"})] * 10)
    attempts = Attempts()
    with pytest.raises(SourceError):
        client_for(api, RecordedSleep(), max_retries=2).fetch_page("devops", None, None, attempts=attempts)
    assert attempts.requests == 3 == len(api.calls)


@pytest.mark.parametrize(
    ("answer", "bound"),
    [
        (Scripted(200, {"meta": {"result_count": 0}}, trickle=0.1), 1.2),
        (Scripted(hang=2.0), 1.2),
    ],
    ids=["body-trickling-a-byte-at-a-time", "no-answer"],
)
def test_client_request_deadline_covers_the_whole_body_over_real_http(answer, bound):
    api = corpus(5)
    body = answer.encoded()[0] + b" " * 200  # long enough to trickle for 20 s
    answer.body = body.decode() if answer.trickle else answer.body
    api.script.append(answer)
    base_url, stop = serve_fake_x(api)
    client = XClient(
        base_url,
        TOKEN,
        sleep=RecordedSleep(),
        policy=RetryPolicy(timeout=(0.5, 0.4), request_deadline=0.5),
    )
    try:
        started = time.monotonic()
        page = client.fetch_page("devops", None, None)
        elapsed = time.monotonic() - started
    finally:
        stop()
    assert page.result_count == 5 and page.requests == 2  # the cut request was retried
    assert elapsed < bound, f"one request held the client {elapsed:.1f} s"


def test_client_connection_reset_mid_body_is_retried():
    api = corpus(5)
    api.script.append(Scripted(200, api.search({"query": "#devops"}), cut=30))
    base_url, stop = serve_fake_x(api)
    sleep = RecordedSleep()
    try:
        page = XClient(base_url, TOKEN, sleep=sleep).fetch_page("devops", None, None)
    finally:
        stop()
    assert page.result_count == 5 and len(sleep.waits) == 1


def test_client_drops_a_rejected_next_token_and_restarts_from_since_id(caplog):
    api = corpus(5)
    invalid = {"errors": [{"parameters": {"next_token": ["x"]}, "message": "Invalid 'next_token'"}]}
    api.script.append(Scripted(400, {"title": "Invalid Request", **invalid}))
    with caplog.at_level(logging.WARNING, logger="tagwatch.collector.source"):
        page = client_for(api, RecordedSleep()).fetch_page("devops", "1000", "stale-token")
    assert page.restarted and page.since_id == "1000" and page.result_count == 4
    assert api.calls[1].get("next_token") is None and api.calls[1]["since_id"] == "1000"
    assert [getattr(r, "event.action") for r in caplog.records] == ["next_token_rejected"]


def test_client_since_id_rejected_on_the_fallback_too_is_a_clean_source_error():
    api = corpus(5)
    too_old = {"errors": [{"parameters": {"since_id": ["1"]}, "message": "Invalid 'since_id'"}]}
    api.script.extend([Scripted(400, too_old)] * 2)
    with pytest.raises(SourceError) as raised:
        client_for(api, RecordedSleep()).fetch_page("devops", "1", None)
    assert raised.value.kind == "bad_request" and raised.value.status == 400
    assert "since_id" not in api.calls[1]


def test_client_should_stop_cuts_a_wait_short():
    api = corpus(5)
    api.script.append(Scripted(503, "down"))
    client = client_for(api, RecordedSleep())
    client.should_stop = lambda: True
    with pytest.raises(StopRequested):
        client.fetch_page("devops", None, None)
    assert len(api.calls) == 1
