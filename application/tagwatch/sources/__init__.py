"""Post sources: X API v2, the built-in sample behind the same client, Mastodon and Bluesky.

`build_clients` makes one client per configured source (TAGWATCH_SOURCES), each with its own HTTP
session, so one source's rate-limit state or failure never touches another's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tagwatch.config import Settings
from tagwatch.sources.bluesky import BlueskyClient
from tagwatch.sources.mastodon import MastodonClient
from tagwatch.sources.sample import SAMPLE_BASE_URL, SampleWorld, sample_session
from tagwatch.sources.x import XClient

#: What the collector drives: X's `pages(tag, since_id, next_token, budget, attempts)` yields `Page`s,
#: the feed clients' `pages(tag, cursor, budget, attempts)` yields `FeedPage`s (docs/sources.md).
Client = XClient | MastodonClient | BlueskyClient


def build_client(
    name: str, settings: Settings, clock: Callable[[], float] = time.time, **http: Any
) -> Client:
    """The client for source `name`; `http` are HttpClient's injectables except `session` (sleep,
    policy, monotonic, …). The sample is the X client on a transport that generates posts."""
    if name == "x":
        token = settings.x_bearer_token or ""
        return XClient(settings.x_api_base_url, token, source="x", clock=clock, **http)
    if name == "sample":
        session = sample_session(SampleWorld(), clock)
        return XClient(SAMPLE_BASE_URL, "sample", source="sample", session=session, clock=clock, **http)
    if name == "mastodon":
        return MastodonClient.from_settings(settings, clock=clock, **http)
    if name == "bluesky":
        return BlueskyClient.from_settings(settings, clock=clock, **http)
    raise ValueError(f"unknown source {name!r}")


def build_clients(
    settings: Settings, clock: Callable[[], float] = time.time, **http: Any
) -> dict[str, Client]:
    """One client per source in `settings.sources`, in that order."""
    return {name: build_client(name, settings, clock, **http) for name in settings.sources}
