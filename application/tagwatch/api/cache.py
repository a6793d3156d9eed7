"""A per-worker response cache for the summaries, invalidated by any commit to the database.

SQLite's `PRAGMA data_version` changes whenever another connection commits, and on PostgreSQL every write
transaction bumps the `data_version` row (shared by every replica), so one cheap query tells whether the
collector stored anything since a response was built (checked on every request, cache hit or not: a
request after a commit always sees it, in every replica; on PostgreSQL one round trip on a probe connection);
between collection runs a summary costs that query and a dictionary lookup whatever the data size.
Entries are keyed by the validated, normalised parameters (junk or differently spelled parameters share
one entry) and the total size is bounded in bytes per worker (TAGWATCH_API_CACHE_BYTES), least recently
used first out. A query string answered before is remembered with the key it validated to (validation is
a pure function of the query string), so a repeated request skips parsing: a hit costs the version check,
two dictionary lookups and the body.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from flask import Flask, Response, current_app, g, request

from tagwatch.api import db
from tagwatch.api.envelope import envelope

Build = Callable[[Any], tuple[Any, dict[str, Any]]]
MAX_ALIASES = 4096  # query strings remembered per worker (each at most MAX_ALIASED_QUERY bytes)
MAX_ALIASED_QUERY = 512


class ResponseCache:
    """LRU of JSON bodies bounded in total bytes; each entry remembers the database version it was read at."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[Hashable, tuple[Hashable, bytes]] = OrderedDict()
        self._aliases: OrderedDict[tuple[str, bytes], Hashable] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, version: Hashable) -> bytes | None:
        """The body cached under `key` if it was built at `version`."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[0] != version:
                return None
            self._entries.move_to_end(key)
            return hit[1]

    def alias(self, raw: tuple[str, bytes], key: Hashable) -> None:
        """Remember that `raw` (endpoint, query string) validated to `key`; the oldest are forgotten first."""
        if len(raw[1]) > MAX_ALIASED_QUERY:
            return
        with self._lock:
            self._aliases[raw] = key
            self._aliases.move_to_end(raw)
            while len(self._aliases) > MAX_ALIASES:
                self._aliases.popitem(last=False)

    def key_of(self, raw: tuple[str, bytes]) -> Hashable | None:
        """The key a request with exactly this endpoint and query string validated to before, if any."""
        with self._lock:
            return self._aliases.get(raw)

    def put(self, key: Hashable, version: Hashable, body: bytes) -> None:
        """Store a body, evicting the least recently used until the total fits; a body too big is skipped."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.size -= len(old[1])
            if len(body) > self.max_bytes:
                return
            self._entries[key] = (version, body)
            self.size += len(body)
            while self.size > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self.size -= len(evicted)


def register(app: Flask, max_bytes: int | None = None) -> None:
    """Give the app its cache (size from the settings' TAGWATCH_API_CACHE_BYTES unless given)."""
    size = app.config["SETTINGS"].api_cache_bytes if max_bytes is None else max_bytes
    app.extensions["tagwatch.cache"] = ResponseCache(size)
    if _answer_repeat not in app.before_request_funcs.get(None, []):
        app.before_request(_answer_repeat)


def _answer_repeat() -> Response | None:
    """A request whose exact query string this endpoint answered before: the cached body if the database
    is unchanged, without parsing the parameters again; otherwise the view runs (and reuses the version
    read here, so a miss still costs one check)."""
    if request.method not in ("GET", "HEAD") or request.endpoint is None:
        return None
    cache: ResponseCache = current_app.extensions["tagwatch.cache"]
    key = cache.key_of((request.endpoint, request.query_string))
    if key is None:
        return None
    g.data_version = version = db.database().version()
    body = cache.get(key, version)
    return None if body is None else Response(body, mimetype="application/json")


def answer(params: Mapping[str, Any], build: Build) -> Response:
    """The endpoint's JSON for these validated parameters: from cache while the database is unchanged.

    `build(conn)` returns `(data, meta)`; it runs in one snapshot that is at least as new as the version
    checked (version first, snapshot second), so a cached body is never older than its version.
    """
    cache: ResponseCache = current_app.extensions["tagwatch.cache"]
    database = db.database()
    key = (database.path, request.endpoint, tuple(sorted(params.items())))
    cache.alias((request.endpoint, request.query_string), key)
    version = g.pop("data_version", None)
    if version is None:
        version = database.version()
    body = cache.get(key, version)
    if body is None:
        with database.snapshot() as snap:
            data, meta = build(snap.conn)
        body = current_app.json.dumps(envelope(data, generated_at=snap.read_at, **meta)).encode()
        cache.put(key, version, body)
    return Response(body, mimetype="application/json")
