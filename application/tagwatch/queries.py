"""Read-side queries that are not summaries: the post list, runs and readiness facts."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Row

from tagwatch import timestamps
from tagwatch.aggregates import Sources, in_sources
from tagwatch.database import Connection
from tagwatch.store import SCHEMA_VERSION, schema_version


def list_posts(
    conn: Connection,
    *,
    tag: str | None,
    lang: str | None,
    country: str | None,
    username: str | None,
    before: int | None,
    limit: int,
    sources: Sources = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Posts newest first by keyset on id; returns the page and the id to continue before (or None).

    Stored ids are ordered by the post's time for every source (X's snowflakes; feed posts get ids of
    the same layout, parse_feed.stored_id), so "newest first by id" is newest first by time.
    """
    table, key, where, args = _post_filters(conn, tag, lang, country, username, sources)
    if before:
        where.append(f"{key} < ?")
        args.append(before)
    sql = (
        "SELECT p.id, p.source, p.source_key, p.created_at, p.text, p.lang, p.country, p.country_source,"
        " u.username, u.followers"
        f" FROM {table} LEFT JOIN users u ON u.source = p.source AND u.id = p.author_id"
        f" {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY {key} DESC LIMIT ?"
    )
    rows = conn.execute(sql, [*args, limit + 1]).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    tags = post_tags(conn, [row.id for row in rows])
    posts = [
        {
            "id": str(row.id),
            "source": row.source,
            "source_key": row.source_key,
            "created_at": row.created_at,
            "text": row.text,
            "lang": row.lang,
            "country": row.country,
            "country_source": row.country_source,
            "author": {"username": row.username, "followers": row.followers},
            "tags": tags.get(row.id, []),
        }
        for row in rows
    ]
    return posts, (rows[-1].id if more and rows else None)


def _post_filters(
    conn: Connection,
    tag: str | None,
    lang: str | None,
    country: str | None,
    username: str | None,
    sources: Sources,
) -> tuple[str, str, list[str], list[Any]]:
    """(FROM, sort key, WHERE conditions, arguments) for the post list; each filter reads an index.

    A username is resolved first (users_by_username), so that one author's posts come newest first
    straight from posts_by_author; a tag alone pages through post_tags' primary key; lang and country
    use posts_by_lang and posts_by_country (migration 2).
    """
    source, key, where, args = "posts p", "p.id", [], []
    scope, scope_args = in_sources(sources, "p.source")
    if username:
        same_source, same_args = in_sources(sources)
        authors = conn.execute(
            f"SELECT source, id FROM users WHERE lower(username) = lower(?){same_source}",
            (username.lstrip("@"), *same_args),
        ).fetchall()
        where.extend(_authors(authors, args))
    elif scope:
        where.append(scope.removeprefix(" AND "))
        args.extend(scope_args)
    if tag and not username:
        source, key = "post_tags pt JOIN posts p ON p.id = pt.post_id", "pt.post_id"
    if tag:
        exists = "EXISTS (SELECT 1 FROM post_tags x WHERE x.tag = ? AND x.post_id = p.id)"
        where.append(exists if username else "pt.tag = ?")
        args.append(tag)
    for condition, value in (
        ("lower(p.lang) = lower(?)", lang),
        ("p.country = ?", country and country.upper()),
    ):
        if value:
            where.append(condition)
            args.append(value)
    return source, key, where, args


def _authors(authors: list[Row], args: list[Any]) -> list[str]:
    """Conditions for posts by these (source, id) authors that posts_by_author(author_id, source, id)
    answers; the pairs are checked exactly when there are several."""
    if not authors:
        return ["1 = 0"]
    conditions = []
    for column, values in (
        ("p.author_id", [a.id for a in authors]),
        ("p.source", [a.source for a in authors]),
    ):
        conditions.append(f"{column} IN ({','.join('?' * len(values))})")
        args.extend(values)
    if len(authors) > 1:
        conditions.append("(" + " OR ".join(["(p.source = ? AND p.author_id = ?)"] * len(authors)) + ")")
        args.extend(value for author in authors for value in (author.source, author.id))
    return conditions


def post_tags(conn: Connection, ids: list[int]) -> dict[int, list[str]]:
    """{post id: [tags]} for the given posts."""
    if not ids:
        return {}
    result: dict[int, list[str]] = {}
    marks = ",".join("?" * len(ids))
    for post_id, tag in conn.execute(
        f"SELECT post_id, tag FROM post_tags WHERE post_id IN ({marks}) ORDER BY tag", ids
    ):
        result.setdefault(post_id, []).append(tag)
    return result


def list_runs(conn: Connection, limit: int, sources: Sources = None) -> list[dict[str, Any]]:
    """The latest runs (that collected from any of `sources`), newest first, each with its per-source
    and per-tag figures."""
    where, args = in_sources(sources, "rs.source")
    rows = conn.execute(
        "SELECT * FROM runs r"
        + (f" WHERE EXISTS (SELECT 1 FROM run_sources rs WHERE rs.run_id = r.id{where})" if where else "")
        + " ORDER BY id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [_run(conn, row) for row in rows]


def get_run(conn: Connection, run_id: int) -> dict[str, Any] | None:
    """One run with its per-tag figures, or None."""
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    return _run(conn, row) if row else None


def _run(conn: Connection, row: Row) -> dict[str, Any]:
    fields = ("source", "tag", "status", "requests", "posts_read", "posts_new", "error")
    tags = [
        {k: tag_row._mapping[k] for k in fields}
        for tag_row in conn.execute("SELECT * FROM run_tags WHERE run_id = ? ORDER BY tag, source", (row.id,))
    ]
    sources = []
    for part in conn.execute("SELECT * FROM run_sources WHERE run_id = ? ORDER BY source", (row.id,)):
        own = [t for t in tags if t["source"] == part.source]
        figures = {k: sum(t[k] for t in own) for k in ("requests", "posts_read", "posts_new")}
        sources.append({"source": part.source, "status": part.status, "error": part.error, **figures})
    return {
        "id": row.id,
        "status": row.status,
        "source": row.source,
        "sources": sources,
        "trigger": row.trigger,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "error": row.error,
        "posts_read": sum(t["posts_read"] for t in tags),
        "posts_new": sum(t["posts_new"] for t in tags),
        "tags": tags,
    }


def readiness(conn: Connection) -> dict[str, Any]:
    """Schema state and the age of the last successful run (informative)."""
    version = schema_version(conn)
    last = None
    if version:
        row = conn.execute(
            "SELECT finished_at FROM runs WHERE status = 'success' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        last = row.finished_at if row else None
    age = None
    if last:
        age = max(0, int(time.time() - timestamps.to_unix(last)))
    return {
        "backend": conn.backend,
        "schema_version": version,
        "expected_schema_version": SCHEMA_VERSION,
        "last_successful_run_at": last,
        "last_successful_run_age_seconds": age,
    }
