"""The summaries' response cache and the read snapshot: new commits are seen, a response never mixes two
commits, the cache is keyed by the validated parameters and bounded in bytes."""

from __future__ import annotations

import dataset
import pytest
from fakes import make_post, make_user

from tagwatch import aggregates, store
from tagwatch.api import cache, params
from tagwatch.config import ConfigError, Settings
from tagwatch.parse import parse_page

CACHED = [
    "/api/v1/posts?limit=3",
    "/api/v1/users/top",
    "/api/v1/posts/by-hour",
    "/api/v1/posts/by-hour-of-day",
    "/api/v1/tags/breakdown",
    "/api/v1/tags",
]


def write_post(conn, post_id: int, tag: str = "devops", source: str = "x") -> None:
    """Commit one more post (and its author) of `source` from another connection, as the collector does."""
    page = {
        "data": [make_post(post_id, [tag], author="u9", created_at="2026-11-18T09:20:00.000Z")],
        "includes": {"users": [make_user("u9", "zed", 5000)]},
    }
    with store.transaction(conn):
        store.write_rows(conn, parse_page(page, dataset.DEFAULT_TAGS, tag, source))


def response_cache(app) -> cache.ResponseCache:
    return app.extensions["tagwatch.cache"]


@pytest.mark.parametrize("url", CACHED)
def test_cached_summary_shows_a_commit_made_between_two_gets(client, conn, url):
    dataset.seed(conn)
    first = client.get(url).get_json()
    assert client.get(url).get_json() == first  # served from the cache
    write_post(conn, 900)
    second = client.get(url).get_json()
    assert second["data"] != first["data"]
    assert second["meta"]["generated_at"] >= first["meta"]["generated_at"]


@pytest.mark.parametrize("url", [u for u in CACHED if u != "/api/v1/tags"])
def test_a_warm_cache_answers_each_source_filter_with_its_own_data(client, conn, url):
    write_post(conn, 900, source="x")
    write_post(conn, 901, source="sample")
    write_post(conn, 902, source="sample")
    join = "&" if "?" in url else "?"
    answers = {}
    for source in ("x", "sample", "x", "sample"):  # the second round is served warm
        body = client.get(f"{url}{join}source={source}").get_json()
        assert answers.setdefault(source, body["data"]) == body["data"]
    assert answers["x"] != answers["sample"]


def test_cached_summary_is_exactly_the_new_data(client, conn):
    dataset.seed(conn)
    assert client.get("/api/v1/users/top").get_json()["data"][0]["username"] == "dave"
    write_post(conn, 900)
    top = client.get("/api/v1/users/top").get_json()["data"][0]
    assert (top["username"], top["followers"], top["posts"]) == ("zed", 5000, 1)


def test_cache_hit_does_not_read_the_data_again(app, client, conn, monkeypatch):
    dataset.seed(conn)
    calls = []
    original = aggregates.tag_overview
    monkeypatch.setattr(aggregates, "tag_overview", lambda *a: calls.append(1) or original(*a))
    for _ in range(3):
        client.get("/api/v1/tags")
    assert len(calls) == 1
    write_post(conn, 900)
    client.get("/api/v1/tags")
    assert len(calls) == 2


def test_one_snapshot_per_response(client, conn, monkeypatch):
    """A commit landing between two SELECTs of one response is invisible to the second one."""
    dataset.seed(conn)

    def overview_with_a_commit_in_the_middle(reader, tags, sources):
        before = reader.execute("SELECT sum(posts) FROM agg_tag").fetchone()[0]
        write_post(conn, 901)
        after = reader.execute("SELECT sum(posts) FROM agg_tag").fetchone()[0]
        return [{"before": before, "after": after}]

    monkeypatch.setattr(aggregates, "tag_overview", overview_with_a_commit_in_the_middle)
    [row] = client.get("/api/v1/tags").get_json()["data"]
    assert row["before"] == row["after"]


@pytest.mark.parametrize(
    "spellings",
    [
        ["/api/v1/users/top", "/api/v1/users/top?limit=5", "/api/v1/users/top?junk=1&limit=5&tag="],
        [
            "/api/v1/users/top?tag=devops",
            "/api/v1/users/top?tag=%23DevOps",
            "/api/v1/users/top?tag=DEVOPS&x=",
        ],
        [
            "/api/v1/tags/breakdown",
            "/api/v1/tags/breakdown?by=country,lang",
            "/api/v1/tags/breakdown?by=LANG,country",
        ],
        [
            "/api/v1/posts/by-hour?since=2026-11-18T10:00:00Z",
            "/api/v1/posts/by-hour?since=2026-11-18T10:00:00%2B00:00&tz=UTC",
            "/api/v1/posts/by-hour?since=2026-11-18T15:30%2B05:30&z=1",
        ],
        ["/api/v1/tags", "/api/v1/tags?a=1", "/api/v1/tags?b=2&c=3"],
    ],
)
def test_cache_key_is_the_normalised_parameters(app, client, conn, spellings):
    dataset.seed(conn)
    bodies = [client.get(url).get_json() for url in spellings]
    assert len(response_cache(app)) == 1
    assert all(body == bodies[0] for body in bodies)


def test_a_repeated_query_string_is_answered_without_parsing_it_again(client, conn, monkeypatch):
    dataset.seed(conn)
    parsed = []
    original = params.Tag._deserialize
    monkeypatch.setattr(params.Tag, "_deserialize", lambda *a, **k: parsed.append(1) or original(*a, **k))
    first = client.get("/api/v1/users/top?tag=devops").get_json()
    assert client.get("/api/v1/users/top?tag=devops").get_json() == first
    assert len(parsed) == 1
    write_post(conn, 900)  # a commit: the view runs again and parses the parameters
    assert client.get("/api/v1/users/top?tag=devops").get_json()["data"] != first["data"]
    assert len(parsed) == 2


def test_the_same_query_string_on_two_endpoints_gets_each_its_own_answer(app, client, conn):
    dataset.seed(conn)
    urls = ["/api/v1/users/top?tag=devops", "/api/v1/posts/by-hour?tag=devops", "/api/v1/tags?tag=devops"]
    cold = [client.get(url).get_json()["data"] for url in urls]
    warm = [client.get(url).get_json()["data"] for url in urls]
    assert warm == cold
    assert len(response_cache(app)) == 3


def test_a_bad_query_string_is_never_remembered(client, conn):
    dataset.seed(conn)
    for _ in range(2):
        answer = client.get("/api/v1/users/top?tag=nope")
        assert (answer.status_code, answer.mimetype) == (400, "application/problem+json")


def test_remembered_query_strings_are_bounded(app, client, conn, monkeypatch):
    dataset.seed(conn)
    monkeypatch.setattr(cache, "MAX_ALIASES", 5)
    for n in range(20):
        assert client.get(f"/api/v1/tags?junk={n}").status_code == 200
    assert len(response_cache(app)._aliases) == 5
    long_junk = "x" * (cache.MAX_ALIASED_QUERY + 1)
    client.get(f"/api/v1/tags?junk={long_junk}")
    assert (b"junk=" + long_junk.encode()) not in {raw for _, raw in response_cache(app)._aliases}


def test_junk_parameters_do_not_grow_the_cache(app, client, conn):
    dataset.seed(conn)
    for n in range(200):
        assert client.get(f"/api/v1/posts/by-hour?since=2006-01-01&junk{n}={n}").status_code == 200
    assert len(response_cache(app)) == 1


def test_cache_is_bounded_in_bytes(app, client, conn):
    dataset.seed(conn)
    cache.register(app, max_bytes=5_000)
    sizes = []
    for day in range(1, 29):
        client.get(f"/api/v1/posts/by-hour?since=2026-01-{day:02d}&until=2026-01-{day:02d}T12:00Z")
        client.get(f"/api/v1/posts/by-hour?since=2025-02-{day:02d}")  # 366 days: ~300 KB, too big
        sizes.append(response_cache(app).size)
    assert max(sizes) <= 5_000
    assert 0 < len(response_cache(app)) < 28  # the oldest were evicted


def test_cache_evicts_least_recently_used():
    lru = cache.ResponseCache(max_bytes=10)
    lru.put("a", 1, b"aaaa")
    lru.put("b", 1, b"bbbb")
    assert lru.get("a", 1) == b"aaaa"  # a is now the most recent
    lru.put("c", 1, b"cccc")
    assert (lru.get("a", 1), lru.get("b", 1), lru.get("c", 1)) == (b"aaaa", None, b"cccc")
    assert lru.size == 8
    assert lru.get("a", 2) is None  # another database version


def test_cache_off_still_answers(app, client, conn):
    dataset.seed(conn)
    cache.register(app, max_bytes=0)
    assert client.get("/api/v1/tags").status_code == 200
    assert len(response_cache(app)) == 0


@pytest.mark.parametrize(("raw", "expected"), [("", 32 * 2**20), ("0", 0), (" 1048576 ", 1048576)])
def test_cache_size_from_env(raw, expected):
    assert Settings.from_env({"TAGWATCH_API_CACHE_BYTES": raw}).api_cache_bytes == expected


@pytest.mark.parametrize("raw", ["-1", "lots", "1e6", str(2**41)])
def test_cache_size_from_env_rejects_bad_values(raw):
    with pytest.raises(ConfigError, match="TAGWATCH_API_CACHE_BYTES"):
        Settings.from_env({"TAGWATCH_API_CACHE_BYTES": raw})
