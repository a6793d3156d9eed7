"""The three summaries and the tag overview: thin views over tagwatch.aggregates, served from the cache."""

from __future__ import annotations

from flask import current_app

from tagwatch import aggregates, timestamps
from tagwatch.api import schemas
from tagwatch.api.cache import answer
from tagwatch.api.contract import Blueprint

bp = Blueprint(
    "summaries", __name__, url_prefix="/api/v1", description="The three summaries and the tag overview."
)


@bp.get("/users/top")
@bp.query(schemas.TopUsersQuery)
@bp.response(200, schemas.TopUsersAnswer)
@bp.errors(503)
def top_users(tag, source, limit):
    """Users of the sample with the most followers (latest count); ties by username."""
    meta = {"tag": tag, "source": listed(source), "limit": limit}
    key = {**meta, "source": source}
    return answer(key, lambda conn: (aggregates.top_users(conn, tag, limit, source), meta))


def listed(source: tuple[str, ...] | None) -> list[str] | None:
    """The source filter as echoed in meta (null: every source)."""
    return list(source) if source else None


@bp.get("/posts/by-hour")
@bp.query(schemas.HourlyQuery)
@bp.response(200, schemas.HourlyAnswer)
@bp.errors(503)
def posts_by_hour(tag, source, tz, since, until):
    """Posts per hour in `tz`, oldest first, zero hours included."""
    meta = {
        "tag": tag,
        "source": listed(source),
        "tz": tz.key,
        "since": echo(since, tz),
        "until": echo(until, tz),
    }
    return answer(
        {"tag": tag, "source": source, "tz": tz.key, "since": since, "until": until},
        lambda conn: (aggregates.posts_by_hour(conn, tag, tz, since, until, source), meta),
    )


def echo(instant: int | None, zone) -> str | None:
    """A bound as applied: RFC 3339 in the requested zone (the cache key holds the instant, not the text)."""
    return None if instant is None else timestamps.local(instant, zone)


@bp.get("/posts/by-hour-of-day")
@bp.query(schemas.HourOfDayQuery)
@bp.response(200, schemas.HourOfDayAnswer)
@bp.errors(503)
def posts_by_hour_of_day(tag, source, tz):
    """Posts per local hour of day in `tz`: always 24 rows."""
    meta = {"tag": tag, "source": listed(source), "tz": tz.key}
    key = {**meta, "source": source}
    return answer(key, lambda conn: (aggregates.posts_by_hour_of_day(conn, tag, tz, source), meta))


@bp.get("/tags/breakdown")
@bp.query(schemas.BreakdownQuery)
@bp.response(200, schemas.BreakdownAnswer)
@bp.errors(503)
def tags_breakdown(tag, source, by):
    """Posts per tag by language and/or country, by tag then count descending."""
    tags = (tag,) if tag else current_app.config["SETTINGS"].tags

    def build(conn):
        data, totals = aggregates.breakdown(conn, tags, by, source)
        return data, {"tag": tag, "source": listed(source), "by": list(by), "totals": totals}

    return answer({"tag": tag, "source": source, "by": by}, build)


@bp.get("/tags")
@bp.query(schemas.TagsQuery)
@bp.response(200, schemas.TagsAnswer)
@bp.errors(503)
def tags(source):
    """Each tracked tag: total posts, newest post time, last run, and the same per source (the filter's,
    else every configured source and any other with stored posts)."""
    settings = current_app.config["SETTINGS"]

    def build(conn):
        shown = source or tuple(dict.fromkeys([*settings.sources, *aggregates.stored_sources(conn)]))
        meta = {"source": listed(source), "sources": list(settings.sources)}
        return aggregates.tag_overview(conn, settings.tags, shown), meta

    return answer({"source": source}, build)
