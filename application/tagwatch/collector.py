"""One collection run: for each tag, pages from the source into the store, within budgets, under a lease.

Cursor rules: every page of a pagination uses the same since_id; the pending since_id, next_token and
the highest id stored so far are saved with each page, so a killed or stopped run resumes exactly; when
the pagination ends, the tag's since_id becomes the highest id actually stored from its own query.
A pagination that makes no progress (a repeated next_token, or a page with no id it had not seen)
stops as `stalled` and keeps the old since_id, so nothing unread is ever skipped.

Run statuses: `success` (every tag done), `partial` (a tag failed, stalled or was skipped, or a
rate-limit wait was beyond the cap), `failed` (auth/credit errors, the circuit breaker, lost lease,
any unexpected exception), `interrupted` (a stop was requested). A run never raises: whatever goes
wrong ends it with a status and one log line, and the collector loop goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tagwatch import metrics, sources, store
from tagwatch.config import Settings
from tagwatch.database import DB_ERRORS
from tagwatch.logs import event
from tagwatch.parse import ParsedPage, parse_page
from tagwatch.sources.base import Page, SourceError, StopRequested
from tagwatch.sources.x import Attempts, XClient

log = logging.getLogger("tagwatch.collector")

BREAKER_TAGS = 3  # consecutive tags failing with the source unavailable open the circuit
OUTCOMES = {"success": "success", "partial": "failure", "failed": "failure", "interrupted": "unknown"}


@dataclass
class TagResult:
    """What one tag's part of a run did; `requests` counts every HTTP attempt, failed ones included."""

    tag: str
    status: str = "pending"
    requests: int = 0
    posts_read: int = 0
    posts_new: int = 0
    error: SourceError | None = None
    stored_requests: int = 0  # attempts already added to run_tags along with a stored page


@dataclass
class RunResult:
    """What a whole run did. `started` is False when another live run holds the lease (or the run
    could not even be recorded: then `status` is "failed"); `status` is one of store.RUN_STATUSES."""

    run_id: int | None
    started: bool = True
    status: str = "running"
    tags: list[TagResult] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def error_type(self) -> str | None:
        """The loggable cause: a SourceError's kind, else the exception's class name."""
        if self.error is None:
            return None
        return self.error.kind if isinstance(self.error, SourceError) else type(self.error).__name__


def build_client(settings: Settings, clock: Callable[[], float] = time.time, **kwargs) -> XClient:
    """The client of `settings.source` (x or sample: the X client) until the collector runs every source."""
    client = sources.build_client(settings.source, settings, clock, **kwargs)
    if not isinstance(client, XClient):  # service.check_sources stops start-up before this
        raise ValueError(f"the collector runs only x or sample for now, not {settings.source}")
    return client


@dataclass
class Pagination:
    """One tag's pagination state: what to ask next, the highest id stored, and what it has seen."""

    committed: str | None  # the tag's since_id from the last finished pagination
    since_id: str | None  # the since_id every page of this pagination uses
    next_token: str | None
    newest: str | None  # highest post id stored from this pagination so far
    seen: set[int] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.started_with_token = self.next_token is not None

    @property
    def resumed(self) -> bool:
        """True when this pagination continues one saved by an earlier run."""
        return self.started_with_token

    @classmethod
    def resume(cls, cursor: store.TagCursor) -> Pagination:
        """Continue a half-followed pagination if one was saved, else start from the committed since_id."""
        if cursor.pending_next_token:
            pending = (cursor.pending_since_id, cursor.pending_next_token, cursor.pending_newest_id)
            return cls(cursor.since_id, *pending)
        return cls(cursor.since_id, cursor.since_id, None, None)

    def advance(self, page: Page, ids: list[int]) -> str:
        """Take in a stored page: "more" to follow next_token, "done" at the end, "stalled" on no progress."""
        if page.restarted:  # the client dropped a rejected token or a too-old since_id
            self.since_id, self.seen, self.tokens = page.since_id, set(), set()
        floor = int(self.since_id or 0)
        fresh = [i for i in ids if i not in self.seen and i > floor]
        self.seen.update(ids)
        if ids:
            self.newest = max_id(self.newest, str(max(ids)))
        token = page.next_token
        if not token:
            return "done"
        if not fresh or token == page.sent_token or token in self.tokens:
            return "stalled"
        self.tokens.add(token)
        self.next_token = token
        return "more"

    def cursor(self, state: str) -> store.TagCursor:
        """The cursor saved with a page: pending while pages remain; committed once done; unchanged
        (pagination dropped) when stalled, so the next run reads again from the old since_id."""
        if state == "more":
            return store.TagCursor(self.committed, self.since_id, self.next_token, self.newest)
        if state == "stalled":
            return store.TagCursor(since_id=self.committed)
        return store.TagCursor(since_id=max_id(self.committed, self.newest))


class Collector:
    """Runs collections against one database with one client; the only writer of the database."""

    def __init__(
        self,
        settings: Settings,
        client: XClient,
        conn: store.Connection | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.client = client
        self.conn = conn or store.connect(settings.db_url)
        self.should_stop = should_stop
        self.clock = clock
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        metrics.precreate_collector(
            settings.tags, settings.sources
        )  # every outcome and reason exists at 0 from the start

    def run_once(self, trigger: str = "schedule") -> RunResult:
        """Collect every tag once under the lease. Never raises: every outcome is in the result."""
        try:
            start = store.begin_run(
                self.conn,
                source=self.client.source,
                trigger=trigger,
                tags=self.settings.tags,
                holder=self.holder,
                now=self.clock(),
            )
        except DB_ERRORS as exc:
            log.error(
                "could not start a collection run: %s",
                exc,
                exc_info=True,
                extra=event("run_failed", error_type=type(exc).__name__, error_message=str(exc)),
            )
            return RunResult(run_id=None, started=False, status="failed", error=exc)
        if not start.started:
            log.info(
                "another collection run (%s) holds the lease; skipping",
                start.run_id,
                extra=event("run_skipped", run_id=start.run_id),
            )
            return RunResult(run_id=start.run_id, started=False)
        if start.took_over is not None:
            log.warning(
                "run %s took over the lease of run %s, whose process on this host is gone",
                start.run_id,
                start.took_over,
                extra=event("lease_taken_over", run_id=start.run_id, previous_run_id=start.took_over),
            )
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
        self.client.on_wait = lambda seconds: store.extend_lease(self.conn, run_id, seconds, now=self.clock())
        self.client.should_stop = self.should_stop
        try:
            self._collect_tags(result)
        except Exception as exc:  # a run must end with a record, never kill the collector loop
            result.error = exc
        result.status = run_status(result, len(self.settings.tags))
        self._finish(result, time.monotonic() - started)
        return result

    def _collect_tags(self, result: RunResult) -> None:
        """Each tag in turn until all are done, a stop is requested, or an error ends the run."""
        unavailable = 0
        for tag in self.settings.tags:
            if self.should_stop():
                return
            tag_result = TagResult(tag=tag)
            result.tags.append(tag_result)
            self.collect_tag(result.run_id, tag, tag_result)
            error = tag_result.error
            if tag_result.status == "interrupted" or (error is not None and error.ends_run):
                result.error = error if error is not None and error.fatal else None
                return
            unavailable = unavailable + 1 if error is not None and error.kind == "source_unavailable" else 0
            if unavailable >= BREAKER_TAGS:
                result.error = self._open_circuit(result.run_id, unavailable)
                return

    def _open_circuit(self, run_id: int, tags: int) -> SourceError:
        """Stop trying further tags: the source is down for all of them."""
        log.warning(
            "%d tags in a row found the source unavailable; ending the run without trying the rest",
            tags,
            extra=event("circuit_open", run_id=run_id, source=self.client.source, failed_tags=tags),
        )
        return SourceError("circuit_open", f"the source was unavailable for {tags} tags in a row")

    def collect_tag(self, run_id: int, tag: str, result: TagResult | None = None) -> TagResult:
        """Follow one tag's pages from its cursor until done, stalled, out of budget or stopped.

        A resumed pagination walks towards older posts; once it is done the tag catches up with posts
        newer than it in the same run, so a run after an interrupted one leaves the tag up to date.
        Source errors and stop requests end the tag here; anything else (a lost lease, a full disk,
        a bug) marks it failed and propagates, so the run fails with one line.
        """
        result = result or TagResult(tag=tag)
        attempts = Attempts(deadline=self.client.monotonic() + self.settings.tag_time_budget)
        try:
            pagination = Pagination.resume(store.get_cursor(self.conn, tag))
            state = self._follow(run_id, tag, pagination, attempts, result)
            if pagination.resumed and state == "done":
                state = self._follow(
                    run_id, tag, Pagination.resume(store.get_cursor(self.conn, tag)), attempts, result
                )
            result.status = {"done": "success", "budget": "success"}.get(state, state)
        except StopRequested:
            result.status = "interrupted"
        except SourceError as exc:
            result.status, result.error = "failed", exc
        except Exception:
            result.status = "failed"
            raise
        finally:
            result.requests = attempts.requests
        self._end_tag(run_id, result)
        return result

    def _follow(
        self, run_id: int, tag: str, pagination: Pagination, attempts: Attempts, result: TagResult
    ) -> str:
        """Store pages until the pagination is done, stalled or out of budget, or a stop is requested."""
        pages = self.client.pages(
            tag, pagination.since_id, pagination.next_token, self.settings.max_posts_per_tag, attempts
        )
        for page in pages:
            state = self._take_page(run_id, tag, page, pagination, attempts, result)
            if state != "more":
                return state
            if self.should_stop():
                return "interrupted"
        return "done"

    def _take_page(
        self, run_id: int, tag: str, page: Page, pagination: Pagination, attempts: Attempts, result: TagResult
    ) -> str:
        """Store one page with the cursor it leads to; returns the pagination state after it."""
        parsed = parse_page(page.payload, self.settings.tags, tag)
        state = pagination.advance(page, [post.id for post in parsed.posts])
        read = result.posts_read + page.result_count
        over_requests = attempts.requests >= self.settings.max_requests_per_tag
        if state == "more" and (read >= self.settings.max_posts_per_tag or over_requests):
            state = "budget"
        requests = attempts.requests - result.stored_requests
        self._store(run_id, tag, page, parsed, pagination.cursor(state), requests, result)
        result.stored_requests = attempts.requests
        if state == "stalled":
            self._log_stall(run_id, tag, page)
        elif state == "budget" and over_requests:
            log.warning(
                "#%s: request budget of %d spent; the rest of this pagination is skipped",
                tag,
                self.settings.max_requests_per_tag,
                extra=event("request_budget_spent", tag=tag, run_id=run_id, requests=attempts.requests),
            )
        return state

    def _store(
        self,
        run_id: int,
        tag: str,
        page: Page,
        parsed: ParsedPage,
        cursor: store.TagCursor,
        requests: int,
        result: TagResult,
    ) -> None:
        started = time.monotonic()
        new = store.store_page(
            self.conn,
            parsed,
            tag=tag,
            cursor=cursor,
            run_id=run_id,
            posts_read=page.result_count,
            requests=requests,
            now=self.clock(),
        )
        result.posts_read += page.result_count
        result.posts_new += new
        source = self.client.source
        metrics.POSTS_READ.labels(tag=tag, source=source).inc(page.result_count)
        metrics.POSTS_COLLECTED.labels(tag=tag, source=source).inc(new)
        self._note_incomplete(run_id, tag, page, parsed)
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

    def _note_incomplete(self, run_id: int, tag: str, page: Page, parsed: ParsedPage) -> None:
        """Log and count a 200 whose data is incomplete: errors[] entries, authors or places missing."""
        counts = {
            "errors": len(page.partial_errors),
            "missing_author": parsed.missing_authors,
            "missing_place": parsed.missing_places,
        }
        if not any(counts.values()):
            return
        for reason, count in counts.items():
            metrics.SOURCE_PARTIAL_ERRORS.labels(source=self.client.source, reason=reason).inc(count)
        first = page.partial_errors[0] if page.partial_errors else {}
        log.warning(
            "#%s: incomplete page (%d errors, %d posts without their author, %d without their place)%s",
            tag,
            *counts.values(),
            f": {first.get('title') or ''} {first.get('detail') or ''}".rstrip() if first else "",
            extra=event(
                "partial_page",
                tag=tag,
                run_id=run_id,
                source=self.client.source,
                partial_errors=counts["errors"],
                missing_authors=counts["missing_author"],
                missing_places=counts["missing_place"],
            ),
        )

    def _log_stall(self, run_id: int, tag: str, page: Page) -> None:
        why = "the same next_token again" if page.next_token == page.sent_token else "a page with nothing new"
        log.warning(
            "#%s: pagination stalled (%s); stopping, the next run reads again from since_id",
            tag,
            why,
            extra=event("pagination_stalled", tag=tag, run_id=run_id, source=self.client.source, reason=why),
        )

    def _end_tag(self, run_id: int, result: TagResult) -> None:
        """Record the tag's end with the attempts no stored page carried; log one line for it."""
        error = result.error
        store.finish_tag(
            self.conn,
            run_id,
            result.tag,
            result.status,
            str(error) if error else None,
            requests=result.requests - result.stored_requests,
            now=self.clock(),
        )
        if error is not None and not error.fatal:
            log.warning(
                "collection of #%s failed: %s",
                result.tag,
                error,
                extra=event(
                    "tag_failed",
                    error_type=error.kind,
                    error_message=str(error),
                    tag=result.tag,
                    run_id=run_id,
                    source=self.client.source,
                ),
            )
        log.info(
            "#%s: %s, %d read, %d new in %d requests",
            result.tag,
            result.status,
            result.posts_read,
            result.posts_new,
            result.requests,
            extra=event(
                "tag_finished",
                outcome="success" if result.status == "success" else "failure",
                tag=result.tag,
                run_id=run_id,
                source=self.client.source,
                tag_status=result.status,
                requests=result.requests,
                posts_read=result.posts_read,
                posts_new=result.posts_new,
            ),
        )
        if result.status == "success":
            metrics.LAST_SUCCESS.labels(tag=result.tag, source=self.client.source).set(time.time())

    def _finish(self, result: RunResult, seconds: float) -> None:
        """Close the run record (if this run still owns it), count it, and log how it ended."""
        error = result.error or next((t.error for t in result.tags if t.error), None)
        crashed = next((t for t in result.tags if t.status == "failed" and t.error is None), None)
        record_error = None
        try:
            store.finish_run(
                self.conn,
                result.run_id,
                result.status,
                str(error) if error else None,
                failed_tag=crashed.tag if crashed else None,
                failed_tag_requests=crashed.requests - crashed.stored_requests if crashed else 0,
            )
            refresh_stored_posts(self.conn, self.settings.tags)
        except DB_ERRORS as exc:  # e.g. the disk is still full: the lease expires by itself
            record_error = f"{type(exc).__name__}: {exc}"
        metrics.COLLECTION_RUNS.labels(outcome=result.status).inc()
        metrics.SOURCE_RUNS.labels(source=self.client.source, outcome=result.status).inc()
        metrics.COLLECTION_DURATION.observe(seconds)
        if result.status == "interrupted":
            self._log_interrupted(result)
        if result.status == "failed":
            self._log_failed(result, record_error)
        tags = result.tags
        log.log(
            logging.INFO if result.status == "success" else logging.WARNING,
            "collection run %s finished: %s, %d read, %d new",
            result.run_id,
            result.status,
            sum(t.posts_read for t in tags),
            sum(t.posts_new for t in tags),
            extra=event(
                "run_finished",
                outcome=OUTCOMES[result.status],
                run_id=result.run_id,
                run_status=result.status,
                posts_read=sum(t.posts_read for t in tags),
                posts_new=sum(t.posts_new for t in tags),
                requests=sum(t.requests for t in tags),
                duration_seconds=seconds,
            ),
        )

    def _log_interrupted(self, result: RunResult) -> None:
        in_flight = next((t.tag for t in result.tags if t.status == "interrupted"), None)
        log.warning(
            "collection run %s stopped on request%s; unreached tags are skipped",
            result.run_id,
            f" during #{in_flight}, which resumes where it stopped" if in_flight else "",
            extra=event("run_interrupted", run_id=result.run_id, tag=in_flight),
        )

    def _log_failed(self, result: RunResult, record_error: str | None) -> None:
        """The one ERROR line of a failed run, with ECS error fields (and the trace of a crash)."""
        error = result.error
        unexpected = not isinstance(error, SourceError | store.LeaseLost)
        log.error(
            "collection run %s failed: %s",
            result.run_id,
            error,
            exc_info=error if unexpected else None,
            extra=event(
                "run_failed",
                error_type=result.error_type,
                error_message=str(error),
                run_id=result.run_id,
                source=self.client.source,
                record_error=record_error,
            ),
        )


def run_status(result: RunResult, tag_count: int) -> str:
    """The run's status from its tags and run-level error (see the module docstring)."""
    if result.error is not None:
        return "failed"
    if any(t.status == "interrupted" for t in result.tags):
        return "interrupted"
    ended_early = any(t.error is not None and t.error.ends_run for t in result.tags)
    if len(result.tags) < tag_count and not ended_early:
        return "interrupted"  # stopped between two tags
    if len(result.tags) == tag_count and all(t.status == "success" for t in result.tags):
        return "success"
    return "partial"


def max_id(*ids: str | None) -> str | None:
    """The newest of several post ids (numeric comparison; ids are snowflakes)."""
    present = [int(i) for i in ids if i]
    return str(max(present)) if present else None


def refresh_stored_posts(conn: store.Connection, tags: tuple[str, ...]) -> None:
    """Set tagwatch_stored_posts from the aggregate table (cheap: one row per tag)."""
    counts = dict(conn.execute("SELECT tag, posts FROM agg_tag").fetchall())
    for tag in tags:
        metrics.STORED_POSTS.labels(tag=tag).set(counts.get(tag, 0))
