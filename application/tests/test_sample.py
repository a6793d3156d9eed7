"""The built-in sample source: deterministic, realistic, and speaking the X API v2 contract."""

from __future__ import annotations

from collections import Counter

from fakes import FixedClock, RecordedSleep

from tagwatch import store
from tagwatch.collector import Collector
from tagwatch.config import DEFAULT_TAGS, Settings
from tagwatch.sources.sample import SAMPLE_BASE_URL, SampleWorld, sample_session
from tagwatch.sources.x import XClient

NOW = 1_795_000_000.0


def sample_client(clock) -> XClient:
    return XClient(
        SAMPLE_BASE_URL,
        "sample",
        source="sample",
        session=sample_session(SampleWorld(), clock),
        clock=clock,
        sleep=RecordedSleep(),
    )


def week_of_posts(world: SampleWorld) -> list[dict]:
    first = int(NOW - 7 * 86400) // 600
    return [p for slot in range(first, int(NOW) // 600) for p in world.slot_posts(slot)]


def test_sample_world_is_deterministic():
    assert week_of_posts(SampleWorld())[:50] == week_of_posts(SampleWorld())[:50]


def test_sample_world_is_realistic():
    world = SampleWorld()
    posts = week_of_posts(world)
    langs = Counter(p["lang"] for p in posts)
    geo = [p for p in posts if "geo" in p]
    multi = [
        p for p in posts if len({h["tag"].lower() for h in p["entities"]["hashtags"]} & set(DEFAULT_TAGS)) > 1
    ]
    followers = sorted(world.followers(u, NOW) for u in world.users)
    assert 1000 <= len(posts) <= 4000  # about a week of history
    assert len(langs) >= 14 and "und" in langs
    assert 0.015 <= len(geo) / len(posts) <= 0.05
    assert len({p["geo"]["place_id"] for p in geo}) >= 15
    assert 0.1 <= len(multi) / len(posts) <= 0.4
    assert followers[-1] > 100 * followers[len(followers) // 2]  # heavy tail
    assert len({u["location"] for u in world.users}) >= 60
    mixed_case = [h["tag"] for p in posts for h in p["entities"]["hashtags"] if h["tag"] != h["tag"].lower()]
    assert mixed_case


def test_sample_world_has_a_day_night_rhythm():
    hours = Counter(int(p["created_at"][11:13]) for p in week_of_posts(SampleWorld()))
    assert hours[14] > 2 * hours[2]


def test_sample_source_first_run_gets_history_and_new_posts_appear_later(tmp_path):
    clock = FixedClock(NOW)
    path = tmp_path / "s.db"
    store.init_db(path)
    settings = Settings(db_path=str(path), sources=("sample",), max_posts_per_tag=1000)
    first = Collector(settings, sample_client(clock)).run_once()
    conn = store.connect(path)
    low, high = conn.execute("SELECT min(created_ts), max(created_ts) FROM posts").fetchone()
    assert high - low > 6.5 * 86400  # a week of history
    clock.advance(3 * 3600)
    second = Collector(settings, sample_client(clock)).run_once()
    third = Collector(settings, sample_client(clock)).run_once()
    assert sum(t.posts_new for t in first.tags) > 1000
    assert 5 < sum(t.posts_new for t in second.tags) < 200
    assert sum(t.posts_read for t in third.tags) == 0  # since_id honoured: nothing new, nothing read


def test_sample_seed_pages_make_exactly_the_requested_posts_over_a_week():
    pages = list(SampleWorld().seed_pages(12_345, NOW, page_size=1000))
    posts = [p for page in pages for p in page["data"]]
    assert len(posts) == 12_345 == len({p["id"] for p in posts})
    times = sorted(p["created_at"] for p in posts)
    assert times[0] < "2026-11-11T12" and times[-1] > "2026-11-18T06"
