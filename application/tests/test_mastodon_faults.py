"""Fault suite of the Mastodon client, the equivalents of test_faults.py's X faults, per server.

Two fake servers over real HTTP (test_mastodon_source.Network); sleep and clock are fakes, so no test
waits for real. A faulted server must give an error page of the right kind (or recover), keep its
cursor where it can resume without losing a status, never loop, and leave the other server alone.
One-off transient faults (503, 500, malformed JSON, object-not-array, read timeout, reset mid-body)
are in test_mastodon_source.py; here are the persistent ones, the trickled body, the rate-limit
variants, the status codes and the pagination traps.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from fakes import Scripted
from fakes_mastodon import toot
from feed_faults import actions, assert_clean
from test_mastodon_source import ALICE, TOKEN, TRACKED, Network

from tagwatch.parse_mastodon import parse_page
from tagwatch.sources.http import Attempts


@pytest.fixture
def net(caplog):
    """Servers A (open) and B (wants TOKEN, which the client has); every log record captured."""
    caplog.set_level(logging.DEBUG)
    network = Network(token_on_b=TOKEN, client_token=TOKEN)
    yield network
    network.close()


def of(pages, server) -> list:
    return [p for p in pages if p.origin == server.base_url]


def keys(pages) -> list[str]:
    return [post.key for page in pages for post in parse_page(page.payload, TRACKED, "devops").posts]


def reset_at(moment: float, style: str) -> str:
    """An X-RateLimit-Reset value: rack-attack's `iso8601(6)` in UTC, or other RFC 3339 spellings."""
    text = datetime.fromtimestamp(moment, tz=UTC).isoformat(timespec="microseconds")
    if style == "offset":
        return text
    return text.replace(".000000", "").replace("+00:00", "Z") if style == "seconds" else text[:-6] + "Z"


def limited(net: Network, reset: str | None, remaining: str = "0") -> Scripted:
    headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": remaining}
    if reset is not None:
        headers["X-RateLimit-Reset"] = reset
    return Scripted(429, {"error": "Too many requests"}, headers)


# ---- rate limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["micros", "offset", "seconds"])
def test_a_429_waits_for_the_iso_reset_in_any_rfc3339_spelling(net, caplog, style):
    net.b.script.append(limited(net, reset_at(net.clock() + 20, style)))
    pages = net.read()
    assert net.sleep.waits == [21.0]  # reset − now + 1
    assert sum(p.result_count for p in pages) == 5 and not any(p.error for p in pages)
    assert "rate_limit_wait" in actions(caplog.records)
    assert_clean(caplog.records, TOKEN)


@pytest.mark.parametrize(
    ("reset", "remaining"),
    [(None, "0"), ("soon", "0"), ("future", "12"), ("far", "0")],
    ids=["no-reset", "unreadable-reset", "remaining-not-0", "reset-beyond-the-window"],
)
def test_a_429_without_a_consistent_reset_backs_off_boundedly_and_continues(net, reset, remaining):
    moments = {"future": net.clock() + 30, "far": net.clock() + 3600}
    value = reset_at(moments[reset], "micros") if reset in moments else reset
    net.a.script.append(limited(net, value, remaining))
    pages = net.read()
    assert len(net.sleep.waits) == 1 and 2.5 <= net.sleep.waits[0] <= 5.0  # backoff from 5 s, jittered
    assert sum(p.result_count for p in pages) == 5


def test_429s_in_a_row_wait_three_times_then_take_the_server_out_as_rate_limited(net, caplog):
    net.a.fault = lambda request: limited(net, reset_at(net.clock() + 10, "micros"))
    pages = net.read()
    assert net.sleep.waits == [11.0, 11.0, 11.0]
    assert (of(pages, net.a)[0].error.kind, of(pages, net.a)[0].requests) == ("rate_limited", 4)
    assert sum(p.result_count for p in of(pages, net.b)) == 2
    calls = len(net.a.calls)
    assert of(net.read("sre"), net.a)[0].error.kind == "rate_limited" and len(net.a.calls) == calls
    assert "origin_out" in actions(caplog.records)
    assert_clean(caplog.records, TOKEN)


def test_remaining_0_on_a_200_makes_the_next_request_wait_for_the_reset(net):
    reset = net.clock() + 20
    sent_at = []

    def used_up(request):
        sent_at.append(net.clock())
        if len(sent_at) > 1:
            return None
        page = net.a.timeline(request)
        page.headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset_at(reset, "micros")})
        return page

    net.a.fault = used_up
    assert sum(p.result_count for p in net.read()) == 5  # A's newest page, then its older one
    assert net.sleep.waits == [21.0] and sent_at[1] >= reset


# ---- the server fails ----------------------------------------------------------------------------

PERSISTENT = [
    (Scripted(500, {"error": "Internal"}), "HTTP 500"),
    (Scripted(503, "<html>busy</html>"), "HTTP 503"),
    (Scripted(hang=1.0), "timeout (deadline 0.5 s)"),
    (Scripted(200, [{"id": "1"}] * 200, trickle=0.05), "timeout (deadline 0.5 s)"),
    (Scripted(200, "[{not json"), "malformed JSON in a 200 response"),
    (Scripted(200, {"statuses": []}), "malformed JSON in a 200 response"),
    (Scripted(200, [{"id": "1"}], cut=5), "connection error (ChunkedEncodingError)"),
]


@pytest.mark.parametrize(
    ("failure", "problem"),
    PERSISTENT,
    ids=["500", "503-html", "read-timeout", "trickled-body", "malformed-json", "wrong-shape", "reset"],
)
def test_a_server_failing_every_attempt_gives_one_clear_error_page_and_keeps_its_cursor(
    net, caplog, failure, problem
):
    cursor = net.read()[-1].cursor
    net.a.receive(toot(40, ALICE, ["devops"]))
    net.a.fault = lambda request: failure
    attempts = Attempts()
    pages = list(net.client.pages("devops", cursor, 100, attempts))
    failed = of(pages, net.a)
    assert len(failed) == 1 and failed[0].error.kind == "source_unavailable"
    assert str(failed[0].error).endswith(f"did not answer after 3 attempts: {problem}")
    assert failed[0].requests == 3 and len(net.sleep.waits) == 2  # two retries, each after a backoff
    assert json.loads(failed[0].cursor) == json.loads(cursor)  # the new status is read next time
    assert [p.error for p in of(pages, net.b)] == [None]
    assert attempts.requests == sum(p.requests for p in pages)
    net.a.fault = None
    assert keys(of(net.read(cursor=failed[0].cursor), net.a)) == [net.a.statuses[max(net.a.statuses)].uri]
    assert_clean(caplog.records, TOKEN, errors=(failed[0].error,))


def test_a_trickled_body_is_cut_at_the_request_deadline_and_retried(net):
    net.a.script.append(Scripted(200, [{"id": "1"}] * 100, trickle=0.05))  # ~1.3 kB: 60 s at this pace
    pages = net.read()
    assert len(net.sleep.waits) == 1 and of(pages, net.a)[0].requests == 2
    assert sum(p.result_count for p in pages) == 5 and not any(p.error for p in pages)


# ---- status codes --------------------------------------------------------------------------------

STATUSES = [
    (Scripted(401, {"error": "The access token is invalid"}), "auth_failed", True),
    (Scripted(403, {"error": "This action is not allowed"}), "auth_failed", True),
    (Scripted(410, {"error": "Gone"}), "server_gone", True),
    (Scripted(422, {"error": "Validation failed: limit"}), "bad_request", False),
    (Scripted(400, "<html>Bad Request</html>"), "bad_request", False),
    (Scripted(404, {"error": "Record not found"}), None, False),
]


@pytest.mark.parametrize(
    ("answer", "kind", "out"), STATUSES, ids=["401", "403", "410", "422", "400", "404-unknown-tag"]
)
def test_each_refusal_has_its_kind_and_only_lasting_ones_take_the_server_out(net, caplog, answer, kind, out):
    net.b.fault = lambda request: answer
    pages = net.read()
    assert [p.error.kind if p.error else None for p in of(pages, net.b)] == [kind]
    assert sum(p.result_count for p in of(pages, net.a)) == 3
    if kind is not None:
        error = of(pages, net.b)[0].error
        assert (error.status, error.fatal) == (answer.status, False)  # the other server goes on
        assert "127.0.0.2" in str(error)
    calls = len(net.b.calls)
    net.read("sre")
    assert len(net.b.calls) == calls + (0 if out else 1)
    assert_clean(caplog.records, TOKEN, errors=tuple(p.error for p in pages if p.error))


def test_a_rejected_token_says_so_without_showing_it(net, caplog):
    net.b.token = "the-token-the-server-wants"
    error = of(net.read(), net.b)[0].error
    assert (error.kind, error.status) == ("auth_failed", 401)
    assert "rejected the access token" in str(error) and "MASTODON_ACCESS_TOKENS" in str(error)
    assert net.b.calls[-1].headers["Authorization"] == f"Bearer {TOKEN}"  # it was sent, never shown
    assert_clean(caplog.records, TOKEN, errors=(error,))


# ---- pagination traps ----------------------------------------------------------------------------


def test_a_link_ahead_of_the_page_never_moves_the_cursor_past_unread_statuses(net):
    cursor = net.read()[-1].cursor
    burst = [toot(300 + i, ALICE, ["devops"]) for i in range(50)]
    net.a.receive(*burst)

    def far_ahead(request):
        page = net.a.timeline(request)
        if request.param("min_id") and page.body:
            page.headers["Link"] = f'<{net.a.base_url}{request.path}?min_id=99999999>; rel="prev"'
        return page

    net.a.fault = far_ahead
    first = of(net.read(cursor=cursor, budget=40), net.a)
    net.a.fault = None
    rest = of(net.read(cursor=first[-1].cursor), net.a)
    read = keys(first) + keys(rest)
    assert sorted(read) == sorted(t.uri for t in burst) and len(read) == 50  # none lost, none twice


@pytest.mark.parametrize("rel", ["prev", "next"])
def test_an_empty_page_with_a_link_ends_the_walk_after_one_request(net, rel):
    cursor = net.read()[-1].cursor
    saved = json.loads(cursor)["servers"][net.a.base_url]["min_id"]

    def empty(request):
        link = f"<{net.a.base_url}{request.path}?{'min_id' if rel == 'prev' else 'max_id'}={int(saved) + 7}>"
        return Scripted(200, [], {"Link": f'{link}; rel="{rel}"'})

    net.a.fault = empty
    calls = len(net.a.calls)
    pages = of(net.read(cursor=cursor), net.a)
    assert len(net.a.calls) == calls + 1 and [p.result_count for p in pages] == [0]
    assert json.loads(pages[0].cursor)["servers"][net.a.base_url] == {"min_id": saved}


def test_a_link_next_back_to_the_same_page_stalls_the_first_contact_and_keeps_the_newest_id(net, caplog):
    net.a.receive(*[toot(400 + i, ALICE, ["devops"]) for i in range(100)])

    def same_page(request):
        if not request.param("max_id"):
            return None
        page, again = net.a.timeline(request), request.param("max_id")
        page.headers["Link"] = f'<{net.a.base_url}{request.path}?max_id={again}>; rel="next"'
        return page

    net.a.fault = same_page
    pages = of(net.read(budget=1000), net.a)
    assert [p.result_count for p in pages] == [40, 40] and len(net.a.calls) == 2
    assert pages[-1].partial_errors[0]["kind"] == "pagination_stalled"
    assert json.loads(pages[-1].cursor)["servers"][net.a.base_url] == {"min_id": str(max(net.a.statuses))}
    assert "pagination_stalled" in actions(caplog.records)
