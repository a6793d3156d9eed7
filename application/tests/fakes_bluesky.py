"""A fake Bluesky service for tests, over real HTTP: sessions, post search by tag, profiles.

It follows the lexicons: `com.atproto.server.createSession` (identifier + password → accessJwt,
refreshJwt, did, handle; 401 AuthenticationRequired otherwise), `com.atproto.server.refreshSession`
(bearer refreshJwt; the old one is revoked), `app.bsky.feed.searchPosts` (q required, tag, sort=latest,
since inclusive on sortAt, limit ≤ 100, an offset cursor; 401 without a session, as search refuses
anonymous callers), `app.bsky.actor.getProfiles` (actors ≤ 25). An expired token answers 400
`ExpiredToken` as a PDS does. Responses carry `RateLimit-*` headers (reset in Unix seconds).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fakes import FakeRequest, Scripted, ScriptedFake, serve_fake

XRPC = "/xrpc/"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def profile(n: int, followers: int, name: str | None = None) -> dict[str, Any]:
    """A profileViewDetailed for account number `n`."""
    return {
        "did": f"did:plc:user{n:04d}",
        "handle": f"user{n}.bsky.social",
        "displayName": name if name is not None else f"User {n}",
        "followersCount": followers,
        "followsCount": 3,
        "postsCount": 10,
    }


def post(
    n: int,
    author: dict[str, Any],
    created: float,
    facet_tags: list[str],
    extra_tags: list[str] | None = None,
    langs: list[str] | None = None,
    indexed: float | None = None,
) -> dict[str, Any]:
    """A postView: hashtags as tag facets over the text, more in the record's `tags`."""
    text = f"post {n} " + " ".join(f"#{t}" for t in facet_tags)
    facets, cursor = [], len(f"post {n} ".encode())
    for tag in facet_tags:
        end = cursor + len(f"#{tag}".encode())
        facets.append(
            {
                "index": {"byteStart": cursor, "byteEnd": end},
                "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}],
            }
        )
        cursor = end + 1
    record: dict[str, Any] = {
        "$type": "app.bsky.feed.post",
        "text": text,
        "createdAt": iso(created),
        "facets": facets,
    }
    if extra_tags:
        record["tags"] = extra_tags
    if langs is not None:
        record["langs"] = langs
    return {
        "uri": f"at://{author['did']}/app.bsky.feed.post/3k{n:08d}",
        "cid": f"bafy{n}",
        "author": {"did": author["did"], "handle": author["handle"], "displayName": author["displayName"]},
        "record": record,
        "indexedAt": iso(indexed if indexed is not None else created + 1),
    }


def sort_ts(view: dict[str, Any]) -> float:
    created = datetime.fromisoformat(view["record"]["createdAt"]).timestamp()
    indexed = datetime.fromisoformat(view["indexedAt"]).timestamp()
    return min(created, indexed)


def tags_of(view: dict[str, Any]) -> set[str]:
    record = view["record"]
    found = {f["tag"].lower() for facet in record.get("facets", []) for f in facet["features"] if "tag" in f}
    return found | {t.lower() for t in record.get("tags", [])}


class FakeBluesky(ScriptedFake):
    """An entryway + AppView in one: accounts' sessions, posts and profiles, scriptable like the X fake."""

    def __init__(self, handle: str, password: str, clock: Callable[[], float]) -> None:
        super().__init__()
        self.handle, self.password, self.clock = handle, password, clock
        self.posts: list[dict[str, Any]] = []
        self.profiles: dict[str, dict[str, Any]] = {}
        self.access: dict[str, bool] = {}  # token → expired?
        self.refresh: dict[str, bool] = {}
        self.tokens = itertools.count(1)
        self.remaining = 3000

    def add(self, *views: dict[str, Any]) -> None:
        self.posts.extend(views)

    def expire_access(self) -> None:
        """Every access token issued so far has expired."""
        self.access = dict.fromkeys(self.access, True)

    def expire_refresh(self) -> None:
        self.refresh = dict.fromkeys(self.refresh, True)

    def calls_to(self, nsid: str) -> list[FakeRequest]:
        return [c for c in self.calls if c.path == XRPC + nsid]

    def contract(self, request: FakeRequest) -> Scripted:
        """Route by NSID; queries need a live access token."""
        nsid = request.path.removeprefix(XRPC)
        if nsid == "com.atproto.server.createSession":
            return self.create_session(request)
        if nsid == "com.atproto.server.refreshSession":
            return self.refresh_session(request)
        refused = self.check(request, self.access)
        if refused is not None:
            return refused
        if nsid == "app.bsky.feed.searchPosts":
            return self.search(request)
        if nsid == "app.bsky.actor.getProfiles":
            return self.get_profiles(request)
        return self.error(404, "MethodNotImplemented", "Method Not Implemented")

    def error(self, status: int, name: str, message: str) -> Scripted:
        return Scripted(status, {"error": name, "message": message}, self.rate_headers())

    def rate_headers(self) -> dict[str, str]:
        self.remaining = max(0, self.remaining - 1)
        return {
            "RateLimit-Limit": "3000",
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(int(self.clock()) + 300),
            "RateLimit-Policy": "3000;w=300",
        }

    def check(self, request: FakeRequest, tokens: dict[str, bool]) -> Scripted | None:
        """None when the bearer token is live; else the error a PDS gives."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        if not header:
            return self.error(401, "AuthMissing", "Authentication Required")
        if token not in tokens:
            return self.error(400, "InvalidToken", "Token could not be verified")
        if tokens[token]:
            return self.error(400, "ExpiredToken", "Token has expired")
        return None

    def issue(self) -> Scripted:
        access, refresh = f"access-{next(self.tokens)}", f"refresh-{next(self.tokens)}"
        self.access[access], self.refresh[refresh] = False, False
        body = {"accessJwt": access, "refreshJwt": refresh, "handle": self.handle, "did": "did:plc:collector"}
        return Scripted(200, body, self.rate_headers())

    def create_session(self, request: FakeRequest) -> Scripted:
        credentials = request.json() or {}
        if credentials.get("identifier") != self.handle or credentials.get("password") != self.password:
            return self.error(401, "AuthenticationRequired", "Invalid identifier or password")
        return self.issue()

    def refresh_session(self, request: FakeRequest) -> Scripted:
        refused = self.check(request, self.refresh)
        if refused is not None:
            return refused
        self.refresh.pop(request.headers["Authorization"].removeprefix("Bearer "))
        return self.issue()

    def search(self, request: FakeRequest) -> Scripted:
        if not request.param("q"):
            return self.error(400, "InvalidRequest", 'Error: Params must have the property "q"')
        wanted = {t.lower() for t in request.query.get("tag", [])}
        since = datetime.fromisoformat(request.param("since")).timestamp() if request.param("since") else 0
        limit = min(int(request.param("limit") or 25), 100)
        matches = sorted(
            (v for v in self.posts if wanted <= tags_of(v) and sort_ts(v) >= since),
            key=lambda v: (sort_ts(v), v["uri"]),
            reverse=True,
        )
        offset = int(request.param("cursor") or 0)
        page = matches[offset : offset + limit]
        body: dict[str, Any] = {"posts": page, "hitsTotal": len(matches)}
        if offset + len(page) < len(matches):
            body["cursor"] = str(offset + len(page))
        return Scripted(200, body, self.rate_headers())

    def get_profiles(self, request: FakeRequest) -> Scripted:
        actors = request.query.get("actors", [])
        if not actors or len(actors) > 25:
            return self.error(400, "InvalidRequest", "actors must have between 1 and 25 items")
        found = [self.profiles[a] for a in actors if a in self.profiles]
        return Scripted(200, {"profiles": found}, self.rate_headers())


def serve_bluesky(service: FakeBluesky) -> Callable[[], None]:
    """Serve `service` over real HTTP on 127.0.0.1; sets its base_url; returns stop."""
    service.base_url, stop = serve_fake(service.answer)
    return stop
