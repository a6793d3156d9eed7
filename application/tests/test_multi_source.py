"""Mastodon, Bluesky, X and the sample through the real collector and store, each source alone and all at
once, against fake servers over real HTTP on 127.0.0.1 (sleep and the sources' clocks are fakes)."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from backends import settings_on
from fakes import NOW, FakeXApi, FixedClock, RecordedSleep, Scripted, make_post, make_user, serve_fake_x
from fakes_bluesky import FakeBluesky, profile, serve_bluesky
from fakes_bluesky import post as bsky_post
from fakes_mastodon import Author, FakeMastodon, rate_limited, serve_mastodon, toot
from prometheus_client import REGISTRY

from tagwatch import aggregates, sources
from tagwatch.collector import Collector, RunResult
from tagwatch.config import Settings
from tagwatch.logs import EcsJsonFormatter, SourceFilter
from tagwatch.sources.bluesky import BlueskyClient
from tagwatch.sources.http import RetryPolicy
from tagwatch.sources.mastodon import MastodonClient, MastodonServer
from tagwatch.sources.x import XClient

TAGS = ("devops", "sre", "oauth")
TOKEN = "mastodon-secret-token-value-0123456789"
HANDLE, PASSWORD = "collector.bsky.social", "abcd-efgh-ijkl-mnop"
POLICY = RetryPolicy(timeout=(0.5, 0.4), request_deadline=0.5, max_retries=1)
ALICE = Author("alice", "127.0.0.1", "Alice A.", 120, [{"name": "📍 Location", "value": "Berlin"}])
BOB = Author("bob", "127.0.0.2", "Bob", 45)
CAROL = Author("carol", "remote.example", "Carol", 7)
UTC_ZONE = ZoneInfo("UTC")


class Mastodon:
    """Server A (127.0.0.1) and server B (127.0.0.2, wants a token) sharing two statuses by uri."""

    def __init__(self) -> None:
        self.clock = FixedClock(NOW)
        self.a = FakeMastodon("127.0.0.1", self.clock)
        self.b = FakeMastodon("127.0.0.2", self.clock, token=TOKEN)
        self.stops = [serve_mastodon(self.a), serve_mastodon(self.b)]
        self.t1, self.t2, self.t3 = (
            toot(1, ALICE, ["devops"]),
            toot(2, BOB, ["DevOps", "sre"], "de"),
            toot(3, CAROL, ["devops", "kubernetes"], None),
        )
        self.a.receive(self.t1, self.t2, self.t3)
        self.b.receive(self.t3, self.t2)

    def client(self) -> MastodonClient:
        servers = [MastodonServer(self.a.base_url), MastodonServer(self.b.base_url, TOKEN)]
        return MastodonClient(
            servers, policy=POLICY, sleep=RecordedSleep(self.clock), clock=self.clock, monotonic=self.clock
        )

    def close(self) -> None:
        for stop in self.stops:
            stop()


class Bluesky:
    """A fake Bluesky with four posts by two authors (one post with no tracked tag but #kubernetes)."""

    def __init__(self) -> None:
        self.clock = FixedClock(NOW)
        self.fake = FakeBluesky(HANDLE, PASSWORD, self.clock)
        self.stop = serve_bluesky(self.fake)
        self.ana, self.ben = profile(1, 1500, "Ana"), profile(2, 30)
        self.fake.profiles = {p["did"]: p for p in (self.ana, self.ben)}
        self.fake.add(
            bsky_post(1, self.ana, NOW - 60, ["DevOps", "sre"], langs=["pt-BR", "en"]),
            bsky_post(2, self.ben, NOW - 100, ["devops"], extra_tags=["OAuth"]),
            bsky_post(3, self.ben, NOW - 3600, ["sre"], langs=["en"]),
        )

    def client(self) -> BlueskyClient:
        return BlueskyClient(
            self.fake.base_url,
            HANDLE,
            PASSWORD,
            policy=POLICY,
            sleep=RecordedSleep(self.clock),
            clock=self.clock,
            monotonic=self.clock,
        )


@pytest.fixture
def mastodon():
    network = Mastodon()
    yield network
    network.close()


@pytest.fixture
def bluesky():
    service = Bluesky()
    yield service
    service.stop()


def settings_for(db_path, *names: str) -> Settings:
    return settings_on(db_path, tags=TAGS, sources=names, max_posts_per_tag=1000)


def stored(conn, source: str) -> dict[str, tuple]:
    """{source key: (username, followers, lang, country, country_source, tags)} of one source's posts."""
    rows = conn.execute(
        "SELECT p.id, p.source_key, u.username, u.followers, p.lang, p.country, p.country_source FROM posts p"
        " LEFT JOIN users u ON u.source = p.source AND u.id = p.author_id WHERE p.source = ?",
        (source,),
    ).all()
    tags = {}
    for post_id, tag in conn.execute("SELECT post_id, tag FROM post_tags ORDER BY tag"):
        tags.setdefault(post_id, []).append(tag)
    return {row[1]: (*row[2:], tuple(tags.get(row[0], []))) for row in rows}


def run_figures(conn, run_id: int) -> dict[str, tuple]:
    """{source: (status, posts_read, posts_new)} of one run."""
    parts = dict(conn.execute("SELECT source, status FROM run_sources WHERE run_id = ?", (run_id,)).all())
    figures = conn.execute(
        "SELECT source, sum(posts_read), sum(posts_new) FROM run_tags WHERE run_id = ? GROUP BY source",
        (run_id,),
    ).all()
    return {source: (parts[source], int(read), int(new)) for source, read, new in figures}


def test_mastodon_run_1_stores_what_was_served_run_2_reads_nothing_run_3_only_the_new(
    db_path, conn, mastodon, caplog
):
    caplog.set_level(logging.DEBUG)
    collector = Collector(settings_for(db_path, "mastodon"), mastodon.client(), conn=conn)
    first = collector.run_once()
    assert (first.status, run_figures(conn, first.run_id)) == ("success", {"mastodon": ("success", 7, 3)})
    a, b = "127.0.0.1", "127.0.0.2"
    assert stored(conn, "mastodon") == {
        mastodon.t1.uri: (f"alice@{a}", 120, "en", "DE", "profile", ("devops",)),
        mastodon.t2.uri: (f"bob@{b}", 45, "de", None, "none", ("devops", "sre")),
        mastodon.t3.uri: ("carol@remote.example", 7, None, None, "none", ("devops",)),
    }
    second = collector.run_once()
    assert run_figures(conn, second.run_id) == {"mastodon": ("success", 0, 0)}
    t4 = toot(4, BOB, ["oauth"], "en")
    mastodon.a.receive(t4)
    mastodon.b.receive(t4)
    third = collector.run_once()
    assert run_figures(conn, third.run_id) == {"mastodon": ("success", 2, 1)}
    assert set(stored(conn, "mastodon")) == {mastodon.t1.uri, mastodon.t2.uri, mastodon.t3.uri, t4.uri}
    assert TOKEN not in caplog.text


def test_mastodon_summaries_equal_the_hand_computed_answer(db_path, conn, mastodon):
    Collector(settings_for(db_path, "mastodon"), mastodon.client(), conn=conn).run_once()
    only = ("mastodon",)
    assert [
        (u["username"], u["followers"], u["posts"], u["tags"])
        for u in aggregates.top_users(conn, None, 5, only)
    ] == [
        ("alice@127.0.0.1", 120, 1, ["devops"]),
        ("bob@127.0.0.2", 45, 1, ["devops", "sre"]),
        ("carol@remote.example", 7, 1, ["devops"]),
    ]
    hour = datetime.fromtimestamp(1_795_000_060, tz=UTC).hour  # the three toots are one minute apart
    assert [r["count"] for r in aggregates.posts_by_hour_of_day(conn, None, UTC_ZONE, only)] == [
        3 if h == hour else 0 for h in range(24)
    ]
    assert aggregates.breakdown(conn, TAGS, ("lang", "country"), only) == (
        [
            {"tag": "devops", "lang": None, "country": None, "count": 1},
            {"tag": "devops", "lang": "de", "country": None, "count": 1},
            {"tag": "devops", "lang": "en", "country": "DE", "count": 1},
            {"tag": "sre", "lang": "de", "country": None, "count": 1},
        ],
        {"devops": 3, "sre": 1, "oauth": 0},
    )
    assert aggregates.breakdown(conn, TAGS, ("lang",), ("x",)) == ([], {"devops": 0, "sre": 0, "oauth": 0})


def test_bluesky_run_1_stores_what_was_served_run_2_reads_nothing_run_3_only_the_new(
    db_path, conn, bluesky, caplog
):
    caplog.set_level(logging.DEBUG)
    collector = Collector(settings_for(db_path, "bluesky"), bluesky.client(), conn=conn)
    first = collector.run_once()
    assert first.status == "success"
    did = "did:plc:user{:04d}"
    key = "at://{}/app.bsky.feed.post/3k{:08d}"
    assert stored(conn, "bluesky") == {
        key.format(did.format(1), 1): ("user1.bsky.social", 1500, "pt", None, "none", ("devops", "sre")),
        key.format(did.format(2), 2): ("user2.bsky.social", 30, None, None, "none", ("devops", "oauth")),
        key.format(did.format(2), 3): ("user2.bsky.social", 30, "en", None, "none", ("sre",)),
    }
    assert run_figures(conn, first.run_id)["bluesky"][2] == 3
    second = collector.run_once()
    assert run_figures(conn, second.run_id) == {"bluesky": ("success", 0, 0)}
    bluesky.clock.advance(60)
    bluesky.fake.add(bsky_post(4, bluesky.ana, bluesky.clock() - 10, ["oauth"]))
    third = collector.run_once()
    assert run_figures(conn, third.run_id) == {"bluesky": ("success", 1, 1)}
    assert key.format(did.format(1), 4) in stored(conn, "bluesky")
    assert PASSWORD not in caplog.text
    top = aggregates.top_users(conn, "sre", 5, ("bluesky",))
    assert [(u["username"], u["followers"], u["posts"]) for u in top] == [
        ("user1.bsky.social", 1500, 1),
        ("user2.bsky.social", 30, 1),
    ]


def test_bluesky_summaries_equal_the_hand_computed_answer(db_path, conn, bluesky):
    Collector(settings_for(db_path, "bluesky"), bluesky.client(), conn=conn).run_once()
    only = ("bluesky",)
    top = aggregates.top_users(conn, None, 5, only)
    assert [(u["username"], u["followers"], u["posts"], u["tags"]) for u in top] == [
        ("user1.bsky.social", 1500, 1, ["devops", "sre"]),
        ("user2.bsky.social", 30, 2, ["devops", "oauth", "sre"]),
    ]
    hours = [datetime.fromtimestamp(NOW - ago, tz=UTC).hour for ago in (60, 100, 3600)]
    assert [r["count"] for r in aggregates.posts_by_hour_of_day(conn, None, UTC_ZONE, only)] == [
        hours.count(h) for h in range(24)
    ]
    assert aggregates.breakdown(conn, TAGS, ("lang",), only) == (
        [
            {"tag": "devops", "lang": None, "count": 1},
            {"tag": "devops", "lang": "pt", "count": 1},
            {"tag": "oauth", "lang": None, "count": 1},
            {"tag": "sre", "lang": "en", "count": 1},
            {"tag": "sre", "lang": "pt", "count": 1},
        ],
        {"devops": 2, "sre": 2, "oauth": 1},
    )


def x_api() -> FakeXApi:
    users = [make_user("u1", "xavier", 900, "Paris")]
    posts = [make_post(i, ["devops"], "u1", "fr") for i in (101, 102)]
    return FakeXApi(posts, users)


def run_all_sources(db_path, mastodon: Mastodon, bluesky: Bluesky) -> RunResult:
    """One run of x (a fake over real HTTP), both fake feed networks and the sample."""
    x_url, stop = serve_fake_x(x_api())
    try:
        return all_sources(db_path, mastodon, bluesky, x_url).run_once()
    finally:
        stop()


def all_sources(db_path, mastodon: Mastodon, bluesky: Bluesky, x_url: str) -> Collector:
    settings = settings_for(db_path, "x", "mastodon", "bluesky", "sample")
    clock = FixedClock(NOW)
    clients = {
        "x": XClient(x_url, "t", policy=POLICY, sleep=RecordedSleep(clock), clock=clock, monotonic=clock),
        "mastodon": mastodon.client(),
        "bluesky": bluesky.client(),
        "sample": sources.build_client("sample", settings, clock, sleep=RecordedSleep(clock)),
    }
    return Collector(settings, clients)


@pytest.fixture
def json_lines():
    """The JSON lines tagwatch's loggers write meanwhile (as configure_logging formats them)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EcsJsonFormatter())
    handler.addFilter(SourceFilter())
    logger = logging.getLogger("tagwatch")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_all_sources_in_one_run_each_with_its_own_figures(db_path, conn, mastodon, bluesky, json_lines):
    result = run_all_sources(db_path, mastodon, bluesky)
    assert result.status == "success"
    figures = run_figures(conn, result.run_id)
    sample_new = conn.execute("SELECT count(*) FROM posts WHERE source = 'sample'").scalar()
    assert sample_new > 0
    assert {name: f for name, f in figures.items() if name != "sample"} == {
        "x": ("success", 2, 2),
        "mastodon": ("success", 7, 3),
        "bluesky": ("success", 5, 3),  # devops: posts 1, 2; sre: 1, 3; oauth: 2
    }
    assert figures["sample"] == ("success", figures["sample"][1], sample_new)
    counts = dict(conn.execute("SELECT source, count(*) FROM posts GROUP BY source").all())
    assert counts == {"x": 2, "mastodon": 3, "bluesky": 3, "sample": sample_new}
    every = aggregates.breakdown(conn, ("devops",), ("lang",))[1]["devops"]
    assert every == sum(aggregates.breakdown(conn, ("devops",), ("lang",), (s,))[1]["devops"] for s in counts)
    lines = [line for line in json_lines() if line["event.dataset"] == "tagwatch.collector"]
    stored = {line["tagwatch.source"] for line in lines if line.get("event.action") == "page_stored"}
    assert stored == {"x", "mastodon", "bluesky", "sample"}
    assert all(line.get("tagwatch.source") for line in lines), [
        line for line in lines if not line.get("tagwatch.source")
    ]
    assert {line["tagwatch.source"] for line in lines if line["event.action"] == "run_finished"} == {
        "x,mastodon,bluesky,sample"
    }
    text = "\n".join(json.dumps(line) for line in json_lines())
    assert TOKEN not in text and PASSWORD not in text


def test_one_source_down_makes_the_run_partial_with_the_others_stored(db_path, conn, mastodon, bluesky):
    for server in (mastodon.a, mastodon.b):
        server.fault = lambda request: Scripted(503, {"error": "down for maintenance"})
    result = run_all_sources(db_path, mastodon, bluesky)
    assert result.status == "partial"
    figures = run_figures(conn, result.run_id)
    assert figures["mastodon"][0] == "failed" and figures["mastodon"][2] == 0
    assert {name: f[0] for name, f in figures.items()} == {
        "x": "success",
        "mastodon": "failed",
        "bluesky": "success",
        "sample": "success",
    }
    counts = dict(conn.execute("SELECT source, count(*) FROM posts GROUP BY source").all())
    assert counts["x"] == 2 and counts["bluesky"] == 3 and "mastodon" not in counts
    row = conn.execute("SELECT status FROM runs WHERE id = ?", (result.run_id,)).one()
    assert row.status == "partial"


def test_each_source_counts_its_own_outcome_and_stored_posts(db_path, mastodon, bluesky):
    for server in (mastodon.a, mastodon.b):
        server.fault = lambda request: Scripted(503, {"error": "down for maintenance"})

    def runs(source: str, outcome: str) -> float:
        labels = {"source": source, "outcome": outcome}
        return REGISTRY.get_sample_value("tagwatch_source_runs_total", labels) or 0.0

    outcomes = [("x", "success"), ("mastodon", "failed"), ("bluesky", "success"), ("sample", "success")]
    before = {pair: runs(*pair) for pair in outcomes}
    partial = REGISTRY.get_sample_value("tagwatch_collection_runs_total", {"outcome": "partial"}) or 0.0
    assert run_all_sources(db_path, mastodon, bluesky).status == "partial"
    assert {pair: runs(*pair) - before[pair] for pair in outcomes} == dict.fromkeys(outcomes, 1.0)
    assert REGISTRY.get_sample_value("tagwatch_collection_runs_total", {"outcome": "partial"}) == partial + 1
    stored = {
        source: REGISTRY.get_sample_value("tagwatch_stored_posts", {"tag": "devops", "source": source})
        for source in ("x", "mastodon", "bluesky")
    }
    assert stored == {"x": 2.0, "mastodon": 0.0, "bluesky": 2.0}


def test_a_stop_interrupts_every_source_promptly_while_one_waits(db_path, conn, mastodon, bluesky):
    """Mastodon waits out a 429 (reset in 200 s) while the others collect; a stop ends that wait at once
    and the run is `interrupted`, with what the others stored kept."""
    stop = threading.Event()
    for server in (mastodon.a, mastodon.b):
        server.fault = lambda request, server=server: rate_limited(server, reset_in=200)
    settings = settings_for(db_path, "mastodon", "bluesky")
    servers = [MastodonServer(mastodon.a.base_url), MastodonServer(mastodon.b.base_url, TOKEN)]
    waiting = MastodonClient(
        servers, policy=POLICY, sleep=stop.wait, clock=mastodon.clock, monotonic=time.monotonic
    )
    collector = Collector(
        settings, {"mastodon": waiting, "bluesky": bluesky.client()}, should_stop=stop.is_set
    )
    results = []
    worker = threading.Thread(target=lambda: results.append(collector.run_once()))
    worker.start()
    deadline = time.monotonic() + 10
    while (
        not conn.execute("SELECT count(*) FROM posts WHERE source = 'bluesky'").scalar()
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    time.sleep(0.3)  # Mastodon is in its wait by now
    stopped = time.monotonic()
    stop.set()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - stopped < 2
    [result] = results
    assert result.status == "interrupted"
    parts = {part.source: part.status for part in result.sources}
    assert parts["mastodon"] == "interrupted"
    assert conn.execute("SELECT count(*) FROM posts WHERE source = 'bluesky'").scalar() > 0
    assert conn.execute("SELECT status FROM runs WHERE id = ?", (result.run_id,)).scalar() == "interrupted"
