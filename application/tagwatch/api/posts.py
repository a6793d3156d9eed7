"""Posts and collection history: read-only views."""

from __future__ import annotations

from flask import Blueprint

from tagwatch import queries
from tagwatch.api import params
from tagwatch.api.db import read
from tagwatch.api.envelope import envelope
from tagwatch.api.errors import ApiError

bp = Blueprint("posts", __name__, url_prefix="/api/v1")


@bp.get("/posts")
def list_posts():
    """Posts newest first with filters and an opaque cursor."""
    filters = {
        "tag": params.tag(),
        "lang": lower(params.text("lang", 16)),
        "country": upper(params.text("country", 2)),
        "username": params.text("username", 50),
    }
    limit, before = params.limit(20, 100), params.cursor()
    (posts, next_before), read_at = read(queries.list_posts, before=before, limit=limit, **filters)
    next_cursor = params.encode_cursor(next_before) if next_before else None
    return envelope(posts, generated_at=read_at, **filters, limit=limit, next_cursor=next_cursor)


@bp.get("/runs")
def list_runs():
    """Collection history, newest first."""
    limit = params.limit(20, 100)
    runs, read_at = read(queries.list_runs, limit)
    return envelope(runs, generated_at=read_at, limit=limit)


@bp.get("/runs/<int:run_id>")
def get_run(run_id: int):
    """One collection run with per-tag figures."""
    run, read_at = read(queries.get_run, run_id) if run_id <= params.SQLITE_MAX_INTEGER else (None, 0)
    if run is None:
        raise ApiError(404, "Not Found", f"There is no run {run_id}.", kind="not-found")
    return envelope(run, generated_at=read_at)


def lower(value: str | None) -> str | None:
    """Language codes compare case-insensitively (X reports them in lower case)."""
    return value.lower() if value else value


def upper(value: str | None) -> str | None:
    """Country codes are stored in upper case."""
    return value.upper() if value else value
