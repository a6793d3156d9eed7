"""Storage on SQLite or PostgreSQL: the per-page write path, tag cursors, runs and the collection lease.

This module holds the only SQL that writes. A page, its aggregate updates and the tag's resume
state commit in one transaction, so a crash at any point followed by a re-run yields the same rows.
Every write of a run is fenced by the lease: it renews the lease row that names its run (rowcount 1)
or raises LeaseLost and writes nothing, so a run whose lease was taken over can never write again.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tagwatch import timestamps
from tagwatch.database import Connection, connect, transaction
from tagwatch.geo import resolve_country
from tagwatch.parse import ParsedPage, PostRow, UserRow
from tagwatch.schema import SCHEMA_VERSION, init_db, schema_version

__all__ = ["SCHEMA_VERSION", "Connection", "connect", "init_db", "schema_version", "transaction"]

BUCKET_SECONDS = 900  # quarter hours: every current UTC offset is a multiple of 15 minutes
ALL_TAGS = ""  # aggregate rows under this tag count each post once
LEASE_NAME = "collect"
RUN_STATUSES = ("running", "success", "partial", "failed", "interrupted")
TAG_STATUSES = ("pending", "success", "failed", "skipped", "interrupted", "stalled")
#: a tag's part of a run that really asked the source (the others never started)
TAG_TRIED_STATUSES = ("success", "failed", "interrupted", "stalled")
TRIGGERS = ("manual", "schedule", "api")
LEASE_TTL_SECONDS = 120.0
#: the long-running collector looks for run requests every tick, writes its heartbeat every
#: HEARTBEAT_SECONDS (5 ticks), and counts as alive while its last heartbeat is younger than three beats
TICK_SECONDS = 1.0
HEARTBEAT_SECONDS = 5 * TICK_SECONDS
COLLECTOR_ALIVE_SECONDS = 3 * HEARTBEAT_SECONDS
REQUEST_TTL_SECONDS = 30.0  # an open run request older than this was never served: it expires


@dataclass(frozen=True)
class TagCursor:
    """Where a tag's collection from one source stands: X's committed since_id and any half-followed
    pagination, or a feed source's opaque cursor (`feed`)."""

    since_id: str | None = None
    pending_since_id: str | None = None
    pending_next_token: str | None = None
    pending_newest_id: str | None = None
    feed: str | None = None


@dataclass(frozen=True)
class RunRequest:
    """A run request: pending → claimed → started (with run_id), or rejected / withdrawn / expired."""

    id: int
    status: str
    run_id: int | None = None


@dataclass(frozen=True)
class RequestOutcome:
    """What asking for a run got: `created` (request_id), `running` (run_id), `requested` (the open
    request's request_id) or `no-collector`."""

    kind: str
    request_id: int | None = None
    run_id: int | None = None


@dataclass(frozen=True)
class RunStart:
    """Outcome of asking for the lease: our new run id, or the id of the run that holds it.

    `took_over` names the run whose holder was a dead process on this host (taken over at once).
    """

    run_id: int
    started: bool
    took_over: int | None = None


@dataclass(frozen=True)
class Lease:
    """Who holds the collection lease: the run, its process (host + pid) and until when."""

    run_id: int
    holder: str
    host: str | None
    pid: int | None
    expires_at: float


class LeaseLost(Exception):
    """This run no longer holds the collection lease: another run took over, so it must stop writing."""

    def __init__(self, run_id: int) -> None:
        super().__init__(f"run {run_id} lost the collection lease to another run; it stopped writing")
        self.run_id = run_id


def get_cursor(conn: Connection, tag: str, source: str = "x") -> TagCursor:
    """The tag's stored cursor for `source`, or an empty one for a tag never collected from it."""
    row = conn.execute(
        "SELECT since_id, pending_since_id, pending_next_token, pending_newest_id, cursor "
        "FROM tag_state WHERE source = ? AND tag = ?",
        (source, tag),
    ).fetchone()
    return TagCursor(*row) if row else TagCursor()


def save_cursor(conn: Connection, tag: str, cursor: TagCursor, source: str = "x") -> None:
    """Upsert a tag's cursor for `source` (call inside the page's transaction)."""
    conn.execute(
        "INSERT INTO tag_state(source, tag, since_id, pending_since_id, pending_next_token,"
        " pending_newest_id, cursor, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(source, tag) DO UPDATE SET since_id = excluded.since_id,"
        " pending_since_id = excluded.pending_since_id,"
        " pending_next_token = excluded.pending_next_token,"
        " pending_newest_id = excluded.pending_newest_id, cursor = excluded.cursor,"
        " updated_at = excluded.updated_at",
        (
            source,
            tag,
            cursor.since_id,
            cursor.pending_since_id,
            cursor.pending_next_token,
            cursor.pending_newest_id,
            cursor.feed,
            timestamps.utc(),
        ),
    )


def store_page(
    conn: Connection,
    page: ParsedPage,
    *,
    tag: str,
    cursor: TagCursor,
    run_id: int | None,
    posts_read: int,
    requests: int = 1,
    now: float | None = None,
    source: str = "x",
) -> int:
    """Store one page of `source` with its aggregates, cursor and run figures atomically; returns new
    posts. With a run id the transaction first renews that run's lease, so a fenced-off run writes nothing.
    """
    with transaction(conn):
        if run_id is not None:
            renew_lease(conn, run_id, now=now)
        new_posts = write_rows(conn, page)
        save_cursor(conn, tag, cursor, source)
        if run_id is not None:
            conn.execute(
                "UPDATE run_tags SET requests = requests + ?, posts_read = posts_read + ?,"
                " posts_new = posts_new + ? WHERE run_id = ? AND source = ? AND tag = ?",
                (requests, posts_read, len(new_posts), run_id, source, tag),
            )
    return len(new_posts)


def write_rows(conn: Connection, page: ParsedPage) -> list[PostRow]:
    """Upsert places and users, insert unseen posts and fold them into the aggregates."""
    conn.executemany(
        "INSERT INTO places(id, full_name, country_code, country) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET full_name = excluded.full_name,"
        " country_code = excluded.country_code, country = excluded.country",
        [(p.id, p.full_name, p.country_code, p.country) for p in page.places],
    )
    upsert_users(conn, page.users)
    new_posts = allocate_ids(conn, unseen_posts(conn, page.posts))
    collected_at = timestamps.utc()
    conn.executemany(
        "INSERT INTO posts(id, source, source_key, created_at, created_ts, text, lang, author_id, place_id,"
        " country, country_source, collected_at, country_pending)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                p.id,
                p.source,
                p.identity,
                p.created_at,
                p.created_ts,
                p.text,
                p.lang,
                p.author_id,
                p.place_id,
                p.country,
                p.country_source,
                collected_at,
                int(p.country_pending),
            )
            for p in new_posts
        ],
    )
    conn.executemany(
        "INSERT INTO post_tags(tag, post_id) VALUES (?, ?)",
        [(tag, p.id) for p in new_posts for tag in p.tags],
    )
    conn.executemany(
        "INSERT INTO users(source, id, followers) VALUES (?, ?, 0) ON CONFLICT(source, id) DO NOTHING",
        [(p.source, p.author_id) for p in new_posts if p.author_id],
    )
    add_to_aggregates(conn, new_posts)
    waiting = [p for p in new_posts if p.country_pending]
    for source in sorted({p.source for p in page.posts} | {u.source for u in page.users}):
        resolve_pending_countries(
            conn,
            {u.id for u in page.users if u.source == source}
            | {p.author_id for p in waiting if p.author_id and p.source == source},
            {pl.id for pl in page.places}
            | {p.place_id for p in waiting if p.place_id and p.source == source},
            source,
        )
    return new_posts


def allocate_ids(conn: Connection, posts: Sequence[PostRow]) -> list[PostRow]:
    """New posts with the ids they are stored under: their own (X's post id, a feed post's stored_id)
    unless another post holds it already, then the next free one (the ids stay ordered by time)."""
    taken = {row[0] for row in _select_in(conn, "SELECT id FROM posts WHERE id IN", [p.id for p in posts])}
    placed = []
    for post in posts:
        post_id = post.id
        while post_id in taken:
            post_id += 1
            if conn.execute("SELECT 1 FROM posts WHERE id = ?", (post_id,)).fetchone():
                taken.add(post_id)
        taken.add(post_id)
        placed.append(
            post if post_id == post.id else dataclasses.replace(post, id=post_id, key=post.identity)
        )
    return placed


def upsert_users(conn: Connection, users: Sequence[UserRow]) -> None:
    """Insert or refresh users (latest follower count wins; an unknown count keeps the stored one) and
    keep agg_user's copy in step."""
    now = timestamps.utc()
    for known in (True, False):
        followers = "excluded.followers" if known else "users.followers"
        conn.executemany(
            "INSERT INTO users(source, id, username, name, location, followers, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source, id) DO UPDATE SET"
            " username = coalesce(excluded.username, users.username),"
            " name = coalesce(excluded.name, users.name),"
            f" location = excluded.location, followers = {followers}, updated_at = excluded.updated_at",
            [
                (u.source, u.id, u.username, u.name, u.location, u.followers or 0, now)
                for u in users
                if (u.followers is not None) == known
            ],
        )
    conn.executemany(
        "UPDATE agg_user SET followers = coalesce(?, followers), username = coalesce(?, username)"
        " WHERE source = ? AND user_id = ?"
        " AND (followers != coalesce(?, followers) OR username IS DISTINCT FROM coalesce(?, username))",
        [(u.followers, u.username, u.source, u.id, u.followers, u.username) for u in users],
    )


def resolve_pending_countries(
    conn: Connection, authors: set[str], places: set[str], source: str = "x"
) -> int:
    """Give posts stored without their author or place (missing from `includes`) a country, now that
    one of those is known: the place's country first, else the author's profile country (as on a
    complete page). Posts whose place and author are both still unknown keep waiting.

    Each resolved post moves from the unknown-country row of agg_breakdown to its country's row in
    the same transaction, so the aggregates stay equal to a GROUP BY over the posts.
    """
    pending = [
        row
        for column, values in (("author_id", authors), ("place_id", places))
        for row in _select_in(
            conn,
            f"SELECT id FROM posts WHERE country_pending = 1 AND source = ? AND {column} IN",
            sorted(values),
            (source,),
        )
    ]
    resolved = {}
    for post_id, lang, country, how in _known_countries(conn, sorted({row[0] for row in pending})):
        resolved[post_id] = (lang, country, how)
    if not resolved:
        return 0
    conn.executemany(
        "UPDATE posts SET country_pending = 0, country = ?, country_source = ? WHERE id = ?",
        [(country, how, post_id) for post_id, (_, country, how) in resolved.items()],
    )
    moves: Counter[tuple[str, str, str, str]] = Counter()
    for post_id, tag in _select_in(
        conn, "SELECT post_id, tag FROM post_tags WHERE post_id IN", list(resolved)
    ):
        lang, country, _ = resolved[post_id]
        if country:
            moves[(tag, lang, country, source)] += 1
    _move_breakdown(conn, moves)
    return len(resolved)


def _known_countries(conn: Connection, post_ids: list[int]) -> list[tuple[int, str, str | None, str | None]]:
    """(post id, lang, country, source) for pending posts whose place or author is known by now."""
    rows = _select_in(
        conn,
        "SELECT p.id, coalesce(p.lang, ''), pl.country_code, u.location, u.updated_at IS NOT NULL"
        " FROM posts p LEFT JOIN places pl ON pl.id = p.place_id"
        " LEFT JOIN users u ON u.source = p.source AND u.id = p.author_id"
        " WHERE p.id IN",
        post_ids,
    )
    known = []
    for post_id, lang, place_country, location, author_seen in rows:
        if place_country:
            known.append((post_id, lang, place_country, "place"))
        elif author_seen:
            country = resolve_country(location)
            known.append((post_id, lang, country, "profile" if country else None))
    return known


def _move_breakdown(conn: Connection, moves: Counter[tuple[str, str, str, str]]) -> None:
    """Move posts counted under an unknown country to the country now known (zero rows are dropped)."""
    conn.executemany(
        "UPDATE agg_breakdown SET posts = posts - ?"
        " WHERE tag = ? AND lang = ? AND country = '' AND source = ?",
        [(n, tag, lang, source) for (tag, lang, _, source), n in moves.items()],
    )
    conn.execute("DELETE FROM agg_breakdown WHERE posts = 0")
    _add_breakdown(conn, moves)


def _add_breakdown(conn: Connection, counts: Counter[tuple[str, str, str, str]]) -> None:
    conn.executemany(
        "INSERT INTO agg_breakdown(tag, lang, country, source, posts) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(tag, lang, country, source) DO UPDATE SET posts = agg_breakdown.posts + excluded.posts",
        [(tag, lang, country, source, n) for (tag, lang, country, source), n in counts.items()],
    )


def _select_in(conn: Connection, sql: str, values: Sequence, first: Sequence = ()) -> list[tuple]:
    """Rows of `sql` (ending in `… IN`) over `values`; `first` are the arguments of the placeholders
    before the list. SQLite gets `(?, ?, …)` in chunks under its variable limit. PostgreSQL gets one array
    parameter (`= ANY(?)`): with 900 separate parameters, the generic plan it switches to after five runs
    filtered a whole source's posts through the list one row at a time (ingest slowed as the table grew);
    with one array it keeps the index on every column."""
    if conn.is_postgresql:
        if not values:
            return []
        return [
            tuple(row) for row in conn.execute(f"{sql.removesuffix(' IN')} = ANY(?)", [*first, list(values)])
        ]
    rows: list[tuple] = []
    for start in range(0, len(values), 900):
        chunk = values[start : start + 900]
        marks = ",".join("?" * len(chunk))
        rows.extend(tuple(row) for row in conn.execute(f"{sql} ({marks})", [*first, *chunk]))
    return rows


def unseen_posts(conn: Connection, posts: Sequence[PostRow]) -> list[PostRow]:
    """Posts of the page not stored yet, by identity (source, key); first occurrence wins in the page."""
    by_key: dict[tuple[str, str], PostRow] = {}
    for post in posts:
        by_key.setdefault((post.source, post.identity), post)
    seen: set[tuple[str, str]] = set()
    for source in {source for source, _ in by_key}:
        keys = [key for each, key in by_key if each == source]
        sql = "SELECT source_key FROM posts WHERE source = ? AND source_key IN"
        seen.update((source, row[0]) for row in _select_in(conn, sql, keys, (source,)))
    return [post for identity, post in by_key.items() if identity not in seen]


def add_to_aggregates(conn: Connection, posts: Sequence[PostRow]) -> None:
    """Fold new posts into the small tables the summaries read, so reads never scan posts."""
    quarter: Counter[tuple[str, int, str]] = Counter()
    breakdown: Counter[tuple[str, str, str, str]] = Counter()
    per_user: Counter[tuple[str, str, str]] = Counter()
    per_tag: Counter[tuple[str, str]] = Counter()
    newest: dict[tuple[str, str], int] = {}
    for post in posts:
        bucket, source = post.created_ts // BUCKET_SECONDS, post.source
        for tag in (ALL_TAGS, *post.tags):
            quarter[(tag, bucket, source)] += 1
            per_tag[(tag, source)] += 1
            newest[(tag, source)] = max(newest.get((tag, source), 0), post.created_ts)
            if post.author_id:
                per_user[(source, post.author_id, tag)] += 1
            if tag != ALL_TAGS:
                breakdown[(tag, post.lang or "", post.country or "", source)] += 1
    conn.executemany(
        "INSERT INTO agg_quarter(tag, bucket, source, posts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(tag, bucket, source) DO UPDATE SET posts = agg_quarter.posts + excluded.posts",
        [(*key, n) for key, n in quarter.items()],
    )
    _add_breakdown(conn, breakdown)
    conn.executemany(
        "INSERT INTO agg_user(source, user_id, tag, posts, followers, username)"
        " SELECT ?, ?, ?, ?, followers, username FROM users WHERE source = ? AND id = ? AND true"
        " ON CONFLICT(source, user_id, tag) DO UPDATE SET posts = agg_user.posts + excluded.posts",
        [(source, user_id, tag, n, source, user_id) for (source, user_id, tag), n in per_user.items()],
    )
    conn.executemany(
        "INSERT INTO agg_tag(tag, source, posts, newest_ts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(tag, source) DO UPDATE SET posts = agg_tag.posts + excluded.posts,"
        " newest_ts = CASE WHEN excluded.newest_ts > agg_tag.newest_ts THEN excluded.newest_ts"
        " ELSE agg_tag.newest_ts END",
        [(tag, source, n, newest[(tag, source)]) for (tag, source), n in per_tag.items()],
    )


def begin_run(
    conn: Connection,
    *,
    source: str | Sequence[str],
    trigger: str,
    tags: Sequence[str],
    holder: str,
    now: float | None = None,
    ttl: float = LEASE_TTL_SECONDS,
) -> RunStart:
    """Take the collection lease and record a new run of every tag from each source (one name or
    several), or report the live run that holds the lease.

    A holder that was a process on this host that no longer exists is taken over at once; a holder
    elsewhere keeps the lease until its TTL runs out. Runs left `running` are marked abandoned.
    """
    now = time.time() if now is None else now
    with transaction(conn):
        current = _lease_row(conn)
        if current is not None and current.expires_at > now and not _holder_is_dead(current):
            return RunStart(run_id=current.run_id, started=False)
        took_over = current.run_id if current is not None and current.expires_at > now else None
        conn.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?,"
            " error = 'abandoned: the process running it stopped' WHERE status = 'running'",
            (timestamps.utc(now),),
        )
        conn.execute(
            "UPDATE run_sources SET status = 'failed', error = 'abandoned: the process running it stopped'"
            " WHERE status = 'running'"
        )
        sources = (source,) if isinstance(source, str) else tuple(source)
        run_id = conn.execute(
            "INSERT INTO runs(started_at, source, trigger, status) VALUES (?, ?, ?, 'running') RETURNING id",
            (timestamps.utc(now), ",".join(sources), trigger),
        ).scalar_one()
        conn.executemany(
            "INSERT INTO run_sources(run_id, source, status) VALUES (?, ?, 'running')",
            [(run_id, name) for name in sources],
        )
        conn.executemany(
            "INSERT INTO run_tags(run_id, source, tag) VALUES (?, ?, ?)",
            [(run_id, name, tag) for name in sources for tag in tags],
        )
        conn.execute(
            "INSERT INTO lease(name, run_id, holder, expires_at, host, pid) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET run_id = excluded.run_id, holder = excluded.holder,"
            " expires_at = excluded.expires_at, host = excluded.host, pid = excluded.pid",
            (LEASE_NAME, run_id, holder, now + ttl, socket.gethostname(), os.getpid()),
        )
    return RunStart(run_id=int(run_id), started=True, took_over=took_over)


def live_lease(conn: Connection, now: float | None = None) -> Lease | None:
    """The lease if a live run holds it (unexpired, and not a dead process on this host), else None."""
    now = time.time() if now is None else now
    lease = _lease_row(conn)
    if lease is None or lease.expires_at <= now or _holder_is_dead(lease):
        return None
    return lease


def _lease_row(conn: Connection) -> Lease | None:
    row = conn.execute(
        "SELECT run_id, holder, host, pid, expires_at FROM lease WHERE name = ?", (LEASE_NAME,)
    ).fetchone()
    return Lease(*row) if row else None


def _holder_is_dead(lease: Lease) -> bool:
    """True when the holder ran on this host and its process is gone (or a zombie)."""
    if lease.host != socket.gethostname() or not lease.pid or lease.pid == os.getpid():
        return False
    return not process_alive(lease.pid)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def renew_lease(conn: Connection, run_id: int, extra: float = 0.0, now: float | None = None) -> None:
    """Push this run's lease expiry forward (by `extra` more seconds before a long wait).

    Raises LeaseLost when the lease row no longer names this run: the caller must stop writing.
    """
    now = time.time() if now is None else now
    renewed = conn.execute(
        "UPDATE lease SET expires_at = ? WHERE name = ? AND run_id = ?",
        (now + LEASE_TTL_SECONDS + extra, LEASE_NAME, run_id),
    ).rowcount
    if renewed != 1:
        raise LeaseLost(run_id)


def extend_lease(conn: Connection, run_id: int, seconds: float, now: float | None = None) -> None:
    """Keep the lease through a known wait (backoff, rate-limit reset), in its own transaction."""
    with transaction(conn):
        renew_lease(conn, run_id, extra=seconds, now=now)


def finish_tag(
    conn: Connection,
    run_id: int,
    tag: str,
    status: str,
    error: str | None = None,
    *,
    requests: int = 0,
    now: float | None = None,
    source: str = "x",
) -> None:
    """Record how one tag's part of a run from `source` ended, with the requests not yet counted with
    a page."""
    with transaction(conn):
        renew_lease(conn, run_id, now=now)
        conn.execute(
            "UPDATE run_tags SET status = ?, error = ?, requests = requests + ?"
            " WHERE run_id = ? AND source = ? AND tag = ?",
            (status, error, requests, run_id, source, tag),
        )


def finish_source(
    conn: Connection,
    run_id: int,
    source: str,
    status: str,
    error: str | None = None,
    *,
    failed_tag: str | None = None,
    failed_tag_requests: int = 0,
) -> bool:
    """Record how one source's part of a run ended; False if the run was closed already.

    `failed_tag` is the tag in flight when that part crashed (with its attempts not yet counted); tags
    it never reached become `skipped`. Not fenced by the lease (like finish_run): a run another run
    marked abandoned is no longer `running`, so nothing is written.
    """
    with transaction(conn):
        running = conn.execute("SELECT 1 FROM runs WHERE id = ? AND status = 'running'", (run_id,)).fetchone()
        if running is None:
            return False
        conn.execute(
            "UPDATE run_sources SET status = ?, error = ? WHERE run_id = ? AND source = ?",
            (status, error, run_id, source),
        )
        conn.execute(
            "UPDATE run_tags SET status = 'failed', requests = requests + ?"
            " WHERE run_id = ? AND source = ? AND tag = ?",
            (failed_tag_requests, run_id, source, failed_tag),
        )
        conn.execute(
            "UPDATE run_tags SET status = 'skipped' WHERE run_id = ? AND source = ? AND status = 'pending'",
            (run_id, source),
        )
    return True


def finish_run(
    conn: Connection,
    run_id: int,
    status: str,
    error: str | None = None,
    *,
    failed_tag: str | None = None,
    failed_tag_requests: int = 0,
) -> bool:
    """Close a run that is still `running` and release its lease; False if it was closed already.

    `failed_tag` is the tag in flight when the run crashed (with its attempts not yet counted; the
    run's only source: a run of several records each source's with finish_source); tags the run never
    reached become `skipped`, and sources still `running` take the run's status. A run another run
    marked abandoned after taking its lease keeps that record: a fenced-off run cannot overwrite it.
    """
    with transaction(conn):
        closed = conn.execute(
            "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ? AND status = 'running'",
            (status, error, timestamps.utc(), run_id),
        ).rowcount
        if not closed:
            return False
        conn.execute(
            "UPDATE run_tags SET status = 'failed', requests = requests + ? WHERE run_id = ? AND tag = ?",
            (failed_tag_requests, run_id, failed_tag),
        )
        conn.execute(
            "UPDATE run_tags SET status = 'skipped' WHERE run_id = ? AND status = 'pending'", (run_id,)
        )
        conn.execute(
            "UPDATE run_sources SET status = ?, error = ? WHERE run_id = ? AND status = 'running'",
            (status, error, run_id),
        )
        conn.execute("DELETE FROM lease WHERE name = ? AND run_id = ?", (LEASE_NAME, run_id))
    return True


def live_run_id(conn: Connection, now: float | None = None) -> int | None:
    """The id of the run holding the collection lease alive (see live_lease), if any."""
    lease = live_lease(conn, now)
    return lease.run_id if lease else None


def request_run(conn: Connection, now: float | None = None) -> RequestOutcome:
    """Record a run request unless a run is going, a request is open or no collector is alive."""
    now = time.time() if now is None else now
    with transaction(conn):
        conn.execute(
            "UPDATE run_requests SET status = 'expired'"
            " WHERE status IN ('pending', 'claimed') AND requested_ts < ?",
            (now - REQUEST_TTL_SECONDS,),
        )
        running = live_run_id(conn, now)
        if running is not None:
            return RequestOutcome("running", run_id=running)
        row = conn.execute("SELECT id FROM run_requests WHERE status IN ('pending', 'claimed')").fetchone()
        if row is not None:
            return RequestOutcome("requested", request_id=row.id)
        if not collector_alive(conn, now):
            return RequestOutcome("no-collector")
        request_id = conn.execute(
            "INSERT INTO run_requests(requested_at, requested_ts) VALUES (?, ?) RETURNING id",
            (timestamps.utc(now), now),
        ).scalar_one()
    return RequestOutcome("created", request_id=int(request_id))


def get_run_request(conn: Connection, request_id: int) -> RunRequest | None:
    """One run request, or None."""
    row = conn.execute("SELECT id, status, run_id FROM run_requests WHERE id = ?", (request_id,)).fetchone()
    return RunRequest(row.id, row.status, row.run_id) if row else None


def withdraw_run_request(conn: Connection, request_id: int) -> bool:
    """Take back a request no collector has claimed yet; False if one already has."""
    cursor = conn.execute(
        "UPDATE run_requests SET status = 'withdrawn' WHERE id = ? AND status = 'pending'", (request_id,)
    )
    return cursor.rowcount == 1


def claim_run_request(conn: Connection, holder: str) -> int | None:
    """Claim the pending run request, if any (only a read when there is none: idle ticks write nothing)."""
    row = conn.execute("SELECT id FROM run_requests WHERE status = 'pending' ORDER BY id LIMIT 1").fetchone()
    if row is None:
        return None
    cursor = conn.execute(
        "UPDATE run_requests SET status = 'claimed', claimed_by = ?, claimed_at = ?"
        " WHERE id = ? AND status = 'pending'",
        (holder, timestamps.utc(), row.id),
    )
    return row.id if cursor.rowcount == 1 else None


def settle_run_request(conn: Connection, request_id: int, run_id: int, started: bool) -> None:
    """After the run: `started` with its run, or `rejected` naming the run that held the lease."""
    conn.execute(
        "UPDATE run_requests SET status = ?, run_id = ? WHERE id = ?",
        ("started" if started else "rejected", run_id, request_id),
    )


def beat(conn: Connection, holder: str, started_at: str, now: float | None = None) -> None:
    """Record that the collector `holder` is alive and looking for run requests."""
    conn.execute(
        "INSERT INTO collectors(holder, started_at, beat_ts) VALUES (?, ?, ?)"
        " ON CONFLICT(holder) DO UPDATE SET beat_ts = excluded.beat_ts",
        (holder, started_at, time.time() if now is None else now),
    )


def forget_collector(conn: Connection, holder: str) -> None:
    """A collector that stops cleanly is not alive any more."""
    conn.execute("DELETE FROM collectors WHERE holder = ?", (holder,))


def collector_alive(conn: Connection, now: float | None = None) -> bool:
    """True while some collector's heartbeat is younger than COLLECTOR_ALIVE_SECONDS."""
    now = time.time() if now is None else now
    row = conn.execute(
        "SELECT 1 FROM collectors WHERE beat_ts > ? LIMIT 1", (now - COLLECTOR_ALIVE_SECONDS,)
    ).fetchone()
    return row is not None
