"""The Mastodon client and parser against two fake servers over real HTTP (127.0.0.1 and 127.0.0.2).

The servers federate some of the same statuses (same `uri`, different local ids). Sleep and clock are
fakes, so rate-limit waits and backoff take no real time.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from fakes import NOW, FixedClock, RecordedSleep, Scripted
from fakes_mastodon import Author, FakeMastodon, rate_limited, serve_mastodon, toot

from tagwatch.parse_mastodon import parse_page
from tagwatch.sources.http import Attempts, RetryPolicy
from tagwatch.sources.mastodon import MastodonClient, MastodonServer

TRACKED = ("devops", "sre", "oauth")
TOKEN = "mastodon-secret-token-value-0123456789"
ALICE = Author("alice", "127.0.0.1", "Alice A.", 120, [{"name": "📍 Location", "value": "Berlin"}])
BOB = Author("bob", "127.0.0.2", "Bob", 45)
CAROL = Author(
    "carol", "remote.example", "Carol", 7, [{"name": "Website", "value": "<a>https://c.example</a>"}]
)
POLICY = RetryPolicy(timeout=(0.5, 0.4), request_deadline=0.5, max_retries=2)


class Network:
    """Two fake servers, A (127.0.0.1) and B (127.0.0.2), and a client reading both."""

    def __init__(self, token_on_b: str | None = None, client_token: str | None = None) -> None:
        self.clock = FixedClock(NOW)
        self.sleep = RecordedSleep(self.clock)
        self.a = FakeMastodon("127.0.0.1", self.clock)
        self.b = FakeMastodon("127.0.0.2", self.clock, token=token_on_b)
        self.stops = [serve_mastodon(self.a), serve_mastodon(self.b)]
        self.t1, self.t2, self.t3 = (
            toot(1, ALICE, ["devops"]),
            toot(2, BOB, ["DevOps", "sre"], "de"),
            toot(3, CAROL, ["devops", "kubernetes"], None),
        )
        self.a.receive(self.t1, self.t2, self.t3)
        self.b.receive(self.t3, self.t2)
        servers = [MastodonServer(self.a.base_url), MastodonServer(self.b.base_url, client_token)]
        self.client = MastodonClient(
            servers, policy=POLICY, sleep=self.sleep, clock=self.clock, monotonic=self.clock
        )

    def close(self) -> None:
        for stop in self.stops:
            stop()

    def read(self, tag: str = "devops", cursor: str | None = None, budget: int = 100) -> list:
        return list(self.client.pages(tag, cursor, budget))


@pytest.fixture
def net():
    network = Network()
    yield network
    network.close()


def rows(pages):
    """Every post row of `pages`, parsed as part B will: (server, post) pairs."""
    return [
        (page.origin, post) for page in pages for post in parse_page(page.payload, TRACKED, "devops").posts
    ]


def test_first_run_reads_both_servers_and_a_shared_status_keeps_one_key(net):
    pages = net.read()
    posts = rows(pages)
    assert sum(p.result_count for p in pages) == 5  # A has 3 statuses with #devops, B has 2
    assert sorted({post.key for _, post in posts}) == sorted([net.t1.uri, net.t2.uri, net.t3.uri])
    t3_ids = {origin: post.source_id for origin, post in posts if post.key == net.t3.uri}
    assert t3_ids == {net.a.base_url: net.a.local_id(net.t3.uri), net.b.base_url: net.b.local_id(net.t3.uri)}
    assert t3_ids[net.a.base_url] != t3_ids[net.b.base_url]  # same status, two local ids, one key
    assert all(page.error is None and page.partial_errors == [] for page in pages)


def test_rows_carry_exact_users_languages_tags_and_followers(net):
    by_key = {post.key: post for _, post in rows(net.read())}
    users = {u.id: u for p in net.read() for u in parse_page(p.payload, TRACKED, "devops").users}
    assert (by_key[net.t1.uri].author_id, by_key[net.t1.uri].lang, by_key[net.t1.uri].tags) == (
        "alice@127.0.0.1",
        "en",
        ("devops",),
    )
    assert (by_key[net.t2.uri].author_id, by_key[net.t2.uri].lang, by_key[net.t2.uri].tags) == (
        "bob@127.0.0.2",
        "de",
        ("devops", "sre"),
    )
    assert (by_key[net.t3.uri].author_id, by_key[net.t3.uri].lang) == ("carol@remote.example", None)
    assert by_key[net.t1.uri].text == "post 1 #devops"
    assert by_key[net.t1.uri].created_at == "2026-11-18T11:07:40.000Z"
    assert {u: (users[u].name, users[u].followers, users[u].country) for u in users} == {
        "alice@127.0.0.1": ("Alice A.", 120, "DE"),
        "bob@127.0.0.2": ("Bob", 45, None),
        "carol@remote.example": ("Carol", 7, None),
    }
    assert (by_key[net.t1.uri].country, by_key[net.t1.uri].country_source) == ("DE", "profile")
    assert (by_key[net.t2.uri].country, by_key[net.t2.uri].country_source) == (None, "none")


def test_second_run_from_the_saved_cursor_reads_nothing_and_new_posts_appear_only_after(net):
    first = net.read()
    cursor = first[-1].cursor
    assert json.loads(cursor)["servers"] == {
        net.a.base_url: {"min_id": max(net.a.local_id(t.uri) for t in (net.t1, net.t2, net.t3))},
        net.b.base_url: {"min_id": max(net.b.local_id(t.uri) for t in (net.t2, net.t3))},
    }
    calls = len(net.a.calls), len(net.b.calls)
    second = net.read(cursor=cursor)
    assert sum(p.result_count for p in second) == 0
    assert [c.param("min_id") for c in net.a.calls[calls[0] :]] == [
        json.loads(cursor)["servers"][net.a.base_url]["min_id"]
    ]
    assert len(net.b.calls) - calls[1] == 1
    t4 = toot(4, BOB, ["devops"])
    net.a.receive(t4)
    net.b.receive(t4)
    third = net.read(cursor=second[-1].cursor)
    assert [post.key for _, post in rows(third)] == [t4.uri, t4.uri]
    assert net.read(cursor=third[-1].cursor)[0].result_count == 0


def test_forward_pagination_follows_the_link_header_and_a_stop_resumes_exactly(net):
    cursor = net.read()[-1].cursor
    burst = [toot(10 + i, ALICE, ["devops"]) for i in range(50)]
    net.a.receive(*burst)
    start = len(net.a.calls)
    pages = [p for p in net.read(cursor=cursor, budget=45) if p.origin == net.a.base_url]
    assert [p.result_count for p in pages] == [40, 5]  # limit 40, then what the budget leaves
    sent = [c.param("min_id") for c in net.a.calls[start:]]
    assert sent[1] == net.a.local_id(burst[39].uri)  # the second request took Link rel="prev"
    rest = [p for p in net.read(cursor=pages[-1].cursor) if p.origin == net.a.base_url]
    keys = [post.key for page in rest for post in parse_page(page.payload, TRACKED, "devops").posts]
    assert keys == [t.uri for t in reversed(burst[45:])]  # exactly the 5 left, nothing twice


def test_first_contact_reads_back_in_time_within_the_budget(net):
    net.a.receive(*[toot(100 + i, ALICE, ["devops"]) for i in range(60)])
    pages = [p for p in net.read(budget=50) if p.origin == net.a.base_url]
    assert [p.result_count for p in pages] == [40, 10]
    assert net.a.calls[1].param("max_id") == pages[0].payload["statuses"][-1]["id"]
    newest = pages[0].payload["statuses"][0]["id"]
    assert json.loads(pages[-1].cursor)["servers"][net.a.base_url] == {"min_id": newest}


def test_a_429_waits_for_the_iso_reset_and_continues(net):
    net.a.script.append(rate_limited(net.a, reset_in=42))
    pages = net.read()
    assert net.sleep.waits == [43.0]  # reset − now + 1
    assert sum(p.result_count for p in pages) == 5


def test_a_429_beyond_the_cap_takes_that_server_out_of_the_run_only(net):
    net.a.script.append(rate_limited(net.a, reset_in=900))
    pages = net.read()
    assert (pages[0].origin, pages[0].error.kind) == (net.a.base_url, "rate_limited")
    assert sum(p.result_count for p in pages if p.origin == net.b.base_url) == 2
    calls = len(net.a.calls)
    skipped = net.read("sre")
    assert len(net.a.calls) == calls and skipped[0].error.kind == "rate_limited"
    net.client.new_run()
    assert sum(p.result_count for p in net.read("sre") if p.origin == net.a.base_url) == 1


def test_a_server_requiring_a_token_fails_alone_and_the_token_is_never_logged(caplog):
    net = Network(token_on_b=TOKEN)
    try:
        with caplog.at_level(logging.DEBUG):
            pages = net.read()
        failed = [p for p in pages if p.error is not None]
        assert [(p.origin, p.error.kind, p.error.status) for p in failed] == [
            (net.b.base_url, "auth_failed", 401)
        ]
        assert "MASTODON_ACCESS_TOKENS" in str(failed[0].error)
        assert sum(p.result_count for p in pages) == 3  # server A's statuses are all there
        assert json.loads(failed[0].cursor)["servers"].keys() == {net.a.base_url}
    finally:
        net.close()
    authorised = Network(token_on_b=TOKEN, client_token=TOKEN)
    try:
        with caplog.at_level(logging.DEBUG):
            pages = authorised.read()
            pages += authorised.read(cursor=pages[-1].cursor)
        assert sum(p.result_count for p in pages) == 5 and not any(p.error for p in pages)
        assert authorised.b.calls[0].headers["Authorization"] == f"Bearer {TOKEN}"
        assert "Authorization" not in authorised.a.calls[0].headers  # a token goes only to its server
        assert TOKEN not in repr(authorised.client) and TOKEN not in repr(authorised.client.servers)
    finally:
        authorised.close()
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    "failure",
    [
        Scripted(503, "<html>busy</html>"),
        Scripted(500, {"error": "Internal"}),
        Scripted(200, "[{not json"),
        Scripted(200, {"error": "not a list"}),
        Scripted(hang=1.0),
        Scripted(200, [{"id": "1"}], cut=5),
    ],
    ids=["503-html", "500", "malformed-json", "object-not-array", "timeout", "reset-mid-body"],
)
def test_transient_failures_are_retried_and_counted(net, failure):
    net.a.script.append(failure)
    started = time.monotonic()
    attempts = Attempts()
    pages = list(net.client.pages("devops", None, 100, attempts))
    assert time.monotonic() - started < 3
    assert sum(p.result_count for p in pages) == 5 and not any(p.error for p in pages)
    assert len(net.sleep.waits) == 1 and 1.0 <= net.sleep.waits[0] <= 60
    assert attempts.requests == sum(p.requests for p in pages) == len(net.a.calls) + len(net.b.calls)


def test_a_server_down_gives_an_error_page_keeps_its_cursor_and_opens_its_circuit(net):
    cursor = net.read()[-1].cursor
    net.a.fault = lambda request: Scripted(502, "bad gateway")
    for n, tag in enumerate(("devops", "sre", "oauth")):
        pages = net.read(tag, cursor=cursor)
        assert pages[0].error.kind == "source_unavailable" and pages[0].result_count == 0
        assert json.loads(pages[0].cursor) == json.loads(cursor)
        assert pages[0].requests == 3  # the attempt and two retries, all counted
        assert len(net.a.calls) == 2 + 3 * (n + 1)
    calls = len(net.a.calls)
    assert net.read(cursor=cursor)[0].error.kind == "source_unavailable"
    assert len(net.a.calls) == calls  # three tags in a row: out for the rest of the run


def test_a_server_answering_the_same_page_again_stalls_and_keeps_the_newest_id_read(net, caplog):
    cursor = net.read()[-1].cursor
    net.a.receive(*[toot(200 + i, ALICE, ["devops"]) for i in range(3)])
    saved = json.loads(cursor)["servers"][net.a.base_url]["min_id"]

    def ignores_min_id(request):  # always the page after the saved cursor, whatever min_id says
        if request.param("min_id") is None:
            return None
        request.query["min_id"] = [saved]
        return net.a.timeline(request)

    net.a.fault = ignores_min_id
    with caplog.at_level(logging.WARNING, logger="tagwatch"):
        pages = [p for p in net.read(cursor=cursor) if p.origin == net.a.base_url]
    assert [p.result_count for p in pages] == [3, 3] and len(net.a.calls) == 4
    assert pages[-1].partial_errors[0]["kind"] == "pagination_stalled"
    newest = json.loads(pages[0].cursor)["servers"][net.a.base_url]["min_id"]
    assert int(newest) > int(saved) and json.loads(pages[-1].cursor) == json.loads(pages[0].cursor)
    assert "pagination_stalled" in [getattr(r, "event.action", None) for r in caplog.records]


def test_a_rejected_cursor_restarts_that_server_from_the_newest_page(net):
    net.a.fault = lambda request: (
        Scripted(422, {"error": "Validation failed"}) if request.param("min_id") else None
    )
    pages = net.read(cursor=json.dumps({"servers": {net.a.base_url: {"min_id": "5"}}, "v": 1}))
    first = pages[0]
    assert first.partial_errors[0]["kind"] == "cursor_rejected" and first.result_count == 3
    assert json.loads(pages[-1].cursor)["servers"][net.a.base_url]["min_id"] == net.a.local_id(net.t3.uri)


def test_an_unknown_hashtag_is_an_empty_page_not_an_error(net):
    pages = net.read("oauth")
    assert [(p.result_count, p.error) for p in pages] == [(0, None), (0, None)]
    assert json.loads(pages[-1].cursor)["servers"] == {}


def test_an_unreadable_cursor_starts_afresh(net, caplog):
    with caplog.at_level(logging.WARNING, logger="tagwatch"):
        pages = net.read(cursor="{not json")
    assert sum(p.result_count for p in pages) == 5
    assert "cursor_unreadable" in [getattr(r, "event.action", None) for r in caplog.records]


def test_a_stop_request_during_a_wait_ends_the_walk(net):
    net.a.script.append(Scripted(503, "down"))
    net.client.should_stop = lambda: True
    renewed = []
    net.client.on_wait = renewed.append
    with pytest.raises(Exception) as raised:
        net.read()
    assert type(raised.value).__name__ == "StopRequested" and len(renewed) == 1
