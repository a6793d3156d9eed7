"""Every timestamp tagwatch writes or reads: RFC 3339, with `Z` for UTC, parsed by the standard library.

One module so that the API, the logs and the store agree on one form: `2026-11-20T10:00:00Z` (seconds),
`2026-11-20T10:00:00.123Z` (milliseconds, for post times and log lines), and an explicit offset such as
`+05:30` only for local times in a time zone other than UTC.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, tzinfo


def rfc3339(moment: datetime, millis: bool = False) -> str:
    """`moment` (timezone-aware) as RFC 3339; a zero offset is written `Z`."""
    text = moment.isoformat(timespec="milliseconds" if millis else "seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def utc(ts: float | None = None, millis: bool = False) -> str:
    """Unix seconds (default: now) as RFC 3339 UTC with a `Z`."""
    return rfc3339(datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC), millis)


def parse(text: str) -> datetime:
    """An ISO 8601 / RFC 3339 date or date-time (`Z` or an offset or none); ValueError when malformed."""
    return datetime.fromisoformat(text)


def to_unix(text: str) -> float:
    """Unix seconds of an RFC 3339 time with `Z` or an offset (a naive time is read as UTC)."""
    moment = parse(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def local(ts: float, zone: tzinfo) -> str:
    """Unix seconds as RFC 3339 in `zone` (`Z` when the offset is zero)."""
    return rfc3339(datetime.fromtimestamp(ts, tz=zone))
