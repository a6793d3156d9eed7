"""Bluesky post search by hashtag (`app.bsky.feed.searchPosts`), with an app-password session.

Interface (what the collector drives per tag, like the X client's `pages`):
`BlueskyClient.pages(tag, cursor, budget, attempts) -> Iterator[FeedPage]`, where `cursor` is the
opaque text of the last page stored for this tag (None the first time).

Search has no id to resume from, only `since` (inclusive, on the post's `sortAt`) and an opaque page
cursor, newest first. So, like the X collector's since_id: a pagination keeps one `since` for all
its pages and follows the page cursor down; each page's cursor records that pending pagination (so a
stop resumes it), and when it ends the committed `since` becomes the newest `sortAt` read minus an
overlap (posts are indexed a little after they are written), together with the URIs already read
inside that overlap, which the next pagination drops: a second fetch reads 0 new posts. The first
pagination for a tag looks back `lookback` seconds. A post-free page that still points further is
followed (search drops hits it may not show, so a page can come back empty), but a page cursor
repeated or `EMPTY_PAGES` post-free pages in a row end the pagination as stalled and keep the
committed `since`: it never moves past posts not read. A search answer without a `posts` list is
an error, never the end of a pagination.

Authentication: `com.atproto.server.createSession` with BLUESKY_HANDLE and BLUESKY_APP_PASSWORD
(search refuses anonymous callers since 2025); an `ExpiredToken` answer (400 from a PDS, 401 from
the AppView) refreshes the session with the refresh token, and a failed refresh logs in again. A
refused login is fatal for the source (`invalid_credentials`). Authors' follower counts come from
`app.bsky.actor.getProfiles` in batches of 25, cached for the run (`new_run()` clears the cache).
Rate limits: `ratelimit-remaining` / `ratelimit-reset` (Unix seconds). Secrets are never logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tagwatch import timestamps
from tagwatch.config import ConfigError, Settings
from tagwatch.logs import event
from tagwatch.parse_bluesky import sort_at
from tagwatch.sources.base import FeedPage, SourceError
from tagwatch.sources.http import Attempts, HttpClient, RateHeaders, parse_json

log = logging.getLogger("tagwatch.collector.source")

SOURCE = "bluesky"
DEFAULT_SERVICE = "https://bsky.social"
SEARCH = "app.bsky.feed.searchPosts"
PROFILES = "app.bsky.actor.getProfiles"
CREATE_SESSION = "com.atproto.server.createSession"
REFRESH_SESSION = "com.atproto.server.refreshSession"
PAGE_LIMIT = 100  # searchPosts' maximum
PROFILE_BATCH = 25  # getProfiles' maximum
LOOKBACK = 86_400.0  # the first pagination of a tag reads the last day
OVERLAP = 120.0  # the committed `since` stays this far behind the newest post read
SESSION_TRIES = 3  # a request may refresh once and log in again once before giving up
EMPTY_PAGES = 3  # post-free pages in a row that still point further before a pagination is stalled


class TokenExpired(Exception):
    """The access (or refresh) token has expired: `{"error": "ExpiredToken"}`."""


class TokenInvalid(Exception):
    """The token was not accepted at all (401, InvalidToken, AuthMissing)."""


class CursorRejected(Exception):
    """searchPosts answered 400 to the page cursor it was sent."""


@dataclass
class Session:
    """The tokens of one login; never shown in a repr."""

    did: str
    access: str = field(repr=False)
    refresh: str = field(repr=False)


@dataclass
class Pending:
    """A pagination under way: its `since`, the page cursor to ask next, the newest sortAt read, the
    URIs read within the overlap of it, and the previous page's URIs (offset cursors can repeat them)."""

    since: float
    page: str | None = None
    high: float | None = None
    top: dict[str, float] = field(default_factory=dict)
    last: list[str] = field(default_factory=list)


@dataclass
class SearchState:
    """What the cursor text holds: the committed `since`, URIs already read at or after it, and a
    pagination under way (if any)."""

    since: float | None = None
    seen: list[str] = field(default_factory=list)
    pending: Pending | None = None


class BlueskyClient(HttpClient):
    """searchPosts by tag for one account on one service (an entryway or PDS such as bsky.social)."""

    label = "Bluesky"
    rate_headers = RateHeaders("ratelimit-remaining", "ratelimit-reset")

    def __init__(
        self,
        service: str,
        handle: str,
        app_password: str,
        *,
        lookback: float = LOOKBACK,
        overlap: float = OVERLAP,
        **http: Any,
    ) -> None:
        super().__init__(source=SOURCE, **http)
        self.service = service.rstrip("/")
        self.handle = handle
        self._password = app_password
        self.lookback, self.overlap = lookback, overlap
        self._session: Session | None = None
        self._profiles: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, **http: Any) -> BlueskyClient:
        """A client for BLUESKY_SERVICE with BLUESKY_HANDLE and BLUESKY_APP_PASSWORD (both required)."""
        if not settings.bluesky_handle or not settings.bluesky_app_password:
            raise ConfigError("BLUESKY_HANDLE", "set with BLUESKY_APP_PASSWORD to read from Bluesky")
        return cls(settings.bluesky_service, settings.bluesky_handle, settings.bluesky_app_password, **http)

    def __repr__(self) -> str:
        return f"BlueskyClient(service={self.service!r}, handle={self.handle!r})"

    def new_run(self) -> None:
        """Forget cached profiles: follower counts are read afresh once per run."""
        self._profiles.clear()

    def pages(
        self, tag: str, cursor: str | None, budget: int, attempts: Attempts | None = None
    ) -> Iterator[FeedPage]:
        """Pages for `#tag` until the pagination is done, stalled, or `budget` posts were read.

        A pagination resumed from an earlier run that ends with budget left is followed by a fresh one
        from the new `since`, so the tag is up to date at the end of the run.
        """
        attempts = attempts or Attempts()
        state = load_cursor(cursor, tag)
        read = 0
        while read < budget:
            resumed = state.pending is not None
            walk = SearchWalk(self, tag, state, attempts)
            yield from walk.pages(budget - read)
            read += walk.read
            if not (resumed and walk.outcome == "done"):
                return

    def search(
        self, params: dict[str, Any], tag: str, attempts: Attempts
    ) -> tuple[dict[str, Any], int | None]:
        """One searchPosts page (payload, rate-limit remaining); a page without a `posts` list is an
        error (taken for an empty last page it would commit `since` past the posts not read)."""
        payload, remaining = self._authorized(SEARCH, params, tag, attempts)
        if not isinstance(payload.get("posts"), list):
            raise SourceError("source_unavailable", "Bluesky answered a search without a posts list")
        return payload, remaining

    def profiles(
        self, dids: list[str], tag: str, attempts: Attempts
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Detailed profiles of `dids` (cached per run), and a note when some could not be fetched."""
        missing = [d for d in dict.fromkeys(dids) if d not in self._profiles]
        problem = None
        for start in range(0, len(missing), PROFILE_BATCH):
            batch = missing[start : start + PROFILE_BATCH]
            try:
                payload, _ = self._authorized(PROFILES, {"actors": batch}, tag, attempts)
            except SourceError as exc:
                if exc.fatal or exc.kind == "time_budget_spent":
                    raise
                problem = f"profiles unavailable ({exc.kind}): {exc}"
                break
            found = payload.get("profiles")
            if not isinstance(found, list):
                problem = "profiles unavailable: getProfiles answered without a profiles list"
                break
            for profile in found:
                if isinstance(profile, dict) and profile.get("did"):
                    self._profiles[str(profile["did"])] = profile
        return [self._profiles[d] for d in dict.fromkeys(dids) if d in self._profiles], problem

    def _authorized(
        self, nsid: str, params: dict[str, Any], tag: str, attempts: Attempts
    ) -> tuple[dict[str, Any], int | None]:
        """GET an XRPC query with the session's access token, refreshing or logging in as needed."""
        for _ in range(SESSION_TRIES):
            session = self._session or self._login(tag, attempts)
            try:
                answer = self.call(
                    "GET",
                    self._xrpc(nsid),
                    tag,
                    attempts,
                    params=params,
                    headers={"Authorization": f"Bearer {session.access}"},
                    client_error=lambda status, body: _query_error(status, body, params),
                )
                return answer.payload, answer.remaining
            except TokenExpired:
                self._session = self._refresh(session, tag, attempts)
            except TokenInvalid:
                self._session = None
        raise SourceError("invalid_credentials", "Bluesky kept refusing fresh session tokens")

    def _login(self, tag: str, attempts: Attempts) -> Session:
        """createSession with the handle and app password."""
        answer = self.call(
            "POST",
            self._xrpc(CREATE_SESSION),
            tag,
            attempts,
            json={"identifier": self.handle, "password": self._password},
            client_error=_login_error,
        )
        self._session = _session_of(answer.payload)
        log.info(
            "Bluesky session created for %s",
            self.handle,
            extra=event("session_created", tag=tag, source=SOURCE),
        )
        return self._session

    def _refresh(self, session: Session, tag: str, attempts: Attempts) -> Session | None:
        """refreshSession with the refresh token; None (log in again) when that is refused too."""
        try:
            answer = self.call(
                "POST",
                self._xrpc(REFRESH_SESSION),
                tag,
                attempts,
                headers={"Authorization": f"Bearer {session.refresh}"},
                client_error=lambda status, body: _query_error(status, body, {}),
            )
        except (TokenExpired, TokenInvalid, SourceError) as exc:
            if isinstance(exc, SourceError) and exc.kind not in ("bad_request", "invalid_credentials"):
                raise
            log.warning(
                "Bluesky refused to refresh the session (%s); logging in again",
                type(exc).__name__,
                extra=event("session_refresh_failed", tag=tag, source=SOURCE),
            )
            return None
        log.info("Bluesky session refreshed", extra=event("session_refreshed", tag=tag, source=SOURCE))
        return _session_of(answer.payload)

    def _xrpc(self, nsid: str) -> str:
        return f"{self.service}/xrpc/{nsid}"


class SearchWalk:
    """One pagination (or the rest of a saved one) for one tag: requests, pages and the state they leave."""

    def __init__(self, client: BlueskyClient, tag: str, state: SearchState, attempts: Attempts) -> None:
        self.client, self.tag, self.state, self.attempts = client, tag, state, attempts
        self.pending = state.pending or Pending(since=self._start())
        self.seen = set(state.seen)
        self.mark = attempts.requests
        self.read = 0
        self.outcome = "budget"
        self.notes: list[dict[str, Any]] = []
        self.restarted = False
        self.visited: set[str] = set()  # page cursors followed in this pagination
        self.empty = 0  # post-free pages in a row

    def _start(self) -> float:
        """Where a new pagination starts: the committed `since`, or `lookback` ago the first time."""
        if self.state.since is not None:
            return self.state.since
        return self.client.now() - self.client.lookback

    def pages(self, budget: int) -> Iterator[FeedPage]:
        """Follow the page cursor until done, stalled or `budget` posts were read."""
        while self.read < budget:
            try:
                payload, remaining = self.client.search(self._params(budget), self.tag, self.attempts)
            except CursorRejected as exc:
                self._restart(exc)
                continue
            raw = [p for p in payload["posts"] if isinstance(p, dict) and p.get("uri")]
            fresh = self._take(raw)
            self._advance(raw, payload.get("cursor"))
            yield self._page(fresh, remaining)
            self.read += len(raw)
            if self.outcome != "budget":
                return

    def _params(self, budget: int) -> dict[str, Any]:
        params: dict[str, Any] = {
            "q": f"#{self.tag}",
            "tag": self.tag,
            "sort": "latest",
            "since": timestamps.utc(self.pending.since, millis=True),
            "limit": max(1, min(PAGE_LIMIT, budget - self.read)),
        }
        if self.pending.page:
            params["cursor"] = self.pending.page
        return params

    def _take(self, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Posts not read before (committed overlap, previous page), and the high-water mark updated."""
        skip = self.seen | set(self.pending.last)
        fresh = []
        for post in raw:
            uri, moment = str(post["uri"]), sort_at(post)
            if moment is not None:
                self.pending.high = max(self.pending.high or moment, moment)
                self.pending.top[uri] = moment
            if uri not in skip:
                fresh.append(post)
                skip.add(uri)
        floor = (self.pending.high or 0) - self.client.overlap
        self.pending.top = {u: t for u, t in self.pending.top.items() if t >= floor}
        return fresh

    def _advance(self, raw: list[dict[str, Any]], next_page: Any) -> None:
        """After a page: follow the next cursor, or commit (done), or drop the pagination (stalled)."""
        next_page = str(next_page) if next_page else None
        self.empty = 0 if raw else self.empty + 1
        if not next_page:
            self.outcome = "done"
            self._commit()
        elif next_page == self.pending.page or next_page in self.visited:
            self._stall(f"cursor {next_page} again")
        elif self.empty >= EMPTY_PAGES:
            self._stall(f"{self.empty} pages in a row without posts")
        else:
            self.visited.add(next_page)
            self.pending.page = next_page
            if raw:  # an empty page leaves the previous page's URIs to drop if they come again
                self.pending.last = [str(p["uri"]) for p in raw]
            self.state.pending = self.pending

    def _commit(self) -> None:
        """The pagination is done: `since` moves to the newest sortAt read less the overlap."""
        pending = self.pending
        since = (
            pending.since if pending.high is None else max(pending.since, pending.high - self.client.overlap)
        )
        kept = {u for u in self.state.seen} if pending.high is None else set()
        kept |= {u for u, t in pending.top.items() if t >= since}
        self.state.since, self.state.seen, self.state.pending = since, sorted(kept), None

    def _page(self, fresh: list[dict[str, Any]], remaining: int | None) -> FeedPage:
        authors = (p.get("author") for p in fresh)
        dids = [str(a["did"]) for a in authors if isinstance(a, dict) and a.get("did")]
        profiles, problem = self.client.profiles(dids, self.tag, self.attempts)
        if problem:
            self.notes.append({"kind": "profiles_unavailable", "detail": problem})
        requests_, self.mark = self.attempts.requests - self.mark, self.attempts.requests
        notes, self.notes = self.notes, []
        return FeedPage(
            source=SOURCE,
            origin=self.client.service,
            payload={"service": self.client.service, "posts": fresh, "profiles": profiles},
            cursor=dump_cursor(self.state),
            result_count=len(fresh),
            requests=requests_,
            rate_limit_remaining=remaining,
            partial_errors=notes,
        )

    def _restart(self, exc: CursorRejected) -> None:
        """Drop a rejected page cursor once and read the pagination again from its top."""
        if self.restarted or not self.pending.page:
            raise SourceError("bad_request", f"Bluesky rejected the search: {exc}", 400)
        log.warning(
            "Bluesky rejected the saved page cursor (%s); searching #%s again from the top",
            exc,
            self.tag,
            extra=event("cursor_rejected", tag=self.tag, source=SOURCE),
        )
        self.pending.page, self.restarted = None, True  # `last` stays: its posts are not read twice
        self.notes.append({"kind": "cursor_rejected", "detail": str(exc)})

    def _stall(self, detail: str) -> None:
        log.warning(
            "Bluesky: pagination of #%s stalled (%s); stopping, since is kept",
            self.tag,
            detail,
            extra=event("pagination_stalled", tag=self.tag, source=SOURCE),
        )
        self.outcome = "stalled"
        self.state.pending = None
        self.notes.append({"kind": "pagination_stalled", "detail": detail})


def _query_error(status: int, body: bytes, params: dict[str, Any]) -> Exception:
    """Map an XRPC error (`{"error": name, "message": text}`) to what the client acts on."""
    name, message = _xrpc_error(body)
    if name == "ExpiredToken":
        return TokenExpired(message)
    if status == 401 or name in ("InvalidToken", "AuthMissing", "AuthenticationRequired"):
        return TokenInvalid(message)
    if status == 403:
        return SourceError("access_refused", f"Bluesky refused the request (403 {name}): {message}", 403)
    if status == 400 and "cursor" in params and "cursor" in f"{name} {message}".lower():
        return CursorRejected(f"{name}: {message}")
    return SourceError("bad_request", f"Bluesky answered {status} {name}: {message}", status)


def _login_error(status: int, body: bytes) -> Exception:
    """A refused createSession: wrong handle or app password, a 2FA demand, a taken-down account."""
    name, message = _xrpc_error(body)
    if status == 401 or name in ("AuthenticationRequired", "AuthFactorTokenRequired"):
        return SourceError(
            "invalid_credentials",
            f"Bluesky refused the login ({status} {name}: {message}): check BLUESKY_HANDLE and "
            "BLUESKY_APP_PASSWORD (an app password, not the account password)",
            status,
        )
    if name == "AccountTakedown" or status == 403:
        return SourceError(
            "access_refused", f"Bluesky refused the account ({status} {name}: {message})", status
        )
    return SourceError("bad_request", f"Bluesky answered {status} {name} to the login: {message}", status)


def _xrpc_error(body: bytes) -> tuple[str, str]:
    """(error name, message) of an XRPC error body, shortened; empty strings when absent."""
    payload = parse_json(body)
    payload = payload if isinstance(payload, dict) else {}
    return str(payload.get("error") or "")[:60], " ".join(str(payload.get("message") or "").split())[:200]


def _session_of(payload: dict[str, Any]) -> Session:
    """The tokens of a createSession/refreshSession answer; a 200 without them is malformed."""
    try:
        return Session(
            did=str(payload["did"]), access=str(payload["accessJwt"]), refresh=str(payload["refreshJwt"])
        )
    except KeyError:
        raise SourceError("source_unavailable", "Bluesky answered a session request without tokens") from None


def dump_cursor(state: SearchState) -> str:
    """The opaque, stable text of a cursor (times in Unix seconds)."""
    data: dict[str, Any] = {"v": 1, "since": state.since, "seen": state.seen}
    if state.pending is not None:
        p = state.pending
        data["pending"] = {"since": p.since, "page": p.page, "high": p.high, "top": p.top, "last": p.last}
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def load_cursor(cursor: str | None, tag: str) -> SearchState:
    """The state of a saved cursor; an unreadable one starts afresh (logged)."""
    if not cursor:
        return SearchState()
    try:
        data = json.loads(cursor)
        if data.get("v") != 1:
            raise ValueError("unknown version")
        pending = data.get("pending")
        return SearchState(
            since=None if data.get("since") is None else float(data["since"]),
            seen=[str(u) for u in data.get("seen") or []],
            pending=None
            if not pending
            else Pending(
                since=float(pending["since"]),
                page=pending.get("page"),
                high=None if pending.get("high") is None else float(pending["high"]),
                top={str(u): float(t) for u, t in (pending.get("top") or {}).items()},
                last=[str(u) for u in pending.get("last") or []],
            ),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning(
            "the saved Bluesky cursor for #%s is unreadable; starting afresh",
            tag,
            extra=event("cursor_unreadable", tag=tag, source=SOURCE),
        )
        return SearchState()
