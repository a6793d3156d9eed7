"""One collection run: for each tag, pages from the source into the store, within a budget.

The cursor rules follow X's polling pattern: the first page's newest_id becomes the tag's next
since_id, every later page of the run uses the same since_id, and the pending pagination state is
saved with each stored page so a killed run resumes exactly where it stopped.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tagwatch import metrics, store
from tagwatch.config import Settings
from tagwatch.logs import event
from tagwatch.parse import parse_page
from tagwatch.sources.base import Page, SourceError
from tagwatch.sources.sample import SAMPLE_BASE_URL, SampleWorld, sample_session
from tagwatch.sources.x import XClient

log = logging.getLogger("tagwatch.collector")


@dataclass
class TagResult:
    """What one tag's part of a run did."""

    tag: str
    requests: int = 0
    posts_read: int = 0
    posts_new: int = 0
    error: SourceError | None = None


@dataclass
class RunResult:
    """What a whole run did; `status` is "success" only when every tag succeeded."""

    run_id: int
    started: bool = True
    tags: list[TagResult] = field(default_factory=list)
    error: SourceError | None = None

    @property
    def status(self) -> str:
        failed = self.error is not None or any(t.error for t in self.tags)
        return "failed" if failed else "success"


def build_client(settings: Settings, clock: Callable[[], float] = time.time, **kwargs) -> XClient:
    """The X client for the configured source; the sample is the same client on a sample transport."""
    if settings.source == "x":
        return XClient(
            settings.x_api_base_url, settings.x_bearer_token or "", source="x", clock=clock, **kwargs
        )
    session = sample_session(SampleWorld(), clock)
    return XClient(SAMPLE_BASE_URL, "sample", source="sample", session=session, clock=clock, **kwargs)


class Collector:
    """Runs collections against one database with one client; the only writer of the database."""

    def __init__(
        self,
        settings: Settings,
        client: XClient,
        conn: sqlite3.Connection | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.client = client
        self.conn = conn or store.connect(settings.db_path)
        self.should_stop = should_stop
        self.holder = f"{socket.gethostname()}:{os.getpid()}"

    def run_once(
        self, trigger: str = "schedule", announce: Callable[[int, bool], None] | None = None
    ) -> RunResult:
        """Collect every tag once under the lease; a run that cannot get the lease reports the holder."""
        start = store.begin_run(
            self.conn, source=self.client.source, trigger=trigger, tags=self.settings.tags, holder=self.holder
        )
        if announce is not None:
            announce(start.run_id, start.started)
        if not start.started:
            log.info(
                "another collection run (%s) holds the lease; skipping",
                start.run_id,
                extra=event("run_skipped", run_id=start.run_id),
            )
            return RunResult(run_id=start.run_id, started=False)
        return self._run(start.run_id)

    def _run(self, run_id: int) -> RunResult:
        started = time.monotonic()
        result = RunResult(run_id=run_id)
        log.info(
            "collection run %s started (%s source, %d tags)",
            run_id,
            self.client.source,
            len(self.settings.tags),
            extra=event("run_started", run_id=run_id, source=self.client.source),
        )
        self.client.on_wait = lambda seconds: store.extend_lease(self.conn, run_id, seconds)
        for tag in self.settings.tags:
            if self.should_stop():
                break
            tag_result = self.collect_tag(run_id, tag)
            result.tags.append(tag_result)
            if tag_result.error is not None and tag_result.error.fatal:
                result.error = tag_result.error
                break
        self._finish(result, time.monotonic() - started)
        return result

    def collect_tag(self, run_id: int, tag: str) -> TagResult:
        """Follow one tag's pages from its cursor until done, budget spent or stop requested."""
        result = TagResult(tag=tag)
        cursor = store.get_cursor(self.conn, tag)
        resuming = cursor.pending_next_token is not None
        since_id = cursor.pending_since_id if resuming else cursor.since_id
        newest = cursor.pending_newest_id if resuming else None
        try:
            for page in self.client.pages(
                tag, since_id, cursor.pending_next_token, self.settings.max_posts_per_tag
            ):
                newest = newest or page.newest_id
                if page.since_id != since_id:  # the client dropped a too-old since_id
                    since_id, newest = page.since_id, page.newest_id
                done = (
                    not page.next_token
                    or result.posts_read + page.result_count >= self.settings.max_posts_per_tag
                )
                next_cursor = cursor_after(cursor, since_id, newest, None if done else page.next_token)
                self._store(run_id, tag, page, next_cursor, result)
                cursor = next_cursor
                if self.should_stop():
                    break
        except SourceError as exc:
            result.error = exc
            self._log_failure(run_id, tag, exc)
        status = "failed" if result.error else "success"
        store.finish_tag(self.conn, run_id, tag, status, str(result.error) if result.error else None)
        log.info(
            "#%s: %s, %d read, %d new in %d requests",
            tag,
            status,
            result.posts_read,
            result.posts_new,
            result.requests,
            extra=event(
                "tag_finished",
                outcome="success" if result.error is None else "failure",
                tag=tag,
                run_id=run_id,
                source=self.client.source,
                posts_read=result.posts_read,
                posts_new=result.posts_new,
            ),
        )
        if result.error is None:
            metrics.LAST_SUCCESS.labels(tag=tag).set(time.time())
        return result

    def _store(self, run_id: int, tag: str, page: Page, cursor: store.TagCursor, result: TagResult) -> None:
        started = time.monotonic()
        parsed = parse_page(page.payload, self.settings.tags, tag)
        new = store.store_page(
            self.conn,
            parsed,
            tag=tag,
            cursor=cursor,
            run_id=run_id,
            posts_read=page.result_count,
            requests=page.requests,
        )
        result.requests += page.requests
        result.posts_read += page.result_count
        result.posts_new += new
        source = self.client.source
        metrics.POSTS_READ.labels(tag=tag, source=source).inc(page.result_count)
        metrics.POSTS_COLLECTED.labels(tag=tag, source=source).inc(new)
        extra = event(
            "page_stored",
            tag=tag,
            source=source,
            run_id=run_id,
            posts_read=page.result_count,
            posts_new=new,
            duration_seconds=time.monotonic() - started,
            rate_limit_remaining=page.rate_limit_remaining,
        )
        log.info("stored a page for #%s: %d read, %d new", tag, page.result_count, new, extra=extra)

    def _log_failure(self, run_id: int, tag: str, exc: SourceError) -> None:
        log.error(
            "collection of #%s failed: %s",
            tag,
            exc,
            extra=event(
                "run_failed" if exc.fatal else "tag_failed",
                error_type=exc.kind,
                error_message=str(exc),
                tag=tag,
                run_id=run_id,
                source=self.client.source,
            ),
        )

    def _finish(self, result: RunResult, seconds: float) -> None:
        error = result.error or next((t.error for t in result.tags if t.error), None)
        store.finish_run(self.conn, result.run_id, result.status, str(error) if error else None)
        metrics.COLLECTION_RUNS.labels(status=result.status).inc()
        metrics.COLLECTION_DURATION.observe(seconds)
        refresh_stored_posts(self.conn, self.settings.tags)
        log.log(
            logging.INFO if result.status == "success" else logging.ERROR,
            "collection run %s finished: %s, %d read, %d new",
            result.run_id,
            result.status,
            sum(t.posts_read for t in result.tags),
            sum(t.posts_new for t in result.tags),
            extra=event(
                "run_finished",
                outcome="success" if result.status == "success" else "failure",
                run_id=result.run_id,
                run_status=result.status,
                posts_read=sum(t.posts_read for t in result.tags),
                posts_new=sum(t.posts_new for t in result.tags),
                duration_seconds=seconds,
            ),
        )


def cursor_after(
    cursor: store.TagCursor, since_id: str | None, newest: str | None, next_token: str | None
) -> store.TagCursor:
    """The cursor to save with a page: pending while pages remain, committed once the tag is done."""
    if next_token:
        return store.TagCursor(cursor.since_id, since_id, next_token, newest)
    committed = max_id(cursor.since_id, newest)
    return store.TagCursor(since_id=committed)


def max_id(*ids: str | None) -> str | None:
    """The newest of several post ids (numeric comparison; ids are snowflakes)."""
    present = [int(i) for i in ids if i]
    return str(max(present)) if present else None


def refresh_stored_posts(conn: sqlite3.Connection, tags: tuple[str, ...]) -> None:
    """Set tagwatch_stored_posts from the aggregate table (cheap: one row per tag)."""
    counts = dict(conn.execute("SELECT tag, posts FROM agg_tag").fetchall())
    for tag in tags:
        metrics.STORED_POSTS.labels(tag=tag).set(counts.get(tag, 0))
