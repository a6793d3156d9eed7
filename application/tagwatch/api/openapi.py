"""GET /api/openapi.json: the OpenAPI 3.1 document, assembled per request from small helpers.

Tag values come from the configured tags and time zones from the server's tz database. Tests keep the
document true to the code: its paths and methods must equal the app's URL map, and each operation's query
parameters must equal the ones its view reads (tests/test_openapi.py).
"""

from __future__ import annotations

import functools
import zoneinfo
from typing import Any

from flask import Blueprint, current_app

from tagwatch import __version__
from tagwatch.api.errors import PROBLEM_JSON, PROBLEM_TYPE_BASE
from tagwatch.api.params import BREAKDOWN_DIMENSIONS, MAX_CURSOR_LENGTH, SQLITE_MAX_INTEGER
from tagwatch.config import Settings

bp = Blueprint("openapi", __name__)

Schema = dict[str, Any]
JSON = "application/json"
STRING: Schema = {"type": "string"}
COUNT: Schema = {"type": "integer", "minimum": 0}
DATE_TIME: Schema = {"type": "string", "format": "date-time"}
MAX_LIMIT = 100
RUN_STATUSES = ("running", "success", "failed")
RUN_TAG_STATUSES = ("pending", "success", "failed", "skipped")
DESCRIPTION = f"""Summaries of the posts tagwatch collects for its tracked hashtags.

Every JSON answer is `{{"data": …, "meta": {{…}}}}`; `meta` echoes the applied filters and `generated_at`.
Every 4xx/5xx answer is `{PROBLEM_JSON}` (RFC 9457) whose `type` is `{PROBLEM_TYPE_BASE}<kind>`; a 400
names the parameter in `invalid_params`. Any other path answers 404 and any other method 405 (with `Allow`),
both as problem+json."""


@bp.get("/api/openapi.json")
def openapi_document() -> Schema:
    """The OpenAPI 3.1 document describing this API."""
    return build_document(current_app.config["SETTINGS"])


def build_document(settings: Settings) -> Schema:
    """The whole document for the configured tags."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "tagwatch", "version": __version__, "description": DESCRIPTION},
        "tags": [
            {"name": name, "description": text}
            for name, text in (
                ("summaries", "The three summaries and the tag overview, read from aggregate tables."),
                ("posts", "Stored posts and the collection history."),
                ("admin", "Operator actions; need the admin bearer token."),
                ("operations", "Probes, metrics, this document and the page for people."),
            )
        ],
        "paths": {
            **summary_paths(settings.tags),
            **post_paths(settings.tags),
            **admin_paths(),
            **operation_paths(),
        },
        "components": components(settings),
    }


def ref(section: str, name: str) -> Schema:
    """A reference into components."""
    return {"$ref": f"#/components/{section}/{name}"}


def nullable(schema: Schema) -> Schema:
    """`schema` or null: the 3.1 way, a type list (an enum gains null too)."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    result = {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:
        result["enum"] = [*schema["enum"], None]
    return result


def obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = (), closed: bool = True) -> Schema:
    """An object whose properties are all required unless named in `optional`."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": not closed,
    }


def array(items: Schema, **constraints: Any) -> Schema:
    """An array of `items`."""
    return {"type": "array", "items": items, **constraints}


def enum(*values: str) -> Schema:
    """One of some strings."""
    return {"type": "string", "enum": list(values)}


def envelope(data: Schema, **meta: Schema) -> Schema:
    """The `{"data", "meta"}` shape every JSON endpoint answers with; meta always has generated_at."""
    return obj({"data": data, "meta": obj({**meta, "generated_at": DATE_TIME})})


def query_param(name: str, description: str, schema: Schema, example: Any = None) -> Schema:
    """An optional query parameter (an empty value counts as absent)."""
    param = {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
    if example is not None:
        param["example"] = example
    return param


def tag_param(tags: tuple[str, ...]) -> Schema:
    """`tag`: a tracked tag with or without '#', in any case; the pattern spells that out."""
    alternatives = "|".join("".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in tag) for tag in tags)
    schema = {"type": "string", "pattern": f"^#?(?:{alternatives})$", "examples": list(tags)}
    text = f"A tracked tag, with or without '#', any case: {', '.join(tags)}. Absent: every post once."
    return query_param("tag", text, schema, tags[0])


def limit_param(default: int, what: str) -> Schema:
    """`limit`: how many items, 1 to MAX_LIMIT."""
    schema = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": default}
    return query_param("limit", f"How many {what} to return.", schema, default)


def instant_param(name: str, role: str) -> Schema:
    """`since` / `until`: an ISO 8601 date or date-time between 2006 and 2100."""
    years = "^(?:200[6-9]|20[1-9][0-9]|2100)-"
    schema = {"type": "string", "pattern": years, "anyOf": [{"format": "date-time"}, {"format": "date"}]}
    text = (
        f"{role} (ISO 8601 date or date-time, 2006–2100; without an offset it is read in `tz`). "
        "since and until may be at most 366 days apart; at most 366 days of hours are returned."
    )
    return query_param(name, text, schema, "2026-11-18T00:00:00Z" if name == "since" else "2026-11-19")


def text_param(name: str, description: str, max_length: int, example: str) -> Schema:
    """A short free-text filter."""
    return query_param(name, description, {"type": "string", "maxLength": max_length}, example)


TZ_PARAM = query_param(
    "tz", "IANA time zone for the hour buckets (default UTC).", ref("schemas", "TimeZone"), "Asia/Kolkata"
)


def ok(description: str, schema: Schema, media: str = JSON, headers: Schema | None = None) -> Schema:
    """A success response."""
    response: Schema = {"description": description, "content": {media: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def header(description: str) -> Schema:
    """A string response header."""
    return {"description": description, "schema": STRING}


def operation(
    op_id: str,
    summary: str,
    group: str,
    responses: dict[int, Schema],
    *,
    params: tuple[Schema, ...] = (),
    errors: tuple[int, ...] = (),
    **extra: Any,
) -> Schema:
    """One operation; `errors` are status codes of components/responses (500 is always possible)."""
    all_errors = sorted({*errors, *((400,) if any(p["in"] == "query" for p in params) else ()), 500})
    return {
        "operationId": op_id,
        "summary": summary,
        "tags": [group],
        **({"parameters": list(params)} if params else {}),
        "responses": {
            **{str(status): response for status, response in responses.items()},
            **{str(status): ref("responses", ERROR_RESPONSES[status][0]) for status in all_errors},
        },
        **extra,
    }


def read(op_id: str, summary: str, group: str, data: Schema, *params: Schema, **meta: Schema) -> Schema:
    """A GET that reads the database and answers an envelope; 503 while the database is not ready."""
    return {
        "get": operation(
            op_id, summary, group, {200: ok(summary, envelope(data, **meta))}, params=params, errors=(503,)
        )
    }


def summary_paths(tags: tuple[str, ...]) -> Schema:
    """The three summaries and the tag overview."""
    tag = tag_param(tags)
    tag_meta = nullable(ref("schemas", "TagName"))
    return {
        "/api/v1/users/top": read(
            "topUsers",
            "Users of the sample with the most followers (latest count); ties by username.",
            "summaries",
            array(ref("schemas", "TopUser")),
            tag,
            limit_param(5, "users"),
            tag=tag_meta,
            limit=COUNT,
        ),
        "/api/v1/posts/by-hour": read(
            "postsByHour",
            "Posts per hour in `tz`, oldest first, zero hours included.",
            "summaries",
            array(obj({"hour": DATE_TIME, "count": COUNT})),
            tag,
            TZ_PARAM,
            instant_param("since", "Start of the series"),
            instant_param("until", "End of the series (exclusive)"),
            tag=tag_meta,
            tz=STRING,
            since=nullable(STRING),
            until=nullable(STRING),
        ),
        "/api/v1/posts/by-hour-of-day": read(
            "postsByHourOfDay",
            "Posts per local hour of day in `tz`: always 24 rows.",
            "summaries",
            array(
                obj({"hour": {"type": "integer", "minimum": 0, "maximum": 23}, "count": COUNT}),
                minItems=24,
                maxItems=24,
            ),
            tag,
            TZ_PARAM,
            tag=tag_meta,
            tz=STRING,
        ),
        "/api/v1/tags/breakdown": read(
            "tagsBreakdown",
            "Posts per tag by language and/or country, by tag then count descending.",
            "summaries",
            array(ref("schemas", "BreakdownRow")),
            tag,
            query_param(
                "by",
                "Dimensions to keep; the other one is collapsed and absent from the rows.",
                {"type": "string", "enum": ["lang,country", "country,lang", *BREAKDOWN_DIMENSIONS]},
                "lang",
            ),
            tag=tag_meta,
            by=array(enum(*BREAKDOWN_DIMENSIONS), minItems=1),
            totals={"type": "object", "additionalProperties": COUNT, "description": "Posts per tag."},
        ),
        "/api/v1/tags": read(
            "tagsOverview",
            "Each tracked tag: total posts, newest post time, last run.",
            "summaries",
            array(ref("schemas", "TagOverview")),
            source=enum("x", "sample"),
        ),
    }


def post_paths(tags: tuple[str, ...]) -> Schema:
    """Posts and runs."""
    run_id = {
        "name": "run_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": SQLITE_MAX_INTEGER},
    }
    return {
        "/api/v1/posts": read(
            "listPosts",
            "Posts newest first, with filters and cursor pagination.",
            "posts",
            array(ref("schemas", "Post")),
            tag_param(tags),
            text_param("lang", "Language code as X reports it (e.g. en).", 16, "en"),
            text_param("country", "ISO 3166-1 alpha-2 country code (any case).", 2, "DE"),
            text_param("username", "Author's username, with or without '@', any case.", 50, "alice"),
            limit_param(20, "posts"),
            query_param(
                "cursor",
                "meta.next_cursor of the previous page.",
                {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
            ),
            tag=nullable(ref("schemas", "TagName")),
            lang=nullable(STRING),
            country=nullable(STRING),
            username=nullable(STRING),
            limit=COUNT,
            next_cursor=nullable(STRING),
        ),
        "/api/v1/runs": read(
            "listRuns",
            "Collection runs, newest first.",
            "posts",
            array(ref("schemas", "Run")),
            limit_param(20, "runs"),
            limit=COUNT,
        ),
        "/api/v1/runs/{run_id}": {
            "get": operation(
                "getRun",
                "One collection run with per-tag figures.",
                "posts",
                {200: ok("The run.", envelope(ref("schemas", "Run")))},
                params=(run_id,),
                errors=(404, 503),
            )
        },
    }


def admin_paths() -> Schema:
    """POST /api/v1/collect."""
    started = envelope(obj({"run_id": COUNT, "status": enum("running"), "location": STRING}))
    location = {"Location": header("/api/v1/runs/{run_id} of the started run.")}
    return {
        "/api/v1/collect": {
            "post": operation(
                "startCollection",
                "Start a collection run now (in a separate process); never two at once.",
                "admin",
                {202: ok("The run started.", started, headers=location)},
                errors=(401, 403, 409, 503),
                security=[{"adminToken": []}],
            )
        }
    }


def operation_paths() -> Schema:
    """Probes, metrics, the document itself and the page."""
    return {
        "/healthz": {
            "get": operation(
                "healthz",
                "Liveness: the process answers (touches no database).",
                "operations",
                {200: ok("Alive.", obj({"status": enum("ok")}))},
            )
        },
        "/readyz": {
            "get": operation(
                "readyz",
                "Readiness: database reachable and schema current; age of the last successful run.",
                "operations",
                {200: ok("Ready.", obj({"status": enum("ready"), **readiness_facts()}))},
                errors=(503,),
            )
        },
        "/metrics": {
            "get": operation(
                "metrics",
                "Prometheus exposition (all gunicorn workers).",
                "operations",
                {200: ok("Metrics in the Prometheus text format.", STRING, "text/plain")},
            )
        },
        "/api/openapi.json": {
            "get": operation(
                "openapi",
                "This document.",
                "operations",
                {200: ok("OpenAPI 3.1.", {"type": "object", "required": ["openapi", "info", "paths"]})},
            )
        },
        "/": {
            "get": operation(
                "page",
                "The page for people: the summaries as charts.",
                "operations",
                {200: ok("HTML page.", STRING, "text/html")},
            )
        },
    }


def readiness_facts() -> dict[str, Schema]:
    """What /readyz reports, ready or not."""
    return {
        "schema_version": COUNT,
        "expected_schema_version": COUNT,
        "last_successful_run_at": nullable(DATE_TIME),
        "last_successful_run_age_seconds": nullable(COUNT),
    }


def problem(**extension: Schema) -> Schema:
    """A problem+json body; `extension` members are required on top of the base Problem."""
    if not extension:
        return ref("schemas", "Problem")
    return {
        "allOf": [
            ref("schemas", "Problem"),
            {"type": "object", "properties": extension, "required": list(extension)},
        ]
    }


ERROR_RESPONSES: dict[int, tuple[str, str, Schema, dict[str, str]]] = {
    400: (
        "BadRequest",
        "A query parameter is malformed or out of range (invalid-parameter); invalid_params names it.",
        problem(invalid_params=array(obj({"name": STRING, "reason": STRING}), minItems=1)),
        {},
    ),
    401: (
        "Unauthorized",
        "No bearer token (unauthorized).",
        problem(),
        {"WWW-Authenticate": 'The scheme to use: Bearer realm="tagwatch".'},
    ),
    403: ("Forbidden", "The bearer token is wrong (forbidden).", problem(), {}),
    404: ("NotFound", "No such resource or path (not-found).", problem(), {}),
    405: (
        "MethodNotAllowed",
        "The path exists; the method does not (method-not-allowed).",
        problem(),
        {"Allow": "Methods the path accepts."},
    ),
    409: (
        "Conflict",
        "A collection run is already going (conflict); run_id and Location name it.",
        problem(run_id=COUNT),
        {"Location": "/api/v1/runs/{run_id} of the running run."},
    ),
    500: ("InternalError", "The server failed (internal); its logs say why.", problem(), {}),
    503: (
        "ServiceUnavailable",
        "The database is missing or behind (database-not-ready, not-ready), the admin endpoint is disabled"
        " (admin-disabled) or the collector did not start (collector-did-not-start).",
        problem(),
        {},
    ),
}


def components(settings: Settings) -> Schema:
    """Shared schemas, error responses and the admin security scheme."""
    return {
        "schemas": {**data_schemas(settings), **problem_schemas()},
        "responses": {
            name: {
                "description": description,
                "content": {PROBLEM_JSON: {"schema": schema}},
                **({"headers": {key: header(text) for key, text in headers.items()}} if headers else {}),
            }
            for name, description, schema, headers in ERROR_RESPONSES.values()
        },
        "securitySchemes": {
            "adminToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "TAGWATCH_ADMIN_TOKEN; without it configured the endpoint answers 503.",
            }
        },
    }


def data_schemas(settings: Settings) -> dict[str, Schema]:
    """The items the endpoints return."""
    run_tag = obj(
        {
            "tag": STRING,
            "status": enum(*RUN_TAG_STATUSES),
            "requests": COUNT,
            "posts_read": COUNT,
            "posts_new": COUNT,
            "error": nullable(STRING),
        }
    )
    return {
        "TagName": {**enum(*settings.tags), "description": "A tracked tag, lower case without '#'."},
        "TimeZone": {**enum(*time_zones()), "description": "An IANA time zone name."},
        "TopUser": obj(
            {
                "username": STRING,
                "name": nullable(STRING),
                "followers": COUNT,
                "posts": COUNT,
                "tags": array(STRING),
            }
        ),
        "BreakdownRow": obj(
            {
                "tag": ref("schemas", "TagName"),
                "lang": nullable(STRING),
                "country": nullable(STRING),
                "count": COUNT,
            },
            optional=BREAKDOWN_DIMENSIONS,
        ),
        "TagOverview": obj(
            {
                "tag": ref("schemas", "TagName"),
                "posts": COUNT,
                "newest_post_at": nullable(DATE_TIME),
                "last_run": nullable(
                    obj({"id": COUNT, "status": enum(*RUN_STATUSES), "finished_at": nullable(DATE_TIME)})
                ),
            }
        ),
        "Post": obj(
            {
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "created_at": DATE_TIME,
                "text": STRING,
                "lang": nullable(STRING),
                "country": nullable(STRING),
                "country_source": nullable(enum("place", "profile")),
                "author": obj({"username": nullable(STRING), "followers": nullable(COUNT)}),
                "tags": array(STRING),
            }
        ),
        "Run": obj(
            {
                "id": COUNT,
                "status": enum(*RUN_STATUSES),
                "source": STRING,
                "trigger": STRING,
                "started_at": DATE_TIME,
                "finished_at": nullable(DATE_TIME),
                "error": nullable(STRING),
                "posts_read": COUNT,
                "posts_new": COUNT,
                "tags": array(run_tag),
            }
        ),
    }


def problem_schemas() -> dict[str, Schema]:
    """RFC 9457 problem details; members beyond these are extensions (e.g. run_id, readiness facts)."""
    return {
        "Problem": obj(
            {
                "type": {"type": "string", "format": "uri", "description": f"{PROBLEM_TYPE_BASE}<kind>"},
                "title": STRING,
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": STRING,
                "invalid_params": array(obj({"name": STRING, "reason": STRING})),
                "run_id": COUNT,
                **readiness_facts(),
            },
            optional=("invalid_params", "run_id", *readiness_facts()),
        )
    }


@functools.cache
def time_zones() -> tuple[str, ...]:
    """Every zone name the server's tz database knows (what `tz` accepts)."""
    return tuple(sorted(zoneinfo.available_timezones()))
