"""What every HTTP post source needs: deadlines, retries, rate-limit waits, attempt counting, metrics.

One `HttpClient` per remote host. `call()` sends one logical request: each attempt is counted in the
caller's `Attempts` (failed ones too), timed and labelled with the source in the metrics; transient
failures (timeouts, connection errors, 5xx, a 200 whose JSON is malformed) are retried with capped,
jittered backoff; a 429 waits for the window's reset when the headers state a consistent one and backs
off boundedly when they do not. Every wait is announced first through `on_wait` (the collector renews
its lease), logged with its reason, and cut short by `should_stop`. A wait beyond the policy's cap ends
the run instead (`rate_limited`): the next run resumes from the saved cursor. Sources differ only in
their `RateHeaders`, in how they map a 4xx to an error, and in what they do with the payload.
Nothing here logs a request's headers or body, so credentials never reach a log line.
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from tagwatch import metrics, timestamps
from tagwatch.logs import event
from tagwatch.sources.base import SourceError, StopRequested

log = logging.getLogger("tagwatch.collector.source")


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


@dataclass(frozen=True)
class RateHeaders:
    """Where a source states its rate-limit window, and how its reset time is written."""

    remaining: str
    reset: str
    reset_is_iso: bool = False  # Mastodon: an ISO 8601 time; X and Bluesky: Unix seconds

    def read(self, response: requests.Response) -> tuple[int | None, float | None]:
        """(remaining, reset as Unix seconds) from the response; None for a missing or odd value."""
        remaining = header_int(response, self.remaining)
        raw = response.headers.get(self.reset, "").strip()
        if self.reset_is_iso:
            try:
                return remaining, timestamps.to_unix(raw)
            except ValueError:
                return remaining, None
        reset = header_int(response, self.reset)
        return remaining, None if reset is None else float(reset)


@dataclass(frozen=True)
class Answer:
    """A successful response: its JSON payload, headers, and the rate-limit remaining it stated."""

    payload: Any
    headers: Any
    remaining: int | None


class RequestDeadline(Exception):
    """A request took longer than the policy's total deadline (connect + headers + whole body)."""


#: maps (status, body bytes) of a 4xx other than 429 to the exception the caller acts on
ClientErrorMap = Callable[[int, bytes], Exception]
#: looks at a 429's parsed body; returns an error to raise at once (e.g. X's usage cap), else None
Check429 = Callable[[Any], SourceError | None]


class HttpClient:
    """Requests to one host for one source, under one retry policy, with injectable sleep and clocks."""

    label = "the source"  # how log lines and errors name the remote side ("X", "Bluesky", a server)
    rate_headers = RateHeaders("x-rate-limit-remaining", "x-rate-limit-reset")

    def __init__(
        self,
        *,
        source: str,
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_wait: Callable[[float], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.source = source
        self.session = session or requests.Session()
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self.monotonic = monotonic
        self.on_wait = on_wait
        self.should_stop = should_stop
        self._window_reset: float | None = None  # a 200 said remaining 0: no request before this time

    def now(self) -> float:
        """The injected wall clock (Unix seconds)."""
        return self._clock()

    def call(
        self,
        method: str,
        url: str,
        tag: str,
        attempts: Attempts,
        *,
        client_error: ClientErrorMap,
        expect: type | tuple[type, ...] = dict,
        check_429: Check429 | None = None,
        **request: Any,
    ) -> Answer:
        """One request with retries; 4xx other than 429 are not retried but mapped by `client_error`.

        `expect` is the JSON type a 200 must carry (anything else counts as malformed and is retried);
        `request` goes to requests as is (params, json, headers).
        """
        if self.monotonic() >= attempts.deadline:
            raise SourceError("time_budget_spent", f"the time budget for #{tag} is spent; resuming next run")
        failures = rate_waits = 0
        while True:
            self._wait_for_window(tag, attempts)
            response, body, problem = self._send(method, url, attempts, request)
            if response is not None:
                if response.status_code == 200:
                    payload = parse_json(body)
                    if isinstance(payload, expect):
                        return Answer(payload, response.headers, self._note_window(response))
                    problem = "malformed JSON in a 200 response"
                elif response.status_code == 429:
                    rate_waits += 1
                    self._after_429(response, body, tag, rate_waits, attempts, check_429)
                    continue
                elif response.status_code < 500:
                    raise client_error(response.status_code, body)
            failures += 1
            if failures > self.policy.max_retries:
                raise SourceError(
                    "source_unavailable", f"{self.label} did not answer after {failures} attempts: {problem}"
                )
            self._retry_wait(failures, problem, tag, attempts)

    def _send(
        self, method: str, url: str, attempts: Attempts, request: dict[str, Any]
    ) -> tuple[requests.Response | None, bytes, str]:
        """One HTTP attempt, timed and counted; (None, b"", reason) on timeout or connection failure."""
        attempts.requests += 1
        started = time.monotonic()
        connect, read = self.policy.timeout
        response: requests.Response | None = None
        body, problem, status = b"", "", "error"
        try:
            response = self.session.request(
                method,
                url,
                timeout=(connect, min(read, self.policy.request_deadline)),
                stream=True,
                **request,
            )
            body = read_body(response, started + self.policy.request_deadline)
        except (requests.Timeout, RequestDeadline):
            response, problem = None, f"timeout (deadline {self.policy.request_deadline:g} s)"
        except requests.RequestException as exc:
            response, problem = None, f"connection error ({type(exc).__name__})"
        else:
            status, problem = str(response.status_code), f"HTTP {response.status_code}"
            remaining = header_int(response, self.rate_headers.remaining)
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
                "source_unavailable",
                f"{self.label} did not answer within the time budget for #{tag}: {problem}",
            )
        self.pause(
            delay,
            "%s request failed (%s); retrying in %.1f s",
            (self.label, problem, delay),
            "source_retry",
            tag,
        )

    def _note_window(self, response: requests.Response) -> int | None:
        """Remember a window used up by this 200 (remaining 0), so the next request waits for its reset."""
        remaining, reset = self.rate_headers.read(response)
        if remaining == 0 and reset is not None:
            self._window_reset = min(reset, self._clock() + self.policy.window_seconds)
        return remaining

    def _wait_for_window(self, tag: str, attempts: Attempts) -> None:
        """Before a request: if the last answer used up the window, wait for its reset (bounded)."""
        reset, self._window_reset = self._window_reset, None
        if reset is not None and reset > self._clock():
            self._rate_wait(reset - self._clock() + 1, "the window is used up (remaining 0)", tag, attempts)

    def _after_429(
        self,
        response: requests.Response,
        body: bytes,
        tag: str,
        waits: int,
        attempts: Attempts,
        check_429: Check429 | None,
    ) -> None:
        """Wait for a consistent reset, back off boundedly on an inconsistent one, or give up."""
        if check_429 is not None and (error := check_429(parse_json(body))) is not None:
            raise error
        if waits > self.policy.max_rate_limit_waits:
            raise SourceError("rate_limited", f"{self.label} still answered 429 after {waits - 1} waits", 429)
        remaining, reset = self.rate_headers.read(response)
        now = self._clock()
        if reset is not None and remaining in (None, 0) and now < reset <= now + self.policy.window_seconds:
            self._rate_wait(reset - now + 1, f"429 until {self.rate_headers.reset}", tag, attempts)
        else:
            delay = self.policy.backoff(waits, self.policy.rate_limit_backoff_base)
            self._rate_wait(delay, "429 without a consistent reset; backing off", tag, attempts)

    def _rate_wait(self, seconds: float, reason: str, tag: str, attempts: Attempts) -> None:
        """Wait `seconds` for the rate limit (the tag's time budget stops meanwhile), or end the run if
        that is beyond the cap: cursors are saved and the next run resumes."""
        if seconds > self.policy.max_rate_limit_wait:
            log.warning(
                "%s rate limit: waiting %.0f s (%s) is beyond the %.0f s cap; ending this run",
                self.label,
                seconds,
                reason,
                self.policy.max_rate_limit_wait,
                extra=event(
                    "rate_limit_over_cap", tag=tag, source=self.source, wait_seconds=round(seconds, 3)
                ),
            )
            raise SourceError(
                "rate_limited", f"{self.label} rate limit: a {seconds:.0f} s wait is beyond the cap", 429
            )
        attempts.deadline += seconds
        self.pause(
            seconds,
            "%s rate limit: waiting %.0f s (%s)",
            (self.label, seconds, reason),
            "rate_limit_wait",
            tag,
            reason,
        )

    def pause(
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


def parse_json(body: bytes) -> Any:
    """The JSON value of `body`, or None when it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return None


def header_int(response: requests.Response, name: str) -> int | None:
    """An integer header, or None when missing or not an integer (read with .get(): never a KeyError)."""
    try:
        return int(response.headers.get(name, ""))
    except ValueError:
        return None


def body_text(body: bytes, limit: int = 200) -> str:
    """A short, printable excerpt of a body for an error message."""
    return body.decode("utf-8", "replace")[:limit]
