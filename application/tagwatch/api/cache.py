"""A per-worker response cache for the summaries, invalidated by any write to the database.

SQLite's `PRAGMA data_version` changes on a connection whenever another connection commits, so
one cheap pragma tells whether the collector stored anything since a response was built. The
summaries then cost a dictionary lookup between collection runs, whatever the data size.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, current_app, request

from tagwatch.api.db import reader

MAX_ENTRIES = 512
_entries: OrderedDict[tuple[int, str, bytes], tuple[int, bytes]] = OrderedDict()
_lock = threading.Lock()


def cached(view: Callable[..., Any]) -> Callable[..., Response]:
    """Serve the view's JSON from cache while the database is unchanged; errors are never cached."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        conn = reader()
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        key = (id(conn), request.path, request.query_string)
        with _lock:
            hit = _entries.get(key)
            if hit is not None and hit[0] == version:
                _entries.move_to_end(key)
                return Response(hit[1], mimetype="application/json")
        body = current_app.json.dumps(view(*args, **kwargs)).encode()
        with _lock:
            _entries[key] = (version, body)
            if len(_entries) > MAX_ENTRIES:
                _entries.popitem(last=False)
        return Response(body, mimetype="application/json")

    return wrapper


def clear() -> None:
    """Forget every cached response (tests switch databases between apps)."""
    with _lock:
        _entries.clear()
