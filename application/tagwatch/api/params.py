"""Parsing and validating query parameters; every failure names the parameter (HTTP 400)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, request

from tagwatch.aggregates import MAX_SERIES_SECONDS
from tagwatch.api.errors import BadParam

MAX_SPAN_SECONDS = MAX_SERIES_SECONDS
MAX_CURSOR_LENGTH = 64
SQLITE_MAX_INTEGER = 2**63 - 1  # larger ids would make sqlite3 raise OverflowError
BREAKDOWN_DIMENSIONS = ("lang", "country")


def arg(name: str) -> str | None:
    """A query parameter stripped of blanks; empty counts as absent."""
    value = request.args.get(name, "").strip()
    return value or None


def tag() -> str | None:
    """`tag`: a tracked tag, with or without '#', any case."""
    raw = arg("tag")
    if raw is None:
        return None
    value = raw.lstrip("#").lower()
    tags = current_app.config["SETTINGS"].tags
    if value not in tags:
        raise BadParam("tag", f"unknown tag {raw!r}; tracked tags are {', '.join(tags)}")
    return value


def limit(default: int, maximum: int) -> int:
    """`limit`: an integer from 1 to `maximum`."""
    raw = arg("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParam("limit", f"must be an integer from 1 to {maximum}") from None
    if not 1 <= value <= maximum:
        raise BadParam("limit", f"must be an integer from 1 to {maximum}")
    return value


def tz() -> ZoneInfo:
    """`tz`: an IANA time zone name such as Europe/Berlin (default UTC)."""
    raw = arg("tz")
    if raw is None:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadParam("tz", f"unknown time zone {raw!r}; use an IANA name such as Europe/Berlin") from None


def instant(name: str, zone: ZoneInfo) -> int | None:
    """An ISO 8601 date or date-time as Unix seconds; a time without offset is read in `zone`."""
    raw = arg(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise BadParam(name, "must be an ISO 8601 date or date-time, e.g. 2026-11-20T10:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    # the local year first: astimezone() overflows near years 1 and 9999
    if not 2006 <= moment.year <= 2100 or not 2006 <= moment.astimezone(UTC).year <= 2100:
        raise BadParam(name, "must be between 2006 and 2100")
    return int(moment.timestamp())


def time_range(zone: ZoneInfo) -> tuple[int | None, int | None]:
    """`since` and `until` in order and at most 366 days apart."""
    since, until = instant("since", zone), instant("until", zone)
    if since is not None and until is not None:
        if until <= since:
            raise BadParam("until", "must be later than since")
        if until - since > MAX_SPAN_SECONDS:
            raise BadParam("until", "since and until may be at most 366 days apart")
    return since, until


def dimensions() -> tuple[str, ...]:
    """`by`: lang, country or both, comma-separated (default both)."""
    raw = arg("by")
    if raw is None:
        return BREAKDOWN_DIMENSIONS
    parts = [p.strip().lower() for p in raw.split(",") if p.strip()]
    if not parts or any(p not in BREAKDOWN_DIMENSIONS for p in parts) or len(set(parts)) != len(parts):
        raise BadParam("by", "must be lang, country or lang,country")
    return tuple(d for d in BREAKDOWN_DIMENSIONS if d in parts)


def text(name: str, max_length: int = 64) -> str | None:
    """A short free-text filter (lang, country, username)."""
    raw = arg(name)
    if raw is not None and len(raw) > max_length:
        raise BadParam(name, f"must be at most {max_length} characters")
    return raw


def encode_cursor(post_id: int) -> str:
    """An opaque cursor for the next page of posts."""
    return base64.urlsafe_b64encode(json.dumps({"before": post_id}).encode()).decode().rstrip("=")


def cursor() -> int | None:
    """`cursor`: a value returned in meta.next_cursor."""
    raw = arg("cursor")
    if raw is None:
        return None
    try:
        if len(raw) > MAX_CURSOR_LENGTH:  # also keeps json.loads clear of deep nesting
            raise ValueError
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        before = decoded["before"]
        if not isinstance(before, int) or not 0 < before <= SQLITE_MAX_INTEGER:
            raise ValueError
        return before
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadParam("cursor", "is not a cursor returned by this API") from None
