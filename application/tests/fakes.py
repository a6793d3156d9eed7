"""Fakes for tests: a fixed clock, a recorded sleep, a scriptable fake X API, and a real HTTP server.

The fake X API serves a corpus of posts per the recent-search contract (since_id, next_token,
max_results, includes, meta) as a requests transport adapter or as a real HTTP server on 127.0.0.1.
Tests can queue scripted responses (429, 5xx, text bodies, timeouts) in front of it, or set a
`fault` that decides per request; over real HTTP a scripted answer can also hang, trickle its body
byte by byte, or reset the connection half-way through the body. `serve_fake` is that server for
any fake (the Mastodon and Bluesky fakes use it too): it hands each request over as a `FakeRequest`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

FAKE_BASE_URL = "http://fake-x.test"
NOW = 1_795_000_000.0  # 2026-11-18T09:46:40Z, a fixed "now" for deterministic sample data
OK_HEADERS = {"x-rate-limit-limit": "450", "x-rate-limit-remaining": "449", "x-rate-limit-reset": "0"}


class FixedClock:
    """time.time stand-in that moves only when told."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordedSleep:
    """time.sleep stand-in: records each wait and advances the clock by it."""

    def __init__(self, clock: FixedClock | None = None) -> None:
        self.clock = clock
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)


@dataclass
class Scripted:
    """A canned answer: status, JSON or text body, headers; or an exception to raise.

    Over real HTTP only: `hang` seconds before answering at all, `trickle` seconds between body
    bytes, `cut` = send only that many body bytes (Content-Length promises all) and reset the connection.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raises: Exception | None = None
    hang: float = 0.0
    trickle: float = 0.0
    cut: int | None = None

    def encoded(self) -> tuple[bytes, str]:
        """The body bytes and their content type (HTML for a text body starting with '<')."""
        if isinstance(self.body, str):
            kind = "text/html" if self.body.lstrip().startswith("<") else "text/plain"
            return self.body.encode(), kind
        return json.dumps(self.body).encode(), "application/json"


def make_post(
    post_id: int, tags: list[str], author: str = "u1", lang: str = "en", **extra: Any
) -> dict[str, Any]:
    """An X API v2 post with hashtags in entities."""
    text = "hello " + " ".join(f"#{t}" for t in tags)
    return {
        "id": str(post_id),
        "text": text,
        "created_at": f"2026-11-18T0{post_id % 10}:00:00.000Z",
        "lang": lang,
        "author_id": author,
        "entities": {"hashtags": [{"start": 0, "end": len(t) + 1, "tag": t} for t in tags]},
        **extra,
    }


def make_user(user_id: str, username: str, followers: int, location: str = "Berlin") -> dict[str, Any]:
    """An X API v2 user with public_metrics."""
    return {
        "id": user_id,
        "username": username,
        "name": username.title(),
        "location": location,
        "public_metrics": {"followers_count": followers},
    }


class FakeXApi:
    """An in-memory recent-search endpoint over `posts` (newest id first), honouring the contract."""

    def __init__(
        self,
        posts: list[dict[str, Any]],
        users: list[dict[str, Any]],
        page_size: int | None = None,
        places: list[dict[str, Any]] | None = None,
    ) -> None:
        self.posts = sorted(posts, key=lambda p: int(p["id"]), reverse=True)
        self.users = {u["id"]: u for u in users}
        self.places = {p["id"]: p for p in places or []}
        self.page_size = page_size
        self.script: deque[Scripted] = deque()
        self.fault: Callable[[dict[str, str]], Scripted | None] | None = None
        self.calls: list[dict[str, str]] = []
        self.served: list[str] = []
        self.lock = threading.Lock()
        self.answered = threading.Condition(self.lock)

    def add(self, *posts: dict[str, Any]) -> None:
        """New posts appear (as time passes)."""
        self.posts = sorted([*self.posts, *posts], key=lambda p: int(p["id"]), reverse=True)

    def answer(self, params: dict[str, str]) -> Scripted:
        """The scripted answer if one is queued, else the fault's answer if any, else a corpus page."""
        with self.lock:
            self.calls.append(params)
            self.answered.notify_all()
            if self.script:
                return self.script.popleft()
        faulty = self.fault(params) if self.fault is not None else None
        if faulty is not None:
            return faulty
        return Scripted(200, self.search(params), OK_HEADERS)

    def search(self, params: dict[str, str]) -> dict[str, Any]:
        tag = params["query"].split()[0].lstrip("#").lower()
        since = int(params.get("since_id") or 0)
        until = int(params["next_token"][2:]) if params.get("next_token") else None
        size = self.page_size or int(params.get("max_results", 10))
        matches = [
            p
            for p in self.posts
            if int(p["id"]) > since
            and (until is None or int(p["id"]) < until)
            and any(h["tag"].lower() == tag for h in p["entities"]["hashtags"])
        ]
        page, more = matches[:size], len(matches) > size
        return self.page(page, f"nt{page[-1]['id']}" if more else None)

    def page(self, posts: list[dict[str, Any]], next_token: str | None) -> dict[str, Any]:
        """`posts` as a response body with their authors and places in includes (recorded as served)."""
        with self.lock:
            self.served.extend(p["id"] for p in posts)
        if not posts:
            return {"meta": {"result_count": 0}}
        meta = {"newest_id": posts[0]["id"], "oldest_id": posts[-1]["id"], "result_count": len(posts)}
        if next_token:
            meta["next_token"] = next_token
        authors = {p.get("author_id") for p in posts}
        includes: dict[str, Any] = {"users": [u for uid, u in self.users.items() if uid in authors]}
        place_ids = {(p.get("geo") or {}).get("place_id") for p in posts}
        if place_ids & set(self.places):
            includes["places"] = [place for pid, place in self.places.items() if pid in place_ids]
        return {"data": posts, "includes": includes, "meta": meta}

    def wait_for_calls(self, count: int, timeout: float) -> bool:
        """Block until at least `count` requests arrived (True) or `timeout` passed (False)."""
        with self.answered:
            return self.answered.wait_for(lambda: len(self.calls) >= count, timeout)


class FakeXTransport(BaseAdapter):
    """Mount on a requests.Session to answer X calls from a FakeXApi without a socket."""

    def __init__(self, api: FakeXApi) -> None:
        super().__init__()
        self.api = api

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        params = {k: v[-1] for k, v in parse_qs(urlsplit(request.url or "").query).items()}
        params["_authorization"] = request.headers.get("Authorization", "")
        answer = self.api.answer(params)
        if answer.raises is not None:
            raise answer.raises
        response = requests.Response()
        response.status_code = answer.status
        response._content, content_type = answer.encoded()
        response.headers = CaseInsensitiveDict({"content-type": content_type, **answer.headers})
        response.request, response.url = request, request.url or ""
        return response

    def close(self) -> None:
        """Nothing to release."""


def fake_session(api: FakeXApi) -> requests.Session:
    """A session whose requests to FAKE_BASE_URL go to `api`."""
    session = requests.Session()
    session.mount(FAKE_BASE_URL + "/", FakeXTransport(api))
    return session


@dataclass
class FakeRequest:
    """What a fake server over real HTTP received: method, path, query (every value), headers, body."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def param(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query parameter."""
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class ScriptedFake:
    """A fake service behind `serve_fake`: records every request, then answers with the next queued
    `Scripted`, else the `fault`'s answer, else `contract(request)` (what the real service would do)."""

    def __init__(self) -> None:
        self.script: deque[Scripted] = deque()
        self.fault: Callable[[FakeRequest], Scripted | None] | None = None
        self.calls: list[FakeRequest] = []
        self.base_url = ""
        self.lock = threading.Lock()

    def answer(self, request: FakeRequest) -> Scripted:
        with self.lock:
            self.calls.append(request)
            if self.script:
                return self.script.popleft()
        faulty = self.fault(request) if self.fault is not None else None
        return faulty if faulty is not None else self.contract(request)

    def contract(self, request: FakeRequest) -> Scripted:
        raise NotImplementedError


def serve_fake_x(api: FakeXApi, delay: float = 0.0) -> tuple[str, Callable[[], None]]:
    """Serve `api` over real HTTP on 127.0.0.1 (each answer `delay` s late); returns (base URL, stop)."""

    def answer(request: FakeRequest) -> Scripted:
        params = {k: v[-1] for k, v in request.query.items()}
        params["_authorization"] = request.headers.get("Authorization", "")
        return api.answer(params)

    return serve_fake(answer, delay)


def serve_fake(
    answer: Callable[[FakeRequest], Scripted], delay: float = 0.0, host: str = "127.0.0.1"
) -> tuple[str, Callable[[], None]]:
    """Serve `answer` over real HTTP on a loopback address (GET and POST; each answer `delay` s late);
    returns (base URL, stop). A Scripted answer can hang, trickle its body or reset the connection."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(b"")

        def do_POST(self) -> None:
            self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def _answer(self, body: bytes) -> None:
            url = urlsplit(self.path)
            request = FakeRequest(self.command, url.path, parse_qs(url.query), dict(self.headers), body)
            scripted = answer(request)
            time.sleep(delay + scripted.hang)
            with contextlib.suppress(OSError):  # the client gave up first (timeout, deadline)
                self._send(scripted)

        def _send(self, answer: Scripted) -> None:
            body, content_type = answer.encoded()
            self.send_response(answer.status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if answer.cut is not None:
                self.wfile.write(body[: answer.cut])
                self.wfile.flush()
                linger = struct.pack("ii", 1, 0)  # close with RST: the connection is reset mid-body
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.close_connection = True
            elif answer.trickle:
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(answer.trickle)
            else:
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)  # quick to stop
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://{host}:{server.server_address[1]}", stop
