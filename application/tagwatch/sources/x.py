"""X API v2 recent-search client: one session, deadlines, pagination, rate limits and retries.

Shaped like twarc's Twarc2 but safer: headers are read with .get(), retries and waits are capped,
sleep and clock are injected, every wait is logged with its reason and announced first (so the
collector can renew its lease), every wait can be cut short by a stop request, and the token is
never logged. Every HTTP attempt is counted in the caller's `Attempts`, failed ones included.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import requests

from tagwatch import metrics
from tagwatch.logs import event
from tagwatch.sources.base import Page, SourceError, StopRequested

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
    """How hard to try: bounded retries, a deadline per request, and caps on every wait.

    `timeout` is requests' (connect, read) pair, where read applies to each socket read;
    `request_deadline` bounds the whole request (connect, headers and body) however slowly bytes come.
    A rate-limit wait longer than `max_rate_limit_wait` ends the run instead (X's window is 900 s).
    """

    timeout: tuple[float, float] = (3.05, 10.0)
    request_deadline: float = 20.0
    max_retries: int = 4
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    rate_limit_backoff_base: float = 5.0
    max_rate_limit_wait: float = 300.0
    max_rate_limit_waits: int = 3
    window_seconds: float = 900.0

    def backoff(self, attempt: int, base: float | None = None) -> float:
        """Exponential backoff with jitter, never below one second (no busy loop), never above the cap."""
        delay = min(self.backoff_cap, (base or self.backoff_base) * 2 ** (attempt - 1))
        return max(1.0, delay * (0.5 + random.random() / 2))


@dataclass
class Attempts:
    """One tag's HTTP attempts (every retry counts) and its deadline on the client's monotonic clock."""

    deadline: float = math.inf
    requests: int = 0


class SinceIdTooOld(Exception):
    """X answered 400 because since_id is older than the 7-day search window."""


class NextTokenRejected(Exception):
    """X answered 400 to the next_token it was sent (expired or corrupt pagination state)."""


class RequestDeadline(Exception):
    """A request took longer than the policy's total deadline (connect + headers + whole body)."""


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
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_wait: Callable[[float], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self._url = base_url.rstrip("/") + SEARCH_PATH
        self._auth = {"Authorization": f"Bearer {token}"}
        self.source = source
        self.session = session or requests.Session()
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self.monotonic = monotonic
        self.on_wait = on_wait
        self.should_stop = should_stop
        self._window_reset: float | None = None  # a 200 said remaining 0: no request before this time

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
        if self.monotonic() >= attempts.deadline:
            raise SourceError("time_budget_spent", f"the time budget for #{tag} is spent; resuming next run")
        failures = rate_waits = 0
        while True:
            self._wait_for_window(tag, attempts)
            response, body, problem = self._send(params, attempts)
            if response is not None:
                if response.status_code == 200:
                    payload = _parse_json(body)
                    if isinstance(payload, dict):
                        return payload, self._note_window(response)
                    problem = "malformed JSON in a 200 response"
                elif response.status_code == 429:
                    rate_waits += 1
                    self._after_429(response, body, tag, rate_waits, attempts)
                    continue
                elif response.status_code < 500:
                    raise _client_error(response.status_code, body, params)
            failures += 1
            if failures > self.policy.max_retries:
                raise SourceError(
                    "source_unavailable", f"X did not answer after {failures} attempts: {problem}"
                )
            self._retry_wait(failures, problem, tag, attempts)

    def _send(
        self, params: dict[str, Any], attempts: Attempts
    ) -> tuple[requests.Response | None, bytes, str]:
        """One HTTP attempt, timed and counted; (None, b"", reason) on timeout or connection failure."""
        attempts.requests += 1
        started = time.monotonic()
        connect, read = self.policy.timeout
        response: requests.Response | None = None
        body, problem, status = b"", "", "error"
        try:
            response = self.session.get(
                self._url,
                params=params,
                headers=self._auth,
                timeout=(connect, min(read, self.policy.request_deadline)),
                stream=True,
            )
            body = read_body(response, started + self.policy.request_deadline)
        except (requests.Timeout, RequestDeadline):
            response, problem = None, f"timeout (deadline {self.policy.request_deadline:g} s)"
        except requests.RequestException as exc:
            response, problem = None, f"connection error ({type(exc).__name__})"
        else:
            status, problem = str(response.status_code), f"HTTP {response.status_code}"
            remaining = _header_int(response, "x-rate-limit-remaining")
            if remaining is not None:
                metrics.SOURCE_RATE_LIMIT_REMAINING.labels(source=self.source).set(remaining)
        metrics.SOURCE_REQUESTS.labels(source=self.source, status=status).inc()
        metrics.SOURCE_DURATION.labels(source=self.source).observe(time.monotonic() - started)
        return response, body, problem

    def _retry_wait(self, failures: int, problem: str, tag: str, attempts: Attempts) -> None:
        """Back off before retrying a failed attempt, unless that would overrun the tag's time budget."""
        delay = self.policy.backoff(failures)
        if self.monotonic() + delay > attempts.deadline:
            raise SourceError(
                "source_unavailable", f"X did not answer within the time budget for #{tag}: {problem}"
            )
        self._pause(delay, "X request failed (%s); retrying in %.1f s", (problem, delay), "source_retry", tag)

    def _note_window(self, response: requests.Response) -> int | None:
        """Remember a window used up by this 200 (remaining 0), so the next request waits for its reset."""
        remaining = _header_int(response, "x-rate-limit-remaining")
        reset = _header_int(response, "x-rate-limit-reset")
        if remaining == 0 and reset is not None:
            self._window_reset = min(float(reset), self._clock() + self.policy.window_seconds)
        return remaining

    def _wait_for_window(self, tag: str, attempts: Attempts) -> None:
        """Before a request: if the last answer used up the window, wait for its reset (bounded)."""
        reset, self._window_reset = self._window_reset, None
        if reset is not None and reset > self._clock():
            self._rate_wait(reset - self._clock() + 1, "the window is used up (remaining 0)", tag, attempts)

    def _after_429(
        self, response: requests.Response, body: bytes, tag: str, waits: int, attempts: Attempts
    ) -> None:
        """Wait for a consistent reset, back off boundedly on an inconsistent one, or give up."""
        payload = _parse_json(body)
        if isinstance(payload, dict) and "usage-capped" in str(payload.get("type", "")):
            raise SourceError("usage_capped", f"X usage cap reached: {_describe(payload)}", 429)
        if waits > self.policy.max_rate_limit_waits:
            raise SourceError("rate_limited", f"X still answered 429 after {waits - 1} waits", 429)
        reset = _header_int(response, "x-rate-limit-reset")
        remaining = _header_int(response, "x-rate-limit-remaining")
        now = self._clock()
        if reset is not None and remaining in (None, 0) and now < reset <= now + self.policy.window_seconds:
            self._rate_wait(reset - now + 1, "429 until x-rate-limit-reset", tag, attempts)
        else:
            delay = self.policy.backoff(waits, self.policy.rate_limit_backoff_base)
            self._rate_wait(delay, "429 without a consistent reset; backing off", tag, attempts)

    def _rate_wait(self, seconds: float, reason: str, tag: str, attempts: Attempts) -> None:
        """Wait `seconds` for the rate limit (the tag's time budget stops meanwhile), or end the run if
        that is beyond the cap: cursors are saved and the next run resumes."""
        if seconds > self.policy.max_rate_limit_wait:
            log.warning(
                "X rate limit: waiting %.0f s (%s) is beyond the %.0f s cap; ending this run",
                seconds,
                reason,
                self.policy.max_rate_limit_wait,
                extra=event(
                    "rate_limit_over_cap", tag=tag, source=self.source, wait_seconds=round(seconds, 3)
                ),
            )
            raise SourceError("rate_limited", f"X rate limit: a {seconds:.0f} s wait is beyond the cap", 429)
        attempts.deadline += seconds
        self._pause(
            seconds, "X rate limit: waiting %.0f s (%s)", (seconds, reason), "rate_limit_wait", tag, reason
        )

    def _pause(
        self, seconds: float, message: str, args: tuple, action: str, tag: str, reason: str | None = None
    ) -> None:
        """Announce the wait (the collector renews its lease), log it, sleep, and honour a stop request."""
        if self.on_wait is not None:
            self.on_wait(seconds)
        fields = {"tag": tag, "source": self.source, "wait_seconds": round(seconds, 3), "wait_reason": reason}
        log.warning(message, *args, extra=event(action, **fields))
        self._sleep(seconds)
        if self.should_stop():
            raise StopRequested()


def read_body(response: requests.Response, deadline: float) -> bytes:
    """The whole body, or RequestDeadline once `deadline` (time.monotonic) passes.

    requests' read timeout applies to each socket read, so a server sending one byte every few
    seconds could hold a request for ever; a timer shuts the socket down at the deadline instead.
    """
    sock = _socket_of(response)
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), _shutdown, (sock,)) if sock else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        body = response.content
    except requests.RequestException as exc:
        response.close()
        if time.monotonic() >= deadline:
            raise RequestDeadline() from exc
        raise
    finally:
        if timer is not None:
            timer.cancel()
    if time.monotonic() > deadline:
        raise RequestDeadline()
    return body


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket a streamed response is read from: its pooled connection's, or (when the server
    closes after the body, so http.client already let go of the connection) the body reader's."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is None:
        reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _shutdown(sock: socket.socket) -> None:
    """Make a blocked read on `sock` return at once (called from the deadline timer's thread)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _client_error(status: int, body: bytes, params: dict[str, Any]) -> Exception:
    """Map a 4xx to the error the collector acts on; detail comes from either X error shape."""
    payload = _parse_json(body)
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


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _header_int(response: requests.Response, name: str) -> int | None:
    try:
        return int(response.headers.get(name, ""))
    except ValueError:
        return None
