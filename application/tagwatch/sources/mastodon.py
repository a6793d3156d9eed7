"""Mastodon hashtag timelines (`GET /api/v1/timelines/tag/:hashtag`) on a list of servers.

Interface (what the collector drives per tag, like the X client's `pages`):
`MastodonClient.pages(tag, cursor, budget, attempts) -> Iterator[FeedPage]`, where `cursor` is the
opaque text of the last page stored for this tag (None the first time). Each server is walked in
turn, up to `budget` statuses per server:

- first contact with a server: the newest page, then older pages (Link `rel="next"`, `max_id`) while
  the budget lasts; the server's cursor becomes the newest status id read;
- afterwards: forward from that id with `min_id`, so every page moves the cursor to the newest status
  read (what Link `rel="prev"` states, but a link is never trusted beyond the page) and a stop at any
  point resumes exactly, reading nothing twice and skipping nothing; an empty page ends the walk.

Every page carries the cursor to save with it. A server that fails gives a page with `error` set and
the cursor unchanged, and the other servers go on: a 401/403 (the server wants a token, or refused
it), a 410, or a rate-limit wait beyond the cap take the server out for the rest of the run
(`new_run()` brings it back); three tags in a row with the server unavailable do too. A 404 means the
server has never seen the hashtag: an empty page. A 400/422 to a saved cursor drops that server's
cursor and starts it again from the newest page (noted on the page).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import requests

from tagwatch.config import Settings
from tagwatch.logs import event
from tagwatch.sources.base import FeedPage, SourceError
from tagwatch.sources.http import Attempts, HttpClient, RateHeaders, parse_json

log = logging.getLogger("tagwatch.collector.source")

SOURCE = "mastodon"
DEFAULT_SERVER = "https://mastodon.social"
TIMELINE_PATH = "/api/v1/timelines/tag/{tag}"
PAGE_LIMIT = 40  # the documented maximum
BREAKER_TAGS = 3  # consecutive tags with a server unavailable take it out of the run
RUN_ENDING_KINDS = frozenset({"auth_failed", "server_gone", "rate_limited"})
CURSOR_PARAMS = ("min_id", "max_id", "since_id")


@dataclass(frozen=True)
class MastodonServer:
    """A server to read from, and the access token it wants (None: read without one)."""

    url: str
    token: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or self.url


@dataclass(frozen=True)
class Timeline:
    """One timeline response: statuses (newest first), the Link cursors, rate-limit remaining."""

    statuses: list[Any]
    links: dict[str, dict[str, str]]
    remaining: int | None


class CursorRejected(Exception):
    """The server answered 400/422 to a request carrying min_id/max_id."""


class UnknownTag(Exception):
    """The server answered 404: it has never seen this hashtag."""


class ServerClient(HttpClient):
    """Requests to one Mastodon server: its own rate-limit window (reset is an ISO time) and token."""

    rate_headers = RateHeaders("x-ratelimit-remaining", "x-ratelimit-reset", reset_is_iso=True)

    def __init__(self, server: MastodonServer, **http: Any) -> None:
        super().__init__(source=SOURCE, **http)
        self.server = server
        self.label = f"Mastodon server {server.host}"
        self._auth = {"Authorization": f"Bearer {server.token}"} if server.token else {}

    def __repr__(self) -> str:
        return f"ServerClient(url={self.server.url!r})"

    def timeline(self, tag: str, params: dict[str, Any], attempts: Attempts) -> Timeline:
        """One page of the hashtag timeline."""
        url = self.server.url + TIMELINE_PATH.format(tag=quote(tag, safe=""))
        answer = self.call(
            "GET",
            url,
            tag,
            attempts,
            params=params,
            headers=self._auth,
            expect=list,
            client_error=lambda status, body: self._client_error(status, body, params),
        )
        return Timeline(answer.payload, link_cursors(answer.headers.get("Link")), answer.remaining)

    def _client_error(self, status: int, body: bytes, params: dict[str, Any]) -> Exception:
        """Map a 4xx to what the walk acts on; the detail is Mastodon's `{"error": ...}`."""
        payload = parse_json(body)
        detail = (
            str(payload.get("error") or "") if isinstance(payload, dict) else body.decode("utf-8", "replace")
        )
        detail = " ".join(detail.split())[:200]
        if status in (401, 403):
            wants = "rejected the access token" if self.server.token else "requires an access token"
            hint = f"set MASTODON_ACCESS_TOKENS for {self.server.host}"
            return SourceError("auth_failed", f"{self.label} {wants} ({status}: {detail}); {hint}", status)
        if status == 404:
            return UnknownTag(detail)
        if status == 410:
            return SourceError("server_gone", f"{self.label} answered 410 Gone: {detail}", status)
        if status in (400, 422) and any(p in params for p in CURSOR_PARAMS):
            return CursorRejected(f"{status}: {detail}")
        return SourceError("bad_request", f"{self.label} answered {status}: {detail}", status)


class MastodonClient:
    """Reads hashtag timelines from several servers; one `ServerClient` (window, token) per server."""

    source = SOURCE

    def __init__(
        self,
        servers: Sequence[MastodonServer],
        *,
        session: requests.Session | None = None,
        on_wait: Callable[[float], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        **http: Any,
    ) -> None:
        self.on_wait = on_wait
        self.should_stop = should_stop
        session = session or requests.Session()
        self.servers = [
            ServerClient(s, session=session, on_wait=self._announce, should_stop=self._stopping, **http)
            for s in servers
        ]
        self.monotonic = http.get("monotonic", time.monotonic)
        self._out: dict[str, SourceError] = {}  # servers taken out of this run, with why
        self._unavailable: dict[str, int] = {}  # consecutive tags each server was unavailable

    @classmethod
    def from_settings(cls, settings: Settings, **http: Any) -> MastodonClient:
        """A client for MASTODON_SERVERS, each with its token from MASTODON_ACCESS_TOKEN(S) if any."""
        tokens = dict(settings.mastodon_tokens)
        return cls([MastodonServer(url, tokens.get(url)) for url in settings.mastodon_servers], **http)

    def __repr__(self) -> str:
        return f"MastodonClient(servers={[s.server.url for s in self.servers]!r})"

    def new_run(self) -> None:
        """Forget which servers failed: a new run tries every server again."""
        self._out.clear()
        self._unavailable.clear()

    def pages(
        self, tag: str, cursor: str | None, budget: int, attempts: Attempts | None = None
    ) -> Iterator[FeedPage]:
        """Pages for `#tag` from every server in turn, up to `budget` statuses per server."""
        attempts = attempts or Attempts()
        state = load_cursor(cursor, tag)
        for server in self.servers:
            yield from self._server_pages(server, tag, state, budget, attempts)

    def _server_pages(
        self,
        server: ServerClient,
        tag: str,
        state: dict[str, dict[str, str]],
        budget: int,
        attempts: Attempts,
    ) -> Iterator[FeedPage]:
        """One server's pages; a failure becomes an error page and (for some kinds) takes it out."""
        walk = ServerWalk(server, tag, state, attempts)
        if server.server.url in self._out:
            yield walk.failed(self._out[server.server.url])
            return
        try:
            yield from walk.pages(budget)
        except SourceError as exc:
            if exc.kind == "time_budget_spent":
                raise
            self._note_failure(server, tag, exc)
            yield walk.failed(exc)
        else:
            self._unavailable[server.server.url] = 0

    def _note_failure(self, server: ServerClient, tag: str, exc: SourceError) -> None:
        """Take the server out of the run for errors that would repeat for every tag."""
        url = server.server.url
        unavailable = self._unavailable.get(url, 0) + (exc.kind == "source_unavailable")
        self._unavailable[url] = unavailable if exc.kind == "source_unavailable" else 0
        if exc.kind in RUN_ENDING_KINDS or unavailable >= BREAKER_TAGS:
            self._out[url] = exc
            log.warning(
                "%s is out for the rest of this run: %s",
                server.label,
                exc,
                extra=event("origin_out", tag=tag, source=SOURCE, origin=url, error_type=exc.kind),
            )

    def _announce(self, seconds: float) -> None:
        if self.on_wait is not None:
            self.on_wait(seconds)

    def _stopping(self) -> bool:
        return self.should_stop()


class ServerWalk:
    """One tag on one server: the requests, the cursor they lead to, and the pages they make."""

    def __init__(
        self, server: ServerClient, tag: str, state: dict[str, dict[str, str]], attempts: Attempts
    ) -> None:
        self.server, self.tag, self.state, self.attempts = server, tag, state, attempts
        self.url = server.server.url
        self.mark = attempts.requests  # attempts already carried by an earlier page
        self.notes: list[dict[str, Any]] = []

    def pages(self, budget: int) -> Iterator[FeedPage]:
        """Forward from the saved min_id, or (first contact) the newest pages backwards."""
        saved = self.state.get(self.url, {}).get("min_id")
        if saved:
            yield from self._forward(saved, budget)
        else:
            yield from self._backward(budget)

    def _forward(self, min_id: str, budget: int) -> Iterator[FeedPage]:
        read, seen = 0, {min_id}
        while read < budget:
            try:
                page = self._fetch({"min_id": min_id, "limit": min(PAGE_LIMIT, budget - read)})
            except CursorRejected as exc:
                self._restart(min_id, exc)
                yield from self._backward(budget - read)
                return
            newer = newest_id(page.statuses)
            stalled = bool(page.statuses) and (
                not newer or newer in seen or not _ahead(page.statuses, min_id)
            )
            if stalled:
                self._stall("min_id", min_id)
            elif newer:
                self.state[self.url] = {"min_id": newer}
            yield self._page(page)
            read += len(page.statuses)
            if not page.statuses or stalled or not newer:
                return
            seen.add(newer)
            min_id = newer

    def _backward(self, budget: int) -> Iterator[FeedPage]:
        read, params, seen = 0, {}, set()
        while read < budget:
            page = self._fetch({**params, "limit": min(PAGE_LIMIT, budget - read)})
            if not params and page.statuses:  # the newest page: the cursor for next time
                newest = newest_id(page.statuses)
                self.state[self.url] = {"min_id": newest} if newest else self.state.get(self.url, {})
            older = page.links.get("next", {}).get("max_id")
            stalled = bool(older) and older in seen
            if stalled:
                self._stall("max_id", older)
            yield self._page(page)
            read += len(page.statuses)
            if not page.statuses or not older or stalled:
                return
            seen.add(older)
            params = {"max_id": older}

    def _fetch(self, params: dict[str, Any]) -> Timeline:
        try:
            return self.server.timeline(self.tag, params, self.attempts)
        except UnknownTag:
            return Timeline([], {}, None)

    def _page(self, timeline: Timeline) -> FeedPage:
        """A page of `timeline` with the cursor as it stands and the attempts it took."""
        requests_, self.mark = self.attempts.requests - self.mark, self.attempts.requests
        notes, self.notes = self.notes, []
        return FeedPage(
            source=SOURCE,
            origin=self.url,
            payload={"server": self.url, "statuses": timeline.statuses},
            cursor=dump_cursor(self.state),
            result_count=len(timeline.statuses),
            requests=requests_,
            rate_limit_remaining=timeline.remaining,
            partial_errors=notes,
        )

    def failed(self, error: SourceError) -> FeedPage:
        """The page that reports this server's failure for the tag: no posts, cursor unchanged."""
        return replace(self._page(Timeline([], {}, None)), error=error)

    def _restart(self, min_id: str, exc: CursorRejected) -> None:
        log.warning(
            "%s rejected min_id %s (%s); reading #%s again from the newest page",
            self.server.label,
            min_id,
            exc,
            self.tag,
            extra=event("cursor_rejected", tag=self.tag, source=SOURCE, origin=self.url),
        )
        self.state.pop(self.url, None)
        self.notes.append({"kind": "cursor_rejected", "origin": self.url, "detail": str(exc)})

    def _stall(self, param: str, value: str) -> None:
        log.warning(
            "%s: pagination of #%s stalled (%s %s again or nothing newer); stopping, the cursor is kept",
            self.server.label,
            self.tag,
            param,
            value,
            extra=event("pagination_stalled", tag=self.tag, source=SOURCE, origin=self.url),
        )
        self.notes.append({"kind": "pagination_stalled", "origin": self.url, "detail": f"{param} {value}"})


def link_cursors(header: str | None) -> dict[str, dict[str, str]]:
    """The cursor parameters of each Link relation: {"next": {"max_id": …}, "prev": {"min_id": …}}.

    Only the parameters are taken, never the URL itself: a request never goes where a header says.
    """
    cursors: dict[str, dict[str, str]] = {}
    for link in requests.utils.parse_header_links(header or ""):
        query = parse_qs(urlsplit(link.get("url", "")).query)
        params = {k: v[-1] for k, v in query.items() if k in CURSOR_PARAMS and v and v[-1]}
        if link.get("rel") and params:
            cursors[link["rel"]] = params
    return cursors


def newest_id(statuses: list[Any]) -> str | None:
    """The id of the newest status on the page: the highest when ids are numbers (Mastodon's are),
    else the first (timelines are newest first).

    Taken from the statuses read, never from Link `rel="prev"`: a link pointing further than the page
    (or set on an empty page) would move the cursor past statuses not read yet.
    """
    ids = [str(s["id"]) for s in statuses if isinstance(s, dict) and s.get("id")]
    if ids and all(i.isdigit() for i in ids):
        return max(ids, key=int)
    return ids[0] if ids else None


def _ahead(statuses: list[Any], min_id: str) -> bool:
    """False when every id is numerically at or below min_id (a page with nothing newer); True when ids
    are not numeric, since Mastodon only promises strings."""
    ids = [str(s.get("id")) for s in statuses if isinstance(s, dict)]
    if not min_id.isdigit() or not all(i.isdigit() for i in ids):
        return True
    return any(int(i) > int(min_id) for i in ids)


def dump_cursor(state: dict[str, dict[str, str]]) -> str:
    """The opaque, stable text of a cursor: per server, the newest status id read."""
    return json.dumps({"v": 1, "servers": state}, sort_keys=True, separators=(",", ":"))


def load_cursor(cursor: str | None, tag: str) -> dict[str, dict[str, str]]:
    """The per-server state of a saved cursor; an unreadable one starts every server afresh (logged)."""
    if not cursor:
        return {}
    data = parse_json(cursor.encode())
    servers = data.get("servers") if isinstance(data, dict) and data.get("v") == 1 else None
    if isinstance(servers, dict) and all(isinstance(v, dict) for v in servers.values()):
        return {str(k): {"min_id": str(v["min_id"])} for k, v in servers.items() if v.get("min_id")}
    log.warning(
        "the saved Mastodon cursor for #%s is unreadable; starting from the newest posts",
        tag,
        extra=event("cursor_unreadable", tag=tag, source=SOURCE),
    )
    return {}
