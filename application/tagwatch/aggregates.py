"""Read-side queries for the summaries; they touch only the small aggregate tables.

Their cost depends on the number of tags, sources, users shown and quarter hours in range, never on
how many posts are stored. `sources` narrows every answer to those sources; None counts every post
once (each post has one source, so summing over sources counts it once).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from tagwatch import timestamps
from tagwatch.database import Connection
from tagwatch.store import ALL_TAGS, BUCKET_SECONDS, TAG_TRIED_STATUSES
from tagwatch.timezones import offset_segments

HOUR = 3600
MAX_SERIES_SECONDS = 366 * 86400  # the longest hourly series served (8784 rows)
Sources = tuple[str, ...] | None


def in_sources(sources: Sources, column: str = "source") -> tuple[str, tuple[str, ...]]:
    """An ` AND column IN (…)` condition and its arguments, or nothing for every source."""
    if not sources:
        return "", ()
    return f" AND {column} IN ({','.join('?' * len(sources))})", tuple(sources)


def top_users(conn: Connection, tag: str | None, limit: int, sources: Sources = None) -> list[dict[str, Any]]:
    """Users with the most followers (latest count), ties by username; posts counted in scope."""
    where, args = in_sources(sources)
    rows = conn.execute(
        "SELECT source, user_id, username, followers, posts FROM agg_user"
        f" WHERE tag = ?{where} AND username IS NOT NULL ORDER BY followers DESC, username, source LIMIT ?",
        (tag or ALL_TAGS, *args, limit),
    ).fetchall()
    ids = sorted({row.user_id for row in rows})
    names = {
        (source, user_id): name
        for source, user_id, name in _rows_by_ids(
            conn, "SELECT source, id, name FROM users WHERE id IN ({})", ids
        )
    }
    tags: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, user_id, user_tag in _rows_by_ids(
        conn,
        "SELECT source, user_id, tag FROM agg_user WHERE user_id IN ({}) AND tag != '' ORDER BY tag",
        ids,
    ):
        tags[(source, user_id)].append(user_tag)
    return [
        {
            "username": row.username,
            "name": names.get((row.source, row.user_id)),
            "source": row.source,
            "followers": row.followers,
            "posts": row.posts,
            "tags": tags[(row.source, row.user_id)],
        }
        for row in rows
    ]


def tag_span(conn: Connection, tag: str | None, sources: Sources = None) -> tuple[int, int] | None:
    """[first, last) Unix seconds covered by stored posts in scope, at quarter-hour precision."""
    where, args = in_sources(sources)
    low, high = conn.execute(
        f"SELECT min(bucket), max(bucket) FROM agg_quarter WHERE tag = ?{where}", (tag or ALL_TAGS, *args)
    ).fetchone()
    if low is None:
        return None
    return low * BUCKET_SECONDS, (high + 1) * BUCKET_SECONDS


def posts_by_hour(
    conn: Connection,
    tag: str | None,
    zone: ZoneInfo,
    since: int | None,
    until: int | None,
    sources: Sources = None,
) -> list[dict[str, Any]]:
    """Hourly counts in `zone`, oldest first, zero hours included, from since (or the first post) to until.

    At most MAX_SERIES_SECONDS are covered: from `since` when given, else up to `until` or the last post.
    """
    span = tag_span(conn, tag, sources)
    if span is None and (since is None or until is None):
        return []
    start = since if since is not None else span[0]  # type: ignore[index]
    end = until if until is not None else span[1]  # type: ignore[index]
    if end - start > MAX_SERIES_SECONDS:
        if since is not None:
            end = start + MAX_SERIES_SECONDS
        else:
            start = end - MAX_SERIES_SECONDS
    series = []
    for seg_start, seg_end, offset in offset_segments(zone, start, end):
        counts = _hour_counts(conn, tag, seg_start, seg_end, offset, sources)
        first, last = (seg_start + offset) // HOUR, (seg_end - 1 + offset) // HOUR
        label_zone = timezone(timedelta(seconds=offset))
        for local_hour in range(first, last + 1):
            moment = datetime.fromtimestamp(local_hour * HOUR - offset, tz=UTC).astimezone(label_zone)
            series.append({"hour": timestamps.rfc3339(moment), "count": counts.get(local_hour, 0)})
    return _merge_split_hours(series)


def posts_by_hour_of_day(
    conn: Connection, tag: str | None, zone: ZoneInfo, sources: Sources = None
) -> list[dict[str, int]]:
    """24 rows: posts per local hour of day in `zone`, summed over all stored posts."""
    totals = [0] * 24
    span = tag_span(conn, tag, sources)
    if span is not None:
        for seg_start, seg_end, offset in offset_segments(zone, *span):
            for local_hour, count in _hour_counts(conn, tag, seg_start, seg_end, offset, sources).items():
                totals[local_hour % 24] += count
    return [{"hour": hour, "count": count} for hour, count in enumerate(totals)]


def _hour_counts(
    conn: Connection, tag: str | None, start: int, end: int, offset: int, sources: Sources
) -> dict[int, int]:
    """{local hour index: posts} for quarter buckets in [start, end) at a fixed UTC offset."""
    where, args = in_sources(sources)
    rows = conn.execute(
        "SELECT (bucket * ? + ?) / ? AS local_hour, CAST(sum(posts) AS BIGINT) FROM agg_quarter"
        f" WHERE tag = ? AND bucket >= ? AND bucket < ?{where} GROUP BY local_hour",
        (
            BUCKET_SECONDS,
            offset,
            HOUR,
            tag or ALL_TAGS,
            start // BUCKET_SECONDS,
            -(-end // BUCKET_SECONDS),
            *args,
        ),
    )
    return dict(rows.fetchall())


def _merge_split_hours(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An hour cut by a segment edge appears twice with the same label; add the halves together."""
    merged: list[dict[str, Any]] = []
    for point in series:
        if merged and merged[-1]["hour"] == point["hour"]:
            merged[-1]["count"] += point["count"]
        else:
            merged.append(point)
    return merged


def breakdown(
    conn: Connection, tags: tuple[str, ...], by: tuple[str, ...], sources: Sources = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Posts per tag by lang and/or country (unknown country is None), and per-tag totals."""
    marks = ",".join("?" * len(tags))
    dims = ", ".join(by)
    where, args = in_sources(sources)
    rows = conn.execute(
        f"SELECT tag, {dims}, CAST(sum(posts) AS BIGINT) AS n FROM agg_breakdown WHERE tag IN ({marks})"
        f"{where} GROUP BY tag, {dims} ORDER BY tag, n DESC, {dims}",
        (*tags, *args),
    ).fetchall()
    data = []
    for row in rows:
        item: dict[str, Any] = {"tag": row.tag}
        for dim in by:
            item[dim] = row._mapping[dim] or None
        item["count"] = row.n
        data.append(item)
    totals = dict.fromkeys(tags, 0)
    totals.update(
        conn.execute(
            f"SELECT tag, CAST(sum(posts) AS BIGINT) FROM agg_tag WHERE tag IN ({marks}){where} GROUP BY tag",
            (*tags, *args),
        ).fetchall()
    )
    return data, totals


def tag_overview(conn: Connection, tags: tuple[str, ...], sources: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each tracked tag: total posts, newest post time and last finished run over `sources`, and the
    same figures for each of them (`sources`: the filter, else every configured source and any other
    that has stored posts)."""
    marks = ",".join("?" * len(tags))
    stats = {
        (row.tag, row.source): row
        for row in conn.execute(
            f"SELECT tag, source, posts, newest_ts FROM agg_tag WHERE tag IN ({marks})", tags
        )
    }
    tried = ",".join("?" * len(TAG_TRIED_STATUSES))
    last_runs = {
        (row.tag, row.source): row
        for row in conn.execute(
            "SELECT rt.tag, rt.source, rt.run_id, rt.status, r.finished_at"
            " FROM run_tags rt JOIN runs r ON r.id = rt.run_id"
            f" WHERE rt.tag IN ({marks}) AND rt.run_id = (SELECT max(run_id) FROM run_tags x"
            f" WHERE x.tag = rt.tag AND x.source = rt.source AND x.status IN ({tried}))",
            (*tags, *TAG_TRIED_STATUSES),
        )
    }
    result = []
    for tag in tags:
        per_source = [
            _source_figures(source, stats.get((tag, source)), last_runs.get((tag, source)))
            for source in sources
        ]
        newest = [s["newest_post_at"] for s in per_source if s["newest_post_at"]]
        runs = [s["last_run"] for s in per_source if s["last_run"]]
        result.append(
            {
                "tag": tag,
                "posts": sum(s["posts"] for s in per_source),
                "newest_post_at": max(newest) if newest else None,
                "last_run": max(runs, key=lambda run: run["id"]) if runs else None,
                "sources": per_source,
            }
        )
    return result


def stored_sources(conn: Connection) -> list[str]:
    """Every source that has stored posts."""
    return [row[0] for row in conn.execute("SELECT DISTINCT source FROM agg_tag WHERE tag = ''")]


def _source_figures(source: str, stat: Any, run: Any) -> dict[str, Any]:
    return {
        "source": source,
        "posts": stat.posts if stat else 0,
        "newest_post_at": timestamps.utc(stat.newest_ts) if stat else None,
        "last_run": {"id": run.run_id, "status": run.status, "finished_at": run.finished_at} if run else None,
    }


def _rows_by_ids(conn: Connection, sql: str, ids: list[Any]) -> list[tuple[Any, Any]]:
    if not ids:
        return []
    return [tuple(row) for row in conn.execute(sql.format(",".join("?" * len(ids))), ids)]
