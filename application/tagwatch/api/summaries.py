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
def top_users(tag, limit):
    """Users of the sample with the most followers (latest count); ties by username."""
    meta = {"tag": tag, "limit": limit}
    return answer(meta, lambda conn: (aggregates.top_users(conn, tag, limit), meta))


@bp.get("/posts/by-hour")
@bp.query(schemas.HourlyQuery)
@bp.response(200, schemas.HourlyAnswer)
@bp.errors(503)
def posts_by_hour(tag, tz, since, until):
    """Posts per hour in `tz`, oldest first, zero hours included."""
    meta = {"tag": tag, "tz": tz.key, "since": echo(since, tz), "until": echo(until, tz)}
    return answer(
        {"tag": tag, "tz": tz.key, "since": since, "until": until},
        lambda conn: (aggregates.posts_by_hour(conn, tag, tz, since, until), meta),
    )


def echo(instant: int | None, zone) -> str | None:
    """A bound as applied: RFC 3339 in the requested zone (the cache key holds the instant, not the text)."""
    return None if instant is None else timestamps.local(instant, zone)


@bp.get("/posts/by-hour-of-day")
@bp.query(schemas.HourOfDayQuery)
@bp.response(200, schemas.HourOfDayAnswer)
@bp.errors(503)
def posts_by_hour_of_day(tag, tz):
    """Posts per local hour of day in `tz`: always 24 rows."""
    meta = {"tag": tag, "tz": tz.key}
    return answer(meta, lambda conn: (aggregates.posts_by_hour_of_day(conn, tag, tz), meta))


@bp.get("/tags/breakdown")
@bp.query(schemas.BreakdownQuery)
@bp.response(200, schemas.BreakdownAnswer)
@bp.errors(503)
def tags_breakdown(tag, by):
    """Posts per tag by language and/or country, by tag then count descending."""
    tags = (tag,) if tag else current_app.config["SETTINGS"].tags

    def build(conn):
        data, totals = aggregates.breakdown(conn, tags, by)
        return data, {"tag": tag, "by": list(by), "totals": totals}

    return answer({"tag": tag, "by": by}, build)


@bp.get("/tags")
@bp.response(200, schemas.TagsAnswer)
@bp.errors(503)
def tags():
    """Each tracked tag: total posts, newest post time, last run."""
    settings = current_app.config["SETTINGS"]
    return answer(
        {}, lambda conn: (aggregates.tag_overview(conn, settings.tags), {"source": settings.source})
    )
