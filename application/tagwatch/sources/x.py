"""X API v2 recent-search client: pagination by next_token, since_id fallbacks, X's error shapes.

Shaped like twarc's Twarc2 but safer. The HTTP machinery it shares with every source (deadlines,
retries, bounded and interruptible rate-limit waits announced to the collector, attempt counting,
metrics) lives in `sources.http`; this module adds what is X's own: the query, the fields, the
next_token and since_id rejections, the usage cap on a 429 and the auth/credit errors. The token is
never logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from tagwatch.logs import event
from tagwatch.sources.base import Page, SourceError
from tagwatch.sources.http import (
    Attempts,
    HttpClient,
    RateHeaders,
    RetryPolicy,
    parse_json,
    read_body,
)

__all__ = [
    "AUTH_ERRORS",
    "Attempts",
    "NextTokenRejected",
    "RetryPolicy",
    "SinceIdTooOld",
    "XClient",
    "read_body",
]

log = logging.getLogger("tagwatch.collector.source")

SEARCH_PATH = "/2/tweets/search/recent"
FIELDS = {
    "tweet.fields": "created_at,lang,author_id,entities,geo",
    "expansions": "author_id,geo.place_id",
    "user.fields": "username,name,location,public_metrics",
    "place.fields": "country_code,full_name,country",
}
AUTH_ERRORS = {
    401: ("invalid_token", "X rejected the bearer token (401 Unauthorized): check X_BEARER_TOKEN"),
    402: ("credits_depleted", "X refused the read (402): API credits depleted or usage cap reached"),
    403: ("client_not_enrolled", "X refused the app (403 Forbidden): app not enrolled for this endpoint"),
}


class SinceIdTooOld(Exception):
    """X answered 400 because since_id is older than the 7-day search window."""


class NextTokenRejected(Exception):
    """X answered 400 to the next_token it was sent (expired or corrupt pagination state)."""


class XClient(HttpClient):
    """Fetches recent-search pages for one hashtag at a time."""

    label = "X"
    rate_headers = RateHeaders("x-rate-limit-remaining", "x-rate-limit-reset")

    def __init__(self, base_url: str, token: str, *, source: str = "x", **http: Any) -> None:
        super().__init__(source=source, **http)
        self._url = base_url.rstrip("/") + SEARCH_PATH
        self._auth = {"Authorization": f"Bearer {token}"}

    def __repr__(self) -> str:
        return f"XClient(url={self._url!r}, source={self.source!r})"

    def pages(
        self,
        tag: str,
        since_id: str | None,
        next_token: str | None,
        budget: int,
        attempts: Attempts | None = None,
    ) -> Iterator[Page]:
        """Yield pages for `#tag`, following next_token until done or `budget` posts read."""
        attempts = attempts or Attempts()
        read = 0
        while read < budget:
            page = self.fetch_page(tag, since_id, next_token, budget - read, attempts)
            yield page
            read += page.result_count
            since_id, next_token = page.since_id, page.next_token
            if not next_token:
                return

    def fetch_page(
        self,
        tag: str,
        since_id: str | None,
        next_token: str | None,
        max_results: int = 100,
        attempts: Attempts | None = None,
    ) -> Page:
        """One page. A rejected next_token is dropped and a too-old since_id too (each logged), and the
        page is then the first of a pagination begun again; a second rejection fails the tag cleanly."""
        attempts = attempts or Attempts()
        restarted = False
        while True:
            try:
                page = self._page(tag, since_id, next_token, max_results, attempts)
                return replace(page, restarted=restarted)
            except NextTokenRejected as exc:
                self._log_restart("next_token_rejected", tag, "X rejected the saved next_token", exc)
                next_token = None
            except SinceIdTooOld as exc:
                self._log_restart("since_id_reset", tag, "since_id is outside X's 7-day window", exc)
                since_id, next_token = None, None
            restarted = True

    def _log_restart(self, action: str, tag: str, what: str, exc: Exception) -> None:
        log.warning(
            "%s (%s); searching again from the top for #%s",
            what,
            exc,
            tag,
            extra=event(action, tag=tag, source=self.source),
        )

    def _page(
        self, tag: str, since_id: str | None, next_token: str | None, max_results: int, attempts: Attempts
    ) -> Page:
        params: dict[str, Any] = {
            "query": f"#{tag} -is:retweet",
            "max_results": max(10, min(100, max_results)),
            **FIELDS,
        }
        if since_id:
            params["since_id"] = since_id
        if next_token:
            params["next_token"] = next_token
        before = attempts.requests
        payload, remaining = self._get(params, tag, attempts)
        meta = payload.get("meta")
        token = meta.get("next_token") if isinstance(meta, dict) else None
        errors = payload.get("errors")
        return Page(
            payload=payload,
            since_id=since_id,
            next_token=str(token) if token else None,
            rate_limit_remaining=remaining,
            requests=attempts.requests - before,
            partial_errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
            sent_token=next_token,
        )

    def _get(self, params: dict[str, Any], tag: str, attempts: Attempts) -> tuple[dict[str, Any], int | None]:
        """GET with retries; returns (payload, rate-limit remaining). 4xx other than 429 are not retried."""
        answer = self.call(
            "GET",
            self._url,
            tag,
            attempts,
            params=params,
            headers=self._auth,
            client_error=lambda status, body: _client_error(status, body, params),
            check_429=_usage_capped,
        )
        return answer.payload, answer.remaining


def _usage_capped(payload: Any) -> SourceError | None:
    """X's 429 for a usage cap is not a rate limit: waiting does not help, so the run fails."""
    if isinstance(payload, dict) and "usage-capped" in str(payload.get("type", "")):
        return SourceError("usage_capped", f"X usage cap reached: {_describe(payload)}", 429)
    return None


def _client_error(status: int, body: bytes, params: dict[str, Any]) -> Exception:
    """Map a 4xx to the error the collector acts on; detail comes from either X error shape."""
    payload = parse_json(body)
    text = json.dumps(payload) if payload is not None else body.decode("utf-8", "replace")
    detail = _describe(payload) if isinstance(payload, dict) else text[:200]
    if status in AUTH_ERRORS:
        kind, message = AUTH_ERRORS[status]
        return SourceError(kind, f"{message} — {detail}".strip(" —"), status)
    if status == 400 and "next_token" in params and ("next_token" in text or "pagination_token" in text):
        return NextTokenRejected(detail)
    if status == 400 and "since_id" in params and "since_id" in text:
        return SinceIdTooOld(detail)
    return SourceError("bad_request", f"X answered {status}: {detail}", status)


def _describe(body: dict[str, Any]) -> str:
    """A one-line description from problem JSON (title/detail) or a v1-style errors[] list."""
    parts = [str(body[k]) for k in ("title", "detail") if body.get(k)]
    errors = body.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict) and (error.get("message") or error.get("detail")):
            parts.append(str(error.get("message") or error.get("detail")))
    return "; ".join(parts)[:300]
