"""X API v2 recent-search client: one session, timeouts, pagination, rate limits and retries.

Shaped like twarc's Twarc2 but safer: headers are read with .get(), retries and waits are capped,
sleep and clock are injected, every wait is logged with its reason, and the token is never logged.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

from tagwatch import metrics
from tagwatch.logs import event
from tagwatch.sources.base import Page, SourceError

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


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: bounded retries with exponential backoff and a cap on any single wait."""

    timeout: tuple[float, float] = (3.05, 30.0)
    max_retries: int = 4
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    max_rate_limit_wait: float = 960.0
    max_rate_limit_waits: int = 3

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, never below one second (no busy loop)."""
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return max(1.0, delay * (0.5 + random.random() / 2))


class SinceIdTooOld(Exception):
    """X answered 400 because since_id is older than the 7-day search window."""


class XClient:
    """Fetches recent-search pages for one hashtag at a time."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        source: str = "x",
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + SEARCH_PATH
        self._auth = {"Authorization": f"Bearer {token}"}
        self.source = source
        self.session = session or requests.Session()
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self.on_wait = on_wait

    def __repr__(self) -> str:
        return f"XClient(url={self._url!r}, source={self.source!r})"

    def pages(self, tag: str, since_id: str | None, next_token: str | None, budget: int) -> Iterator[Page]:
        """Yield pages for `#tag` newest first, following next_token until done or `budget` posts read."""
        read = 0
        while read < budget:
            page = self.fetch_page(tag, since_id, next_token, max_results=budget - read)
            yield page
            read += page.result_count
            since_id, next_token = page.since_id, page.next_token
            if not next_token:
                return

    def fetch_page(
        self, tag: str, since_id: str | None, next_token: str | None, max_results: int = 100
    ) -> Page:
        """One page; a too-old since_id is dropped (the budget still bounds the read)."""
        try:
            return self._page(tag, since_id, next_token, max_results)
        except SinceIdTooOld:
            log.warning(
                "since_id %s is outside X's 7-day window; searching the whole window instead",
                since_id,
                extra=event("since_id_reset", tag=tag, source=self.source),
            )
            return self._page(tag, None, None, max_results)

    def _page(self, tag: str, since_id: str | None, next_token: str | None, max_results: int) -> Page:
        params: dict[str, Any] = {
            "query": f"#{tag} -is:retweet",
            "max_results": max(10, min(100, max_results)),
            **FIELDS,
        }
        if since_id:
            params["since_id"] = since_id
        if next_token:
            params["next_token"] = next_token
        payload, remaining, requests_made = self._get(params, tag)
        meta = payload.get("meta") or {}
        return Page(
            payload=payload,
            since_id=since_id,
            next_token=meta.get("next_token") or None,
            rate_limit_remaining=remaining,
            requests=requests_made,
            partial_errors=[e for e in payload.get("errors") or [] if isinstance(e, dict)],
        )

    def _get(self, params: dict[str, Any], tag: str) -> tuple[dict[str, Any], int | None, int]:
        """GET with retries; returns (payload, rate-limit remaining, requests made)."""
        failures = rate_waits = requests_made = 0
        while True:
            requests_made += 1
            response, problem = self._send(params)
            if response is not None and response.status_code == 200:
                payload = _json(response)
                if isinstance(payload, dict):
                    return payload, _header_int(response, "x-rate-limit-remaining"), requests_made
                problem = "malformed JSON in a 200 response"
            if response is not None and response.status_code == 429:
                rate_waits += 1
                self._wait_for_reset(response, tag, rate_waits)
                continue
            if response is not None and response.status_code not in (200,) and response.status_code < 500:
                raise _client_error(response)
            failures += 1
            if failures > self.policy.max_retries:
                raise SourceError(
                    "source_unavailable", f"X did not answer after {failures} attempts: {problem}"
                )
            delay = self.policy.backoff(failures)
            log.warning(
                "X request failed (%s); retrying in %.1f s",
                problem,
                delay,
                extra=event("source_retry", tag=tag, source=self.source, wait_seconds=round(delay, 3)),
            )
            self._sleep(delay)

    def _send(self, params: dict[str, Any]) -> tuple[requests.Response | None, str]:
        """One HTTP call, timed and counted; (None, reason) on timeout or connection failure."""
        started = self._clock()
        try:
            response = self.session.get(
                self._url, params=params, headers=self._auth, timeout=self.policy.timeout
            )
        except requests.Timeout:
            status, response, problem = "error", None, "timeout"
        except requests.RequestException as exc:
            status, response, problem = "error", None, f"connection error ({type(exc).__name__})"
        else:
            status, problem = str(response.status_code), f"HTTP {response.status_code}"
            remaining = _header_int(response, "x-rate-limit-remaining")
            if remaining is not None:
                metrics.SOURCE_RATE_LIMIT_REMAINING.labels(source=self.source).set(remaining)
        metrics.SOURCE_REQUESTS.labels(source=self.source, status=status).inc()
        metrics.SOURCE_DURATION.labels(source=self.source).observe(max(0.0, self._clock() - started))
        return response, problem

    def _wait_for_reset(self, response: requests.Response, tag: str, waits: int) -> None:
        """Sleep until x-rate-limit-reset (bounded), or raise when the cap is spent or it is a usage cap."""
        body = _json(response)
        if isinstance(body, dict) and "usage-capped" in str(body.get("type", "")):
            raise SourceError("usage_capped", f"X usage cap reached: {_describe(body)}", 429)
        reset = _header_int(response, "x-rate-limit-reset")
        wait = reset - self._clock() + 1 if reset is not None else self.policy.backoff(waits) * 15
        wait = max(1.0, wait)
        if waits > self.policy.max_rate_limit_waits or wait > self.policy.max_rate_limit_wait:
            raise SourceError(
                "rate_limited", f"X rate limit: reset in {wait:.0f} s is beyond the wait cap", 429
            )
        log.warning(
            "X rate limit reached; waiting %.0f s for the window to reset",
            wait,
            extra=event("rate_limit_wait", tag=tag, source=self.source, wait_seconds=round(wait, 3)),
        )
        if self.on_wait is not None:
            self.on_wait(wait)
        self._sleep(wait)


def _client_error(response: requests.Response) -> Exception:
    """Map a 4xx to the error the collector acts on; detail comes from either X error shape."""
    body = _json(response)
    detail = _describe(body) if isinstance(body, dict) else (response.text or "")[:200]
    if response.status_code in AUTH_ERRORS:
        kind, message = AUTH_ERRORS[response.status_code]
        return SourceError(kind, f"{message} — {detail}".strip(" —"), response.status_code)
    if response.status_code == 400 and "since_id" in str(body):
        return SinceIdTooOld(detail)
    return SourceError("bad_request", f"X answered {response.status_code}: {detail}", response.status_code)


def _describe(body: dict[str, Any]) -> str:
    """A one-line description from problem JSON (title/detail) or a v1-style errors[] list."""
    parts = [str(body[k]) for k in ("title", "detail") if body.get(k)]
    for error in body.get("errors") or []:
        if isinstance(error, dict) and (error.get("message") or error.get("detail")):
            parts.append(str(error.get("message") or error.get("detail")))
    return "; ".join(parts)[:300]


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _header_int(response: requests.Response, name: str) -> int | None:
    try:
        return int(response.headers.get(name, ""))
    except ValueError:
        return None
