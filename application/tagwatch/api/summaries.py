"""The three summaries and the tag overview: thin views over tagwatch.aggregates, served from the cache."""

from __future__ import annotations

from flask import Blueprint, current_app

from tagwatch import aggregates, timestamps
from tagwatch.api import params
from tagwatch.api.cache import answer

bp = Blueprint("summaries", __name__, url_prefix="/api/v1")


@bp.get("/users/top")
def top_users():
    """Users with the most followers in the sample (or among a tag's posters)."""
    tag, limit = params.tag(), params.limit(5, 100)
    return answer(
        {"tag": tag, "limit": limit},
        lambda conn: (aggregates.top_users(conn, tag, limit), {"tag": tag, "limit": limit}),
    )


@bp.get("/posts/by-hour")
def posts_by_hour():
    """Hourly series in a time zone, zero hours included."""
    tag, zone = params.tag(), params.tz()
    since, until = params.time_range(zone)
    meta = {"tag": tag, "tz": zone.key, "since": echo(since, zone), "until": echo(until, zone)}
    return answer(
        {"tag": tag, "tz": zone.key, "since": since, "until": until},
        lambda conn: (aggregates.posts_by_hour(conn, tag, zone, since, until), meta),
    )


def echo(instant: int | None, zone) -> str | None:
    """A bound as applied: RFC 3339 in the requested zone (the cache key holds the instant, not the text)."""
    return None if instant is None else timestamps.local(instant, zone)


@bp.get("/posts/by-hour-of-day")
def posts_by_hour_of_day():
    """24-hour activity profile in a time zone."""
    tag, zone = params.tag(), params.tz()
    return answer(
        {"tag": tag, "tz": zone.key},
        lambda conn: (aggregates.posts_by_hour_of_day(conn, tag, zone), {"tag": tag, "tz": zone.key}),
    )


@bp.get("/tags/breakdown")
def tags_breakdown():
    """Posts per tag by language and/or country."""
    tag, by = params.tag(), params.dimensions()
    tags = (tag,) if tag else current_app.config["SETTINGS"].tags

    def build(conn):
        data, totals = aggregates.breakdown(conn, tags, by)
        return data, {"tag": tag, "by": list(by), "totals": totals}

    return answer({"tag": tag, "by": by}, build)


@bp.get("/tags")
def tags():
    """Each tracked tag with its totals and last run."""
    settings = current_app.config["SETTINGS"]
    return answer(
        {}, lambda conn: (aggregates.tag_overview(conn, settings.tags), {"source": settings.source})
    )
