"""Posts and collection history: read-only views."""

from __future__ import annotations

from flask import jsonify

from tagwatch import queries
from tagwatch.api import params, schemas
from tagwatch.api.cache import answer
from tagwatch.api.contract import Blueprint
from tagwatch.api.db import read
from tagwatch.api.envelope import envelope
from tagwatch.api.errors import ApiError

bp = Blueprint(
    "posts", __name__, url_prefix="/api/v1", description="Stored posts and the collection history."
)
RUN_ID = {
    "in": "path",
    "name": "run_id",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": params.SQLITE_MAX_INTEGER},
}


@bp.get("/posts")
@bp.query(schemas.PostsQuery)
@bp.response(200, schemas.PostsAnswer)
@bp.errors(503)
def list_posts(tag, source, lang, country, username, limit, cursor):
    """Posts newest first, with filters and cursor pagination; cached like the summaries."""
    filters = {
        "tag": tag,
        "source": source,
        "lang": lang and lang.lower(),
        "country": country and country.upper(),
        "username": username,
    }

    def build(conn):
        posts, next_before = queries.list_posts(
            conn,
            before=cursor,
            limit=limit,
            sources=source,
            **{k: v for k, v in filters.items() if k != "source"},
        )
        next_cursor = params.encode_cursor(next_before) if next_before else None
        echoed = {**filters, "source": list(source) if source else None}
        return posts, {**echoed, "limit": limit, "next_cursor": next_cursor}

    return answer({**filters, "limit": limit, "cursor": cursor}, build)


@bp.get("/runs")
@bp.query(schemas.RunsQuery)
@bp.response(200, schemas.RunsAnswer)
@bp.errors(503)
def list_runs(source, limit):
    """Collection runs (that collected from any of `source`), newest first, with per-source figures."""
    runs, read_at = read(queries.list_runs, limit, source)
    return jsonify(envelope(runs, generated_at=read_at, source=list(source) if source else None, limit=limit))


@bp.get("/runs/<int:run_id>", parameters=[RUN_ID])
@bp.response(200, schemas.RunAnswer)
@bp.errors(404, 503)
def get_run(run_id: int):
    """One collection run with per-tag figures."""
    run, read_at = read(queries.get_run, run_id) if run_id <= params.SQLITE_MAX_INTEGER else (None, 0)
    if run is None:
        raise ApiError(404, "Not Found", f"There is no run {run_id}.", kind="not-found")
    return jsonify(envelope(run, generated_at=read_at))
