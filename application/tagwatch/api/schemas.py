"""Every endpoint's parameters and response shapes, declared once: the views load their query through
these schemas and the OpenAPI document is generated from them (tagwatch.api.contract)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import Schema, fields, post_load, validate

from tagwatch import store
from tagwatch.api import params
from tagwatch.config import SOURCE_NAMES

MAX_LIMIT = 100
MAX_SERIES_DAYS = 366
TAG = "A tracked tag, with or without '#', any case. Absent: every post once."
TZ = "IANA time zone for the hour buckets (default UTC)."
SOURCE = (
    "Only posts (runs) from these sources: one of x, mastodon, bluesky, sample or a comma list, any case."
    " Absent: every source, each post counted once."
)


class Query(Schema):
    """Query parameters: unknown ones are ignored, each known one validated by its field."""

    class Meta:
        unknown = "exclude"


def source_param() -> params.Sources:
    """The `source` filter every endpoint takes."""
    return params.Sources(SOURCE, "mastodon")


class TopUsersQuery(Query):
    tag = params.Tag(TAG, "devops")
    source = source_param()
    limit = params.Limit("How many users to return.", 5, MAX_LIMIT)


class HourlyQuery(Query):
    tag = params.Tag(TAG, "devops")
    source = source_param()
    tz = params.TimeZone(TZ, "Asia/Kolkata")
    since = params.Instant(
        "Start of the series (RFC 3339 date or date-time, 2006-2100; without an offset it is read in `tz`).",
        "2026-11-18T00:00:00Z",
    )
    until = params.Instant(
        "End of the series, exclusive (same form). At most 366 days of hours are returned, from `since`"
        " when given; an `until` at or before `since` gives an empty series.",
        "2026-11-19",
    )

    @post_load
    def instants(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """since/until as Unix seconds, a time without offset read in `tz`."""
        for name in ("since", "until"):
            moment = data.get(name)
            if moment is not None:
                local = moment if moment.tzinfo else moment.replace(tzinfo=data["tz"])
                data[name] = int(local.astimezone(UTC).timestamp())
        return data


class HourOfDayQuery(Query):
    tag = params.Tag(TAG, "devops")
    source = source_param()
    tz = params.TimeZone(TZ, "Asia/Kolkata")


class BreakdownQuery(Query):
    tag = params.Tag(TAG, "devops")
    source = source_param()
    by = params.Dimensions("Dimensions to keep; the other one is collapsed and absent from the rows.", "lang")


class PostsQuery(Query):
    tag = params.Tag(TAG, "devops")
    source = source_param()
    lang = params.Text("Language code as X reports it (e.g. en), any case.", "en", 16)
    country = params.Text("ISO 3166-1 alpha-2 country code, any case.", "DE", 2)
    username = params.Text("Author's username, with or without '@', any case.", "alice", 50)
    limit = params.Limit("How many posts to return.", 20, MAX_LIMIT)
    cursor = params.Cursor("meta.next_cursor of the previous page.")


class RunsQuery(Query):
    source = source_param()
    limit = params.Limit("How many runs to return.", 20, MAX_LIMIT)


class TagsQuery(Query):
    source = source_param()


def counter() -> fields.Integer:
    """A required count (0 or more)."""
    return fields.Integer(required=True, validate=validate.Range(min=0))


def string(nullable: bool = False, **kwargs: Any) -> fields.String:
    """A required string, or null when `nullable`."""
    return fields.String(required=True, allow_none=nullable, **kwargs)


def when(nullable: bool = False) -> fields.String:
    """A required RFC 3339 date-time string, or null when `nullable`."""
    return fields.String(required=True, allow_none=nullable, metadata={"format": "date-time"})


def source_name() -> fields.String:
    """One of the sources tagwatch knows."""
    return string(validate=validate.OneOf(SOURCE_NAMES))


def source_filter() -> fields.List:
    """The `source` filter as applied: the sources named, or null for every source."""
    return fields.List(source_name(), required=True, allow_none=True)


def tag_name(nullable: bool = False) -> fields.Field:
    """A tracked tag in lower case; the TagName component lists the configured ones."""
    return fields.Raw(required=True, allow_none=nullable, metadata={"tag_name": True})


def envelope(name: str, data: fields.Field, **meta: fields.Field) -> type[Schema]:
    """The `{"data": …, "meta": {…, "generated_at"}}` shape every JSON answer has."""
    meta_schema = Schema.from_dict({**meta, "generated_at": when()}, name=f"{name}Meta")
    return Schema.from_dict(
        {"data": data, "meta": fields.Nested(meta_schema, required=True)}, name=f"{name}Answer"
    )


def listing(item: type[Schema] | Schema) -> fields.List:
    """A required array of `item` objects."""
    return fields.List(fields.Nested(item), required=True)


class TopUser(Schema):
    username = string()
    name = string(nullable=True)
    source = source_name()
    followers = counter()
    posts = counter()
    tags = fields.List(fields.String(), required=True)


class Hour(Schema):
    hour = when()
    count = counter()


class HourOfDay(Schema):
    hour = fields.Integer(required=True, validate=validate.Range(min=0, max=23))
    count = counter()


class BreakdownRow(Schema):
    tag = tag_name()
    lang = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    count = counter()


class LastRun(Schema):
    id = counter()
    status = string(validate=validate.OneOf(store.TAG_TRIED_STATUSES))
    finished_at = when(nullable=True)


class SourceOverview(Schema):
    source = source_name()
    posts = counter()
    newest_post_at = when(nullable=True)
    last_run = fields.Nested(LastRun, required=True, allow_none=True)


class TagOverview(Schema):
    tag = tag_name()
    posts = counter()
    newest_post_at = when(nullable=True)
    last_run = fields.Nested(LastRun, required=True, allow_none=True)
    sources = listing(SourceOverview)


class Author(Schema):
    username = string(nullable=True)
    followers = fields.Integer(required=True, allow_none=True, validate=validate.Range(min=0))


class Post(Schema):
    id = string(validate=validate.Regexp("^[0-9]+$"))
    source = source_name()
    source_key = string()
    created_at = when()
    text = string()
    lang = string(nullable=True)
    country = string(nullable=True)
    country_source = string(nullable=True, validate=validate.OneOf(["place", "profile", "none"]))
    author = fields.Nested(Author, required=True)
    tags = fields.List(fields.String(), required=True)


class RunTag(Schema):
    source = source_name()
    tag = string()
    status = string(validate=validate.OneOf(store.TAG_STATUSES))
    requests = counter()
    posts_read = counter()
    posts_new = counter()
    error = string(nullable=True)


class RunSource(Schema):
    source = source_name()
    status = string(validate=validate.OneOf(store.RUN_STATUSES))
    error = string(nullable=True)
    requests = counter()
    posts_read = counter()
    posts_new = counter()


class Run(Schema):
    id = counter()
    status = string(validate=validate.OneOf(store.RUN_STATUSES))
    source = string(metadata={"description": "The run's sources, comma-separated."})
    sources = listing(RunSource)
    trigger = string(validate=validate.OneOf(store.TRIGGERS))
    started_at = when()
    finished_at = when(nullable=True)
    error = string(nullable=True)
    posts_read = counter()
    posts_new = counter()
    tags = listing(RunTag)


class CollectStarted(Schema):
    run_id = counter()
    status = string(validate=validate.OneOf(store.RUN_STATUSES))
    location = string()


class Readiness(Schema):
    status = string(validate=validate.OneOf(["ready"]))
    backend = string(validate=validate.OneOf(["sqlite", "postgresql"]))
    schema_version = counter()
    expected_schema_version = counter()
    last_successful_run_at = when(nullable=True)
    last_successful_run_age_seconds = fields.Integer(
        required=True, allow_none=True, validate=validate.Range(min=0)
    )


class Health(Schema):
    status = string(validate=validate.OneOf(["ok"]))


TopUsersAnswer = envelope(
    "TopUsers", listing(TopUser), tag=tag_name(nullable=True), source=source_filter(), limit=counter()
)
HourlyAnswer = envelope(
    "Hourly",
    listing(Hour),
    tag=tag_name(nullable=True),
    source=source_filter(),
    tz=string(),
    since=when(True),
    until=when(True),
)
HourOfDayAnswer = envelope(
    "HourOfDay",
    fields.List(fields.Nested(HourOfDay), required=True, validate=validate.Length(equal=24)),
    tag=tag_name(nullable=True),
    source=source_filter(),
    tz=string(),
)
BreakdownAnswer = envelope(
    "Breakdown",
    listing(BreakdownRow),
    tag=tag_name(nullable=True),
    source=source_filter(),
    by=fields.List(fields.String(validate=validate.OneOf(params.BREAKDOWN_DIMENSIONS)), required=True),
    totals=fields.Dict(
        keys=fields.String(), values=counter(), required=True, metadata={"description": "Posts per tag."}
    ),
)
TagsAnswer = envelope(
    "Tags",
    listing(TagOverview),
    source=source_filter(),
    sources=fields.List(source_name(), required=True, metadata={"description": "The configured sources."}),
)
PostsAnswer = envelope(
    "Posts",
    listing(Post),
    tag=tag_name(nullable=True),
    source=source_filter(),
    lang=string(nullable=True),
    country=string(nullable=True),
    username=string(nullable=True),
    limit=counter(),
    next_cursor=string(nullable=True),
)
RunsAnswer = envelope("Runs", listing(Run), source=source_filter(), limit=counter())
RunAnswer = envelope("Run", fields.Nested(Run, required=True))
CollectAnswer = envelope("Collect", fields.Nested(CollectStarted, required=True))
