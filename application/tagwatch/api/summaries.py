"""The three summaries and the tag overview: thin views over tagwatch.aggregates."""

from __future__ import annotations

from flask import Blueprint, current_app

from tagwatch import aggregates
from tagwatch.api import params
from tagwatch.api.cache import cached
from tagwatch.api.db import query
from tagwatch.api.envelope import envelope

bp = Blueprint("summaries", __name__, url_prefix="/api/v1")


@bp.get("/users/top")
@cached
def top_users():
    """Users with the most followers in the sample (or among a tag's posters)."""
    tag, limit = params.tag(), params.limit(5, 100)
    return envelope(query(aggregates.top_users, tag, limit), tag=tag, limit=limit)


@bp.get("/posts/by-hour")
@cached
def posts_by_hour():
    """Hourly series in a time zone, zero hours included."""
    tag, zone = params.tag(), params.tz()
    since, until = params.time_range(zone)
    data = query(aggregates.posts_by_hour, tag, zone, since, until)
    return envelope(
        data,
        tag=tag,
        tz=zone.key,
        since=params.arg("since"),
        until=params.arg("until"),
    )


@bp.get("/posts/by-hour-of-day")
@cached
def posts_by_hour_of_day():
    """24-hour activity profile in a time zone."""
    tag, zone = params.tag(), params.tz()
    return envelope(query(aggregates.posts_by_hour_of_day, tag, zone), tag=tag, tz=zone.key)


@bp.get("/tags/breakdown")
@cached
def tags_breakdown():
    """Posts per tag by language and/or country."""
    tag, by = params.tag(), params.dimensions()
    tags = (tag,) if tag else current_app.config["SETTINGS"].tags
    data, totals = query(aggregates.breakdown, tags, by)
    return envelope(data, tag=tag, by=list(by), totals=totals)


@bp.get("/tags")
@cached
def tags():
    """Each tracked tag with its totals and last run."""
    settings = current_app.config["SETTINGS"]
    return envelope(query(aggregates.tag_overview, settings.tags), source=settings.source)
