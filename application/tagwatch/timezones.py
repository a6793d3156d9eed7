"""UTC-offset segments of a time zone, so hourly sums stay exact across DST and half-hour zones.

Aggregates are stored in UTC quarter hours; within a segment of constant offset a local hour is a
fixed set of quarter hours, so SQL can group them directly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

DAY = 86400
QUARTER = 900


def offset_at(zone: ZoneInfo, ts: int) -> int:
    """UTC offset in seconds of `zone` at Unix time `ts`."""
    offset = datetime.fromtimestamp(ts, tz=UTC).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def offset_segments(zone: ZoneInfo, start: int, end: int) -> list[tuple[int, int, int]]:
    """[(segment_start, segment_end, offset)] covering [start, end); transitions found to the quarter hour."""
    segments: list[tuple[int, int, int]] = []
    seg_start, current = start, offset_at(zone, start)
    probe = start
    while probe < end:
        step_end = min(probe + DAY, end)
        if offset_at(zone, step_end - 1) != current:
            change = _first_change(zone, probe, step_end - 1, current)
            segments.append((seg_start, change, current))
            seg_start, current = change, offset_at(zone, change)
            probe = change
            continue
        probe = step_end
    segments.append((seg_start, end, current))
    return segments


def _first_change(zone: ZoneInfo, low: int, high: int, offset: int) -> int:
    """Smallest quarter-hour-aligned time in (low, high] whose offset differs from `offset`."""
    low, high = low // QUARTER, -(-high // QUARTER)
    while high - low > 1:
        middle = (low + high) // 2
        if offset_at(zone, middle * QUARTER) == offset:
            low = middle
        else:
            high = middle
    return high * QUARTER
