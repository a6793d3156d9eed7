"""Query parameter types: each validates a value and describes itself in the OpenAPI document, once.

A field's `json_schema` is what the document says it accepts, and `_deserialize` accepts exactly that
(schemathesis checks both directions against the live server). Every failure is a message for
`invalid_params` (the contract module turns the first one into a 400 naming the parameter). An empty
value never reaches a field: the parser drops it, so `?tag=` means no tag (allowEmptyValue).
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from flask import current_app
from marshmallow import ValidationError, fields

from tagwatch.config import SOURCE_NAMES

SQLITE_MAX_INTEGER = 2**63 - 1  # larger ids would make sqlite3 raise OverflowError
MIN_YEAR, MAX_YEAR = 2006, 2100
BREAKDOWN_DIMENSIONS = ("lang", "country")
YEARS = r"(?:200[6-9]|20[1-9][0-9]|2100)"
# what `since`/`until` accept: a date, or a date-time with or without seconds, fraction and offset
INSTANT_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?)?$"
)
# a local date-time without offset, as a pattern that admits only real times (days 01-28 in the document)
LOCAL_TIME_PATTERN = (
    rf"^{YEARS}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?$"
)


def case_insensitive(word: str) -> str:
    """A regex matching `word` in any ASCII case: [dD][eE]…"""
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


@functools.cache
def time_zones() -> tuple[str, ...]:
    """Every zone name the server's tz database knows: what `tz` accepts."""
    return tuple(sorted(zoneinfo.available_timezones()))


class Param(fields.Field):
    """A query parameter; `json_schema` is its OpenAPI schema, `example` its documented example."""

    def __init__(self, description: str, example: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("load_default", None)  # absent (or empty): the view gets None
        super().__init__(metadata={"description": description, "example": example}, **kwargs)

    def json_schema(self) -> dict[str, Any]:
        """The schema of the values this parameter accepts."""
        return {"type": "string"}


class Tag(Param):
    """A tracked tag, with or without '#', in any ASCII case; the tags come from the app's settings."""

    def json_schema(self) -> dict[str, Any]:
        tags = current_app.config["SETTINGS"].tags
        alternatives = "|".join(case_insensitive(tag) for tag in tags)
        return {"type": "string", "pattern": f"^#?(?:{alternatives})$", "examples": list(tags)}

    def _deserialize(self, value: str, attr, data, **kwargs) -> str:
        tags = current_app.config["SETTINGS"].tags
        name = value.removeprefix("#").lower()
        if not value.isascii() or name not in tags:
            raise ValidationError(f"unknown tag {value!r}; tracked tags are {', '.join(tags)}")
        return name


class Sources(Param):
    """`source`: one source or a comma list (x, mastodon, bluesky, sample), any ASCII case; loads as the
    named sources once each, in SOURCE_NAMES order, so equal filters share one cache entry."""

    def json_schema(self) -> dict[str, Any]:
        one = "|".join(case_insensitive(name) for name in SOURCE_NAMES)
        return {"type": "string", "pattern": f"^(?:{one})(?:,(?:{one}))*$", "examples": list(SOURCE_NAMES)}

    def _deserialize(self, value: str, attr, data, **kwargs) -> tuple[str, ...]:
        names = value.lower().split(",") if value.isascii() else [value]
        unknown = [name for name in names if name not in SOURCE_NAMES]
        if unknown:
            raise ValidationError(f"unknown source {unknown[0]!r}; sources are {', '.join(SOURCE_NAMES)}")
        return tuple(name for name in SOURCE_NAMES if name in names)


class Limit(Param):
    """How many items: an integer from 1 to `maximum`."""

    def __init__(self, description: str, default: int, maximum: int) -> None:
        super().__init__(description, default, load_default=default)
        self.maximum = maximum

    def json_schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": self.maximum, "default": self.load_default}

    def _deserialize(self, value: str, attr, data, **kwargs) -> int:
        if re.fullmatch("[0-9]+", value) and 1 <= int(value) <= self.maximum:
            return int(value)
        raise ValidationError(f"must be an integer from 1 to {self.maximum}")


class TimeZone(Param):
    """An IANA time zone name the server knows (default UTC)."""

    def __init__(self, description: str, example: str) -> None:
        super().__init__(description, example, load_default=zoneinfo.ZoneInfo("UTC"))

    def json_schema(self) -> dict[str, Any]:
        return {"$ref": "#/components/schemas/TimeZone"}

    def _deserialize(self, value: str, attr, data, **kwargs) -> zoneinfo.ZoneInfo:
        if value in time_zones():
            return zoneinfo.ZoneInfo(value)
        raise ValidationError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin")


class Instant(Param):
    """An RFC 3339 date or date-time between 2006 and 2100; without an offset it is read in `tz` later.

    Loads as a datetime (naive when no offset was given). A leap second (:60) counts as :59; an offset
    whose '+' arrived as a space (an unencoded URL) is read as '+'.
    """

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": f"^{YEARS}-",
            "anyOf": [{"format": "date-time"}, {"format": "date"}, {"pattern": LOCAL_TIME_PATTERN}],
        }

    def _deserialize(self, value: str, attr, data, **kwargs) -> datetime:
        match = INSTANT_RE.match(value.replace(" ", "+"))
        try:
            if match is None:
                raise ValueError
            moment = _datetime(*match.groups())
        except ValueError:
            raise ValidationError(
                "must be an ISO 8601 date or date-time, e.g. 2026-11-20T10:00:00Z"
            ) from None
        if not MIN_YEAR <= moment.year <= MAX_YEAR:
            raise ValidationError(f"must be between {MIN_YEAR} and {MAX_YEAR}")
        return moment


def _datetime(year, month, day, hour, minute, second, fraction, offset) -> datetime:
    """A datetime from INSTANT_RE's groups; ValueError for an impossible date or time."""
    zone = None
    if offset and offset.upper() != "Z":
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError
        zone = timezone((1 if offset[0] == "+" else -1) * timedelta(hours=hours, minutes=minutes))
    elif offset:
        zone = UTC
    micro = int((fraction or ".0")[1:7].ljust(6, "0"))
    return datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        min(int(second or 0), 59),
        micro,
        zone,
    )


class Dimensions(Param):
    """`by`: lang, country or both, comma-separated, any ASCII case (default both)."""

    def __init__(self, description: str, example: str) -> None:
        super().__init__(description, example, load_default=BREAKDOWN_DIMENSIONS)

    def json_schema(self) -> dict[str, Any]:
        lang, country = (case_insensitive(d) for d in BREAKDOWN_DIMENSIONS)
        return {"type": "string", "pattern": f"^(?:{lang}(?:,{country})?|{country}(?:,{lang})?)$"}

    def _deserialize(self, value: str, attr, data, **kwargs) -> tuple[str, ...]:
        parts = value.lower().split(",") if value.isascii() else []
        if not parts or any(p not in BREAKDOWN_DIMENSIONS for p in parts) or len(set(parts)) != len(parts):
            raise ValidationError("must be lang, country or lang,country")
        return tuple(d for d in BREAKDOWN_DIMENSIONS if d in parts)


class Text(Param):
    """A short free-text filter (lang, country, username)."""

    def __init__(self, description: str, example: str, max_length: int) -> None:
        super().__init__(description, example)
        self.max_length = max_length

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "maxLength": self.max_length}

    def _deserialize(self, value: str, attr, data, **kwargs) -> str:
        if len(value) > self.max_length:
            raise ValidationError(f"must be at most {self.max_length} characters")
        return value


class Cursor(Param):
    """`cursor`: meta.next_cursor of the previous page (the id to continue before)."""

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"}

    def _deserialize(self, value: str, attr, data, **kwargs) -> int:
        if not re.fullmatch("[1-9][0-9]{0,18}", value):
            raise ValidationError("is not a cursor returned by this API")
        return min(int(value), SQLITE_MAX_INTEGER)


def encode_cursor(post_id: int) -> str:
    """The cursor for the page after the post `post_id`."""
    return str(post_id)
