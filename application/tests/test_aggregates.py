"""The maintained aggregates equal plain GROUP BYs over the raw rows, and the hourly summaries equal a
per-post computation with zoneinfo, on random posts stored in random (overlapping) pages from two
sources (the same post id from both is two posts), for every source filter."""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from backends import fresh_store
from fakes import make_post, make_user
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tagwatch import aggregates, store
from tagwatch.geo import resolve_country
from tagwatch.parse import parse_page
from tagwatch.timezones import offset_at, offset_segments

TAGS = ("devops", "sre", "oauth")
SOURCES = ("x", "sample")
FILTERS = (None, ("x",), ("sample",), ("sample", "x"))
HASHTAGS = ("devops", "DevOps", "sre", "SRE", "oauth", "kubernetes")  # mixed case and an untracked one
LANGS = ("en", "de", "pt", None)
PLACES = {"place-us": "us", "place-br": "BR"}
USERS = {
    f"u{i}": (f"user{i}", location) for i, location in enumerate(("Berlin", "", "São Paulo", "Kathmandu"))
}
ZONES = ("UTC", "America/Sao_Paulo", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York")
DAY = 86400
# ten-day windows around New York's 2026 DST changes (March 8 spring forward, November 1 fall back)
WINDOWS = (
    int(datetime(2026, 3, 3, tzinfo=UTC).timestamp()),
    int(datetime(2026, 10, 27, tzinfo=UTC).timestamp()),
)
NY_CHANGES = (
    int(datetime(2026, 3, 8, 7, tzinfo=UTC).timestamp()),
    int(datetime(2026, 11, 1, 6, tzinfo=UTC).timestamp()),
)


@dataclass(frozen=True)
class Post:
    id: int
    ts: int
    hashtags: tuple[str, ...]
    lang: str | None
    place: str | None
    author: str | None

    def payload(self) -> dict:
        created_at = datetime.fromtimestamp(self.ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        extra = {"geo": {"place_id": self.place}} if self.place else {}
        raw = make_post(self.id, list(self.hashtags), self.author, self.lang, created_at=created_at, **extra)
        if self.author is None:
            del raw["author_id"]
        return raw


@dataclass(frozen=True)
class Page:
    posts: tuple[Post, ...]
    followers: dict[str, int]  # users in includes → their follower count now
    query_tag: str | None
    source: str = "x"

    def payload(self) -> dict:
        users = [make_user(uid, USERS[uid][0], n, USERS[uid][1]) for uid, n in self.followers.items()]
        places = [{"id": pid, "country_code": code, "full_name": pid} for pid, code in PLACES.items()]
        return {"data": [p.payload() for p in self.posts], "includes": {"users": users, "places": places}}


@st.composite
def scenarios(draw) -> list[Page]:
    """Random posts over ten days, stored in random pages that overlap (re-stored posts are duplicates)."""
    window = draw(st.sampled_from(WINDOWS))
    ids = draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=30, unique=True))
    posts = [
        Post(
            id=post_id,
            ts=window + draw(st.integers(0, 10 * DAY - 1)),
            hashtags=tuple(draw(st.lists(st.sampled_from(HASHTAGS), max_size=3))),
            lang=draw(st.sampled_from(LANGS)),
            place=draw(st.sampled_from((None, None, *PLACES))),
            author=draw(st.sampled_from((None, *USERS))),
        )
        for post_id in ids
    ]
    pages = []
    for _ in range(draw(st.integers(1, 5))):
        chosen = draw(st.lists(st.sampled_from(posts), min_size=1, max_size=len(posts)))
        authors = sorted(
            {p.author for p in chosen if p.author} | set(draw(st.sets(st.sampled_from(list(USERS)))))
        )
        shown = [uid for uid in authors if draw(st.booleans()) or uid in {"u0", "u1"}]  # some authors unknown
        followers = {uid: draw(st.integers(0, 5000)) for uid in shown}
        query_tag = draw(st.sampled_from((None, *TAGS)))
        pages.append(Page(tuple(chosen), followers, query_tag, draw(st.sampled_from(SOURCES))))
    return pages


@dataclass
class Model:
    """What the database should hold, computed in Python: posts as first stored, latest followers."""

    posts: dict[tuple[str, int], tuple[Post, frozenset[str]]]  # by identity (source, id)
    followers: dict[tuple[str, str], int]  # by (source, user id)

    @classmethod
    def of(cls, pages: list[Page]) -> Model:
        posts: dict[tuple[str, int], tuple[Post, frozenset[str]]] = {}
        followers: dict[tuple[str, str], int] = {}
        for page in pages:
            followers.update({(page.source, uid): n for uid, n in page.followers.items()})
            for post in page.posts:
                tags = {h.lower() for h in post.hashtags if h.lower() in TAGS} | {page.query_tag} - {None}
                posts.setdefault((page.source, post.id), (post, frozenset(tags)))
        return cls(posts, followers, frozenset(followers))

    seen_authors: frozenset[tuple[str, str]] = frozenset()

    def countries(self) -> dict[tuple[str, int], str | None]:
        """Each post's country: its place's, else its author's profile country once that author was in
        any page's includes of its source (a post stored while its author was missing gets it when the
        author shows)."""
        result = {}
        for (source, post_id), (post, _) in self.posts.items():
            if post.place:
                result[(source, post_id)] = PLACES[post.place].upper()
            elif (source, post.author) in self.seen_authors:
                result[(source, post_id)] = resolve_country(USERS[post.author][1])
            else:
                result[(source, post_id)] = None
        return result

    def scope(self, tag: str | None, sources: tuple[str, ...] | None = None) -> list[tuple[str, Post]]:
        return [
            (source, post)
            for (source, _), (post, tags) in self.posts.items()
            if (tag is None or tag in tags) and (sources is None or source in sources)
        ]


def store_pages(conn: sqlite3.Connection, pages: list[Page]) -> None:
    for page in pages:
        parsed = parse_page(page.payload(), TAGS, page.query_tag, page.source)
        tag = page.query_tag or "devops"
        store.store_page(
            conn, parsed, tag=tag, cursor=store.TagCursor(), run_id=None, posts_read=1, source=page.source
        )


def rows(conn: sqlite3.Connection, sql: str) -> list[tuple]:
    return sorted(tuple(row) for row in conn.execute(sql))


EQUIVALENT_SQL = {
    "SELECT source, tag, bucket, posts FROM agg_quarter": """
        SELECT source, '', created_ts / 900, count(*) FROM posts GROUP BY source, created_ts / 900
        UNION ALL SELECT p.source, pt.tag, p.created_ts / 900, count(*) FROM posts p
            JOIN post_tags pt ON pt.post_id = p.id GROUP BY p.source, pt.tag, p.created_ts / 900""",
    "SELECT source, tag, lang, country, posts FROM agg_breakdown": """
        SELECT p.source, pt.tag, coalesce(p.lang, ''), coalesce(p.country, ''), count(*) FROM posts p
            JOIN post_tags pt ON pt.post_id = p.id GROUP BY 1, 2, 3, 4""",
    "SELECT source, user_id, tag, posts, followers, username FROM agg_user": """
        SELECT p.source, p.author_id, '', count(*), max(u.followers), max(u.username) FROM posts p
            JOIN users u ON u.source = p.source AND u.id = p.author_id GROUP BY p.source, p.author_id
        UNION ALL SELECT p.source, p.author_id, pt.tag, count(*), max(u.followers), max(u.username)
            FROM posts p JOIN post_tags pt ON pt.post_id = p.id
            JOIN users u ON u.source = p.source AND u.id = p.author_id
            GROUP BY p.source, p.author_id, pt.tag""",
    "SELECT source, tag, posts, newest_ts FROM agg_tag": """
        SELECT source, '', count(*), max(created_ts) FROM posts GROUP BY source
        UNION ALL SELECT p.source, pt.tag, count(*), max(p.created_ts) FROM posts p
            JOIN post_tags pt ON pt.post_id = p.id GROUP BY p.source, pt.tag""",
}


def hour_start(ts: int, zone: ZoneInfo) -> datetime:
    """The start of the local hour holding `ts` (fold kept: the repeated 01:00 stays distinct)."""
    return datetime.fromtimestamp(ts, tz=zone).replace(minute=0, second=0, microsecond=0)


def rfc3339_label(moment: datetime) -> str:
    """The API's hour label: an offset, or Z for UTC (RFC 3339)."""
    return moment.isoformat().replace("+00:00", "Z")


def brute_by_hour(times: list[int], zone: ZoneInfo, since: int | None, until: int | None) -> list[dict]:
    """Per-post local hours, zero-filled between the first and last hour (or since/until)."""
    inside = [t for t in times if (since is None or t >= since) and (until is None or t < until)]
    if not times and (since is None or until is None):
        return []
    low = since if since is not None else min(times)
    high = until - 1 if until is not None else max(times)
    counts = Counter(rfc3339_label(hour_start(t, zone)) for t in inside)
    series, moment = [], int(hour_start(low, zone).timestamp())
    while moment <= high:  # in these zones every local hour is 3600 real seconds long
        label = rfc3339_label(datetime.fromtimestamp(moment, tz=zone))
        series.append({"hour": label, "count": counts[label]})
        moment += 3600
    return series


def brute_top_users(model: Model, conn: sqlite3.Connection, tag: str | None, sources=None) -> list[dict]:
    known = set(conn.execute("SELECT source, id FROM users WHERE username IS NOT NULL").all())
    posts = Counter((s, p.author) for s, p in model.scope(tag, sources) if (s, p.author) in known)
    tags = {
        (source, uid): sorted(
            {t for (s, _), (post, ts) in model.posts.items() if (s, post.author) == (source, uid) for t in ts}
        )
        for source, uid in posts
    }
    users = [
        {
            "username": USERS[uid][0],
            "name": USERS[uid][0].title(),
            "source": source,
            "followers": model.followers[(source, uid)],
            "posts": n,
            "tags": tags[(source, uid)],
        }
        for (source, uid), n in posts.items()
    ]
    return sorted(users, key=lambda u: (-u["followers"], u["username"], u["source"]))


def brute_breakdown(conn: sqlite3.Connection, by: tuple[str, ...], sources=None) -> list[dict]:
    country = dict(conn.execute("SELECT id, country FROM posts").all())
    source = dict(conn.execute("SELECT id, source FROM posts").all())
    counts: Counter[tuple] = Counter()
    for post_id, tag in conn.execute("SELECT post_id, tag FROM post_tags"):
        if sources is not None and source[post_id] not in sources:
            continue
        lang = conn.execute("SELECT lang FROM posts WHERE id = ?", (post_id,)).fetchone()[0]
        values = {"lang": lang, "country": country[post_id]}
        counts[(tag, *(values[d] for d in by))] += 1
    ordered = sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1], *(v or "" for v in kv[0][1:])))
    return [{"tag": key[0], **dict(zip(by, key[1:], strict=True)), "count": n} for key, n in ordered]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],  # backend: a name
)
@given(pages=scenarios(), data=st.data())
def test_aggregates_equal_group_by_and_per_post_hours(backend, request, pages, data):
    with fresh_store(request) as url:
        conn = store.connect(url)
        try:
            store_pages(conn, pages)
            check_database(conn, Model.of(pages), data)
        finally:
            conn.close()


def check_database(conn: sqlite3.Connection, model: Model, data: st.DataObject) -> None:
    stored = {
        (s, int(key)): post_id for s, key, post_id in conn.execute("SELECT source, source_key, id FROM posts")
    }
    assert set(stored) == set(model.posts)
    country = dict(conn.execute("SELECT id, country FROM posts").all())
    assert {identity: country[post_id] for identity, post_id in stored.items()} == model.countries()
    for identity, (_, tags) in model.posts.items():
        found = conn.execute("SELECT tag FROM post_tags WHERE post_id = ?", (stored[identity],)).scalars()
        assert set(found) == tags
    followers = conn.execute("SELECT source, id, followers FROM users WHERE username IS NOT NULL").all()
    assert {(s, uid): n for s, uid, n in followers} == model.followers
    for aggregate_sql, raw_sql in EQUIVALENT_SQL.items():
        assert rows(conn, aggregate_sql) == rows(conn, raw_sql), aggregate_sql
    first = min(p.ts for p, _ in model.posts.values())
    since = data.draw(st.integers(first // 900 - 96, first // 900 + 480), label="since") * 900
    until = since + data.draw(st.integers(1, 6 * 96), label="quarters") * 900
    sources = data.draw(st.sampled_from(FILTERS), label="sources")
    for tag in (None, *TAGS):
        times = [p.ts for _, p in model.scope(tag, sources)]
        for each in FILTERS:
            assert aggregates.top_users(conn, tag, 100, each) == brute_top_users(model, conn, tag, each)
        for name in ZONES:
            zone = ZoneInfo(name)
            assert aggregates.posts_by_hour(conn, tag, zone, None, None, sources) == brute_by_hour(
                times, zone, None, None
            )
            for bounds in ((since, until), (since, None), (None, until)):
                assert aggregates.posts_by_hour(conn, tag, zone, *bounds, sources) == brute_by_hour(
                    times, zone, *bounds
                )
            by_hour = Counter(datetime.fromtimestamp(t, tz=zone).hour for t in times)
            expected = [{"hour": h, "count": by_hour[h]} for h in range(24)]
            assert aggregates.posts_by_hour_of_day(conn, tag, zone, sources) == expected
    for by in (("lang", "country"), ("lang",), ("country",)):
        for each in FILTERS:
            assert aggregates.breakdown(conn, TAGS, by, each)[0] == brute_breakdown(conn, by, each)


@pytest.mark.parametrize(
    ("day", "rows", "one_am"),
    [
        (datetime(2026, 11, 1), 25, ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"]),
        (datetime(2026, 3, 8), 23, ["2026-03-08T01:00:00-05:00"]),
    ],
)
def test_new_york_dst_days(conn, day, rows, one_am):
    zone = ZoneInfo("America/New_York")
    since = int(day.replace(tzinfo=zone).timestamp())
    until = int((day + timedelta(days=1)).replace(tzinfo=zone).timestamp())
    page = Page(
        tuple(Post(i + 1, since + 1800 + 3600 * i, ("devops",), "en", None, None) for i in range(rows)),
        {},
        None,
    )
    store_pages(conn, [page])
    series = aggregates.posts_by_hour(conn, "devops", zone, since, until)
    assert len(series) == rows and [p["count"] for p in series] == [1] * rows
    assert [p["hour"] for p in series if p["hour"][11:13] == "01"] == one_am
    assert series == brute_by_hour([p.ts for p in page.posts], zone, since, until)
    assert sum(p["count"] for p in aggregates.posts_by_hour_of_day(conn, "devops", zone)) == rows


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    start=st.integers(WINDOWS[0] // 900 - 1000, WINDOWS[1] // 900 + 2000).map(lambda q: q * 900),
    length=st.integers(1, 12 * DAY),
)
@example(zone="America/New_York", start=NY_CHANGES[0] - DAY, length=2 * DAY)  # a change exactly a day in
@example(zone="America/New_York", start=NY_CHANGES[1] - 3 * DAY, length=5 * DAY)
@example(zone="America/New_York", start=NY_CHANGES[1], length=DAY)  # starting on the change
def test_offset_segments_match_zoneinfo(zone, start, length):
    tz = ZoneInfo(zone)
    segments = offset_segments(tz, start, start + length)
    assert segments[0][0] == start and segments[-1][1] == start + length
    for (_, end, offset), (next_start, _, next_offset) in itertools.pairwise(segments):
        assert end == next_start and offset != next_offset
    for seg_start, seg_end, offset in segments:
        for moment in range(seg_start, seg_end, 900):
            assert offset_at(tz, moment) == offset, (seg_start, seg_end, moment)
