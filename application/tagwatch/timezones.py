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
    known = start  # the latest instant known to be at offset `current` (what _first_change needs)
    while known < end - 1:
        probe = min(known + DAY, end - 1)
        if offset_at(zone, probe) != current:
            change = _first_change(zone, known, probe, current)
            segments.append((seg_start, change, current))
            seg_start, current = change, offset_at(zone, change)
            known = change
        else:
            known = probe
    segments.append((seg_start, end, current))
    return segments


def _first_change(zone: ZoneInfo, low: int, high: int, offset: int) -> int:
    """Smallest quarter-aligned time in (low, high] whose offset differs from `offset`, the one at low."""
    low, high = low // QUARTER, -(-high // QUARTER)
    while high - low > 1:
        middle = (low + high) // 2
        if offset_at(zone, middle * QUARTER) == offset:
            low = middle
        else:
            high = middle
    return high * QUARTER
