"""build_clients: one client per configured source, each reading from the server its settings name.

Every source's fake runs over real HTTP on 127.0.0.1; each client fetches one page from its own fake.
"""

from __future__ import annotations

import pytest
from fakes import NOW, FakeXApi, FixedClock, RecordedSleep, make_post, make_user, serve_fake_x
from fakes_bluesky import FakeBluesky, post, profile, serve_bluesky
from fakes_mastodon import Author, FakeMastodon, serve_mastodon, toot

from tagwatch.config import ConfigError, Settings
from tagwatch.parse import parse_page as parse_x
from tagwatch.parse_bluesky import parse_page as parse_bluesky
from tagwatch.parse_mastodon import parse_page as parse_mastodon
from tagwatch.sources import build_client, build_clients
from tagwatch.sources.bluesky import BlueskyClient
from tagwatch.sources.http import RetryPolicy
from tagwatch.sources.mastodon import MastodonClient
from tagwatch.sources.x import XClient

TAGS = ("devops",)
TOKEN, HANDLE, PASSWORD = "x-secret-token", "collector.bsky.social", "abcd-efgh-ijkl-mnop"
POLICY = RetryPolicy(timeout=(0.5, 0.4), request_deadline=0.5, max_retries=0)


@pytest.fixture
def servers():
    """A fake X API, a Mastodon server and a Bluesky service, each holding one #devops post."""
    clock = FixedClock(NOW)
    x = FakeXApi([make_post(101, ["devops"], author="u1")], [make_user("u1", "xuser", 10)])
    x_url, stop_x = serve_fake_x(x)
    mastodon = FakeMastodon("127.0.0.1", clock)
    mastodon.receive(toot(1, Author("alice", "127.0.0.1", "Alice", 5), ["devops"]))
    stop_mastodon = serve_mastodon(mastodon)
    bluesky = FakeBluesky(HANDLE, PASSWORD, clock)
    ana = profile(1, 1500, "Ana")
    bluesky.profiles = {ana["did"]: ana}
    bluesky.add(post(1, ana, NOW - 60, ["devops"]))
    stop_bluesky = serve_bluesky(bluesky)
    env = {
        "TAGWATCH_SOURCES": "x,mastodon,bluesky,sample",
        "TAGWATCH_TAGS": ",".join(TAGS),
        "X_BEARER_TOKEN": TOKEN,
        "X_API_BASE_URL": x_url,
        "MASTODON_SERVERS": mastodon.base_url,
        "BLUESKY_SERVICE": bluesky.base_url,
        "BLUESKY_HANDLE": HANDLE,
        "BLUESKY_APP_PASSWORD": PASSWORD,
    }
    yield Settings.from_env(env), clock
    stop_x(), stop_mastodon(), stop_bluesky()


def test_build_clients_makes_one_client_per_source_reading_its_own_server(servers):
    settings, clock = servers
    http = {"policy": POLICY, "sleep": RecordedSleep(clock), "monotonic": clock}
    clients = build_clients(settings, clock, **http)

    assert list(clients) == ["x", "mastodon", "bluesky", "sample"]
    assert [type(c) for c in clients.values()] == [XClient, MastodonClient, BlueskyClient, XClient]
    assert {name: c.source for name, c in clients.items()} == {n: n for n in clients}
    x_page = next(clients["x"].pages("devops", None, None, 10))
    assert [p.id for p in parse_x(x_page.payload, TAGS, "devops").posts] == [101]
    mastodon_page = next(clients["mastodon"].pages("devops", None, 10))
    assert [p.origin for p in parse_mastodon(mastodon_page.payload, TAGS, "devops").posts] == [
        settings.mastodon_servers[0]
    ]
    bluesky_page = next(clients["bluesky"].pages("devops", None, 10))
    assert [p.source for p in parse_bluesky(bluesky_page.payload, TAGS, "devops").posts] == ["bluesky"]
    sample_page = next(clients["sample"].pages("devops", None, None, 10))
    assert sample_page.result_count == 10  # generated, never a network call


def test_build_clients_each_source_has_its_own_session():
    settings = Settings(sources=("x", "sample", "mastodon"), x_bearer_token=TOKEN)
    clients = build_clients(settings)
    x, sample, mastodon = clients.values()
    assert x.session is not sample.session
    assert all(server.session is not x.session for server in mastodon.servers)


def test_build_clients_only_for_the_configured_sources():
    assert list(build_clients(Settings.from_env({}))) == ["sample"]
    assert list(build_clients(Settings(sources=("mastodon",)))) == ["mastodon"]


def test_build_client_bluesky_without_credentials_names_the_variable():
    with pytest.raises(ConfigError) as raised:
        build_client("bluesky", Settings(sources=("bluesky",)))
    assert raised.value.variable == "BLUESKY_HANDLE"


def test_build_client_rejects_an_unknown_source():
    with pytest.raises(ValueError, match="unknown source 'rss'"):
        build_client("rss", Settings())
