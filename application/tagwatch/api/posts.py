"""Posts and collection history: read-only views."""

from __future__ import annotations

from flask import Blueprint

from tagwatch import queries
from tagwatch.api import params
from tagwatch.api.db import query
from tagwatch.api.envelope import envelope
from tagwatch.api.errors import ApiError

bp = Blueprint("posts", __name__, url_prefix="/api/v1")


@bp.get("/posts")
def list_posts():
    """Posts newest first with filters and an opaque cursor."""
    filters = {
        "tag": params.tag(),
        "lang": params.text("lang", 16),
        "country": params.text("country", 2),
        "username": params.text("username", 50),
    }
    limit, before = params.limit(20, 100), params.cursor()
    posts, next_before = query(queries.list_posts, before=before, limit=limit, **filters)
    next_cursor = params.encode_cursor(next_before) if next_before else None
    return envelope(posts, **filters, limit=limit, next_cursor=next_cursor)


@bp.get("/runs")
def list_runs():
    """Collection history, newest first."""
    limit = params.limit(20, 100)
    return envelope(query(queries.list_runs, limit), limit=limit)


@bp.get("/runs/<int:run_id>")
def get_run(run_id: int):
    """One collection run with per-tag figures."""
    run = query(queries.get_run, run_id) if run_id <= params.SQLITE_MAX_INTEGER else None
    if run is None:
        raise ApiError(404, "Not Found", f"There is no run {run_id}.", kind="not-found")
    return envelope(run)
