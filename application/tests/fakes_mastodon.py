"""A fake Mastodon network for tests: servers over real HTTP that federate the same statuses.

A `Toot` is one status as its author wrote it (one ActivityPub `uri`); each `FakeMastodon` server
holds its own copies under its own status ids, serves `GET /api/v1/timelines/tag/:hashtag` per the
documented contract (max_id, since_id, min_id, limit ≤ 40, newest first, `Link` next/prev, a 404 for
a hashtag it never saw), states `X-RateLimit-*` with an ISO 8601 reset like rack-attack does, and can
demand an access token. Tests queue `Scripted` answers or set a `fault` in front of the contract.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fakes import FakeRequest, Scripted, ScriptedFake, serve_fake

PATH = "/api/v1/timelines/tag/"
WINDOW = 300  # seconds: Mastodon's default API window


@dataclass
class Author:
    """An account on its home server."""

    name: str
    home: str  # host
    display_name: str
    followers: int
    fields: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Toot:
    """A status as written once: its federation uri, content, hashtags, language, time and author."""

    uri: str
    author: Author
    content: str
    tags: list[str]
    language: str | None
    created_at: str


def toot(
    n: int, author: Author, tags: list[str], language: str | None = "en", content: str | None = None
) -> Toot:
    """Status number `n` by `author` (its uri lives on the author's home server)."""
    html = content or "<p>post " + str(n) + " " + " ".join(_hashtag(author.home, t) for t in tags) + "</p>"
    moment = datetime.fromtimestamp(1_795_000_000 + n * 60, tz=UTC).isoformat(timespec="milliseconds")
    return Toot(
        uri=f"https://{author.home}/users/{author.name}/statuses/{1000 + n}",
        author=author,
        content=html,
        tags=tags,
        language=language,
        created_at=moment.replace("+00:00", "Z"),
    )


def _hashtag(host: str, tag: str) -> str:
    return f'<a href="https://{host}/tags/{tag}" class="mention hashtag" rel="tag">#<span>{tag}</span></a>'


class FakeMastodon(ScriptedFake):
    """One server. Its status ids are its own (`next_id`), newer statuses get bigger ids."""

    def __init__(self, host: str, clock: Callable[[], float], token: str | None = None) -> None:
        super().__init__()
        self.host = host
        self.clock = clock
        self.token = token  # when set, requests without this bearer token get 401
        self.statuses: dict[int, Toot] = {}
        self.ids = itertools.count(100_000)
        self.remaining = 300

    def receive(self, *toots: Toot) -> None:
        """These statuses reach this server now (federation gives them this server's next ids)."""
        for item in toots:
            self.statuses[next(self.ids)] = item

    def local_id(self, uri: str) -> str:
        return next(str(i) for i, t in self.statuses.items() if t.uri == uri)

    def contract(self, request: FakeRequest) -> Scripted:
        """The timeline, or 401 when the server wants a token it was not given."""
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return Scripted(401, {"error": "The access token is invalid"}, self.rate_headers())
        return self.timeline(request)

    def timeline(self, request: FakeRequest) -> Scripted:
        """The hashtag timeline page the request asks for, with Link and rate-limit headers."""
        tag = request.path.removeprefix(PATH).lower()
        tagged = {i: t for i, t in self.statuses.items() if tag in (x.lower() for x in t.tags)}
        if not tagged:
            return Scripted(404, {"error": "Record not found"}, self.rate_headers())
        ids = self.select(sorted(tagged), request)
        headers = self.rate_headers()
        if ids:
            base = f"{self.base_url}{PATH}{tag}"
            headers["Link"] = f'<{base}?max_id={ids[-1]}>; rel="next", <{base}?min_id={ids[0]}>; rel="prev"'
        return Scripted(200, [self.status(i, tagged[i]) for i in ids], headers)

    @staticmethod
    def select(ids: list[int], request: FakeRequest) -> list[int]:
        """Newest first; min_id takes the ones immediately newer than it (Mastodon's paginate_by_min_id)."""
        limit = min(int(request.param("limit") or 20), 40)
        max_id, since_id, min_id = (int(request.param(k) or 0) for k in ("max_id", "since_id", "min_id"))
        ids = [i for i in ids if (not max_id or i < max_id) and i > since_id]
        if min_id:
            return sorted(i for i in ids if i > min_id)[:limit][::-1]
        return sorted(ids, reverse=True)[:limit]

    def rate_headers(self) -> dict[str, str]:
        """X-RateLimit-* as rack-attack writes them: the reset is an ISO 8601 time with microseconds."""
        self.remaining = max(0, self.remaining - 1)
        now = self.clock()
        reset = datetime.fromtimestamp(now + WINDOW - now % WINDOW, tz=UTC).isoformat(timespec="microseconds")
        return {
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": reset.replace("+00:00", "Z"),
        }

    def status(self, local_id: int, item: Toot) -> dict[str, Any]:
        """The Status entity of `item` as this server shows it (a local author's acct has no domain)."""
        author = item.author
        acct = author.name if author.home == self.host else f"{author.name}@{author.home}"
        return {
            "id": str(local_id),
            "uri": item.uri,
            "url": item.uri.replace("/users/", "/@").replace("/statuses/", "/"),
            "created_at": item.created_at,
            "language": item.language,
            "visibility": "public",
            "content": item.content,
            "reblog": None,
            "tags": [{"name": t.lower(), "url": f"https://{self.host}/tags/{t.lower()}"} for t in item.tags],
            "account": {
                "id": str(abs(hash((author.name, author.home))) % 10_000),
                "username": author.name,
                "acct": acct,
                "display_name": author.display_name,
                "followers_count": author.followers,
                "fields": author.fields,
            },
        }


def serve_mastodon(server: FakeMastodon) -> Callable[[], None]:
    """Serve `server` over real HTTP; sets its base_url; returns stop."""
    server.base_url, stop = serve_fake(server.answer, host=server.host)
    return stop


def rate_limited(server: FakeMastodon, reset_in: float) -> Scripted:
    """A 429 as rack-attack sends it: remaining 0 and the window's reset as an ISO time."""
    reset = datetime.fromtimestamp(server.clock() + reset_in, tz=UTC).isoformat(timespec="microseconds")
    headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    return Scripted(429, {"error": "Too many requests"}, headers)
