"""One source's part of a collection run: every tag from that source into the store, within its budgets.

Each source's part has its own client (session, rate-limit window), its own store connection and its
own per-tag cursors and figures (tag_state and run_tags keyed by source and tag), so one source failing
or waiting never blocks another. Every write is fenced by the run's lease.

X cursor rules: every page of a pagination uses the same since_id; the pending since_id, next_token and
the highest id stored so far are saved with each page, so a killed or stopped run resumes exactly; when
the pagination ends, the tag's since_id becomes the highest id actually stored from its own query. A
pagination that makes no progress (a repeated next_token, or a page with no id it had not seen) stops as
`stalled` and keeps the old since_id, so nothing unread is ever skipped. Feed sources (Mastodon, Bluesky)
hand over an opaque cursor with each page; it is stored with the page's rows in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tagwatch import metrics, parse_bluesky, parse_mastodon, store
from tagwatch.config import Settings
from tagwatch.database import DB_ERRORS
from tagwatch.logs import event, source_context
from tagwatch.parse import ParsedPage, parse_page
from tagwatch.parse_feed import stored_rows
from tagwatch.sources import Client
from tagwatch.sources.base import FeedPage, Page, SourceError, StopRequested
from tagwatch.sources.http import Attempts
from tagwatch.sources.x import XClient

log = logging.getLogger("tagwatch.collector")

BREAKER_TAGS = 3  # consecutive tags failing with the source unavailable open the circuit
FEED_PARSERS = {"mastodon": parse_mastodon.parse_page, "bluesky": parse_bluesky.parse_page}


@dataclass
class TagResult:
    """What one tag's part of a run did; `requests` counts every HTTP attempt, failed ones included."""

    tag: str
    source: str = "x"
    status: str = "pending"
    requests: int = 0
    posts_read: int = 0
    posts_new: int = 0
    error: SourceError | None = None
    stored_requests: int = 0  # attempts already added to run_tags along with a stored page


@dataclass
class SourceResult:
    """What one source's part of a run did; `status` is one of store.RUN_STATUSES."""

    source: str
    status: str = "running"
    tags: list[TagResult] = field(default_factory=list)
    error: BaseException | None = None

    def first_error(self) -> BaseException | None:
        """The run-level error, else the first tag's."""
        return self.error or next((t.error for t in self.tags if t.error), None)


@dataclass
class Pagination:
    """One X tag's pagination state: what to ask next, the highest id stored, and what it has seen."""

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


class SourceRun:
    """Collects every tag from one source for one run, on its own connection."""

    def __init__(
        self,
        settings: Settings,
        client: Client,
        conn: store.Connection,
        run_id: int,
        should_stop: Callable[[], bool],
        clock: Callable[[], float],
    ) -> None:
        self.settings, self.client, self.conn, self.run_id = settings, client, conn, run_id
        self.source: str = client.source
        self.should_stop, self.clock = should_stop, clock
        self.result = SourceResult(self.source)

    def run(self) -> SourceResult:
        """Every tag until done, a stop, or an error that ends this source's part; never raises."""
        with source_context(self.source):
            self.client.on_wait = lambda seconds: store.extend_lease(
                self.conn, self.run_id, seconds, now=self.clock()
            )
            self.client.should_stop = self.should_stop
            if hasattr(self.client, "new_run"):
                self.client.new_run()
            try:
                self._collect_tags()
            except Exception as exc:  # a run must end with a record, never kill the collector loop
                self.result.error = exc
            self.result.status = run_status(self.result, len(self.settings.tags))
            self._record()
        return self.result

    def _collect_tags(self) -> None:
        """Each tag in turn until all are done, a stop is requested, or an error ends this part."""
        unavailable = 0
        for tag in self.settings.tags:
            if self.should_stop():
                return
            tag_result = TagResult(tag=tag, source=self.source)
            self.result.tags.append(tag_result)
            self.collect_tag(tag, tag_result)
            error = tag_result.error
            if tag_result.status == "interrupted" or (error is not None and error.ends_run):
                self.result.error = error if error is not None and error.fatal else None
                return
            unavailable = unavailable + 1 if error is not None and error.kind == "source_unavailable" else 0
            if unavailable >= BREAKER_TAGS:
                self.result.error = self._open_circuit(unavailable)
                return

    def _open_circuit(self, tags: int) -> SourceError:
        """Stop trying further tags: the source is down for all of them."""
        log.warning(
            "%d tags in a row found %s unavailable; ending its part of the run without trying the rest",
            tags,
            self.source,
            extra=event("circuit_open", run_id=self.run_id, source=self.source, failed_tags=tags),
        )
        return SourceError("circuit_open", f"{self.source} was unavailable for {tags} tags in a row")

    def collect_tag(self, tag: str, result: TagResult) -> TagResult:
        """Follow one tag's pages from its cursor until done, stalled, out of budget or stopped.

        Source errors and stop requests end the tag here; anything else (a lost lease, a full disk,
        a bug) marks it failed and propagates, so this source's part fails with one line.
        """
        attempts = Attempts(deadline=self.client.monotonic() + self.settings.tag_time_budget)
        try:
            if isinstance(self.client, XClient):
                result.status = self._x_tag(tag, attempts, result)
            else:
                result.status = self._feed_tag(tag, attempts, result)
        except StopRequested:
            result.status = "interrupted"
        except SourceError as exc:
            result.status, result.error = "failed", exc
        except Exception:
            result.status = "failed"
            raise
        finally:
            result.requests = attempts.requests
        self._end_tag(result)
        return result

    def _x_tag(self, tag: str, attempts: Attempts, result: TagResult) -> str:
        """A resumed pagination walks towards older posts; once it is done the tag catches up with posts
        newer than it in the same run, so a run after an interrupted one leaves the tag up to date."""
        pagination = Pagination.resume(store.get_cursor(self.conn, tag, self.source))
        state = self._follow(tag, pagination, attempts, result)
        if pagination.resumed and state == "done":
            pagination = Pagination.resume(store.get_cursor(self.conn, tag, self.source))
            state = self._follow(tag, pagination, attempts, result)
        return {"done": "success", "budget": "success"}.get(state, state)

    def _follow(self, tag: str, pagination: Pagination, attempts: Attempts, result: TagResult) -> str:
        """Store pages until the pagination is done, stalled or out of budget, or a stop is requested."""
        client = self.client
        assert isinstance(client, XClient)
        pages = client.pages(
            tag, pagination.since_id, pagination.next_token, self.settings.max_posts_per_tag, attempts
        )
        for page in pages:
            state = self._take_page(tag, page, pagination, attempts, result)
            if state != "more":
                return state
            if self.should_stop():
                return "interrupted"
        return "done"

    def _take_page(
        self, tag: str, page: Page, pagination: Pagination, attempts: Attempts, result: TagResult
    ) -> str:
        """Store one page with the cursor it leads to; returns the pagination state after it."""
        parsed = parse_page(page.payload, self.settings.tags, tag, self.source)
        state = pagination.advance(page, [post.id for post in parsed.posts])
        read = result.posts_read + page.result_count
        over_requests = attempts.requests >= self.settings.max_requests_per_tag
        if state == "more" and (read >= self.settings.max_posts_per_tag or over_requests):
            state = "budget"
        self._store(tag, parsed, pagination.cursor(state), page, attempts, result)
        self._note_incomplete(tag, page.partial_errors, parsed)
        if state == "stalled":
            why = (
                "the same next_token again"
                if page.next_token == page.sent_token
                else "a page with nothing new"
            )
            self._log_stall(tag, why)
        elif state == "budget" and over_requests:
            self._log_request_budget(tag, attempts)
        return state

    def _feed_tag(self, tag: str, attempts: Attempts, result: TagResult) -> str:
        """Store a feed source's pages with the cursor each carries. An origin that failed (one Mastodon
        server) fails the tag only when no origin answered; the others' pages are stored meanwhile."""
        cursor = store.get_cursor(self.conn, tag, self.source).feed
        failures: list[SourceError] = []
        answered = stalled = False
        for page in self.client.pages(tag, cursor, self.settings.max_posts_per_tag, attempts):
            self._take_feed_page(tag, page, attempts, result)
            if page.error is not None:
                failures.append(page.error)
                self._log_origin_failed(tag, page)
            else:
                answered = True
            stalled = stalled or any(n.get("kind") == "pagination_stalled" for n in page.partial_errors)
            if self.should_stop():
                return "interrupted"
            if attempts.requests >= self.settings.max_requests_per_tag:
                self._log_request_budget(tag, attempts)
                break
        if failures and not answered:
            raise failures[0]
        return "stalled" if stalled else "success"

    def _take_feed_page(self, tag: str, page: FeedPage, attempts: Attempts, result: TagResult) -> None:
        parsed = stored_rows(FEED_PARSERS[self.source](page.payload, self.settings.tags, tag))
        self._store(tag, parsed, store.TagCursor(feed=page.cursor), page, attempts, result)
        metrics.SOURCE_PARTIAL_ERRORS.labels(source=self.source, reason="errors").inc(
            len(page.partial_errors)
        )

    def _store(
        self,
        tag: str,
        parsed: ParsedPage,
        cursor: store.TagCursor,
        page: Page | FeedPage,
        attempts: Attempts,
        result: TagResult,
    ) -> None:
        """One page, its cursor and the attempts not yet counted, in one fenced transaction."""
        started, read = time.monotonic(), page.result_count
        new = store.store_page(
            self.conn,
            parsed,
            tag=tag,
            cursor=cursor,
            run_id=self.run_id,
            posts_read=read,
            requests=attempts.requests - result.stored_requests,
            now=self.clock(),
            source=self.source,
        )
        result.stored_requests = attempts.requests
        result.posts_read += read
        result.posts_new += new
        metrics.POSTS_READ.labels(tag=tag, source=self.source).inc(read)
        metrics.POSTS_COLLECTED.labels(tag=tag, source=self.source).inc(new)
        extra = event(
            "page_stored",
            tag=tag,
            source=self.source,
            run_id=self.run_id,
            posts_read=read,
            posts_new=new,
            duration_seconds=time.monotonic() - started,
            rate_limit_remaining=page.rate_limit_remaining,
        )
        log.info("stored a page for #%s from %s: %d read, %d new", tag, self.source, read, new, extra=extra)

    def _note_incomplete(self, tag: str, partial_errors: list, parsed: ParsedPage) -> None:
        """Log and count a 200 whose data is incomplete: errors[] entries, authors or places missing."""
        counts = {
            "errors": len(partial_errors),
            "missing_author": parsed.missing_authors,
            "missing_place": parsed.missing_places,
        }
        if not any(counts.values()):
            return
        for reason, count in counts.items():
            metrics.SOURCE_PARTIAL_ERRORS.labels(source=self.source, reason=reason).inc(count)
        first = partial_errors[0] if partial_errors else {}
        log.warning(
            "#%s: incomplete page (%d errors, %d posts without their author, %d without their place)%s",
            tag,
            *counts.values(),
            f": {first.get('title') or ''} {first.get('detail') or ''}".rstrip() if first else "",
            extra=event(
                "partial_page",
                tag=tag,
                run_id=self.run_id,
                source=self.source,
                partial_errors=counts["errors"],
                missing_authors=counts["missing_author"],
                missing_places=counts["missing_place"],
            ),
        )

    def _log_stall(self, tag: str, why: str) -> None:
        log.warning(
            "#%s: pagination stalled (%s); stopping, the next run reads again from since_id",
            tag,
            why,
            extra=event("pagination_stalled", tag=tag, run_id=self.run_id, source=self.source, reason=why),
        )

    def _log_request_budget(self, tag: str, attempts: Attempts) -> None:
        log.warning(
            "#%s: request budget of %d spent on %s; the rest of this pagination is skipped",
            tag,
            self.settings.max_requests_per_tag,
            self.source,
            extra=event(
                "request_budget_spent",
                tag=tag,
                run_id=self.run_id,
                source=self.source,
                requests=attempts.requests,
            ),
        )

    def _log_origin_failed(self, tag: str, page: FeedPage) -> None:
        error = page.error
        assert error is not None
        log.warning(
            "#%s: %s failed: %s",
            tag,
            page.origin,
            error,
            extra=event(
                "origin_failed",
                tag=tag,
                run_id=self.run_id,
                source=self.source,
                origin=page.origin,
                error_type=error.kind,
                error_message=str(error),
            ),
        )

    def _end_tag(self, result: TagResult) -> None:
        """Record the tag's end with the attempts no stored page carried; log one line for it."""
        error = result.error
        store.finish_tag(
            self.conn,
            self.run_id,
            result.tag,
            result.status,
            str(error) if error else None,
            requests=result.requests - result.stored_requests,
            now=self.clock(),
            source=self.source,
        )
        result.stored_requests = result.requests
        if error is not None and not error.fatal:
            log.warning(
                "collection of #%s from %s failed: %s",
                result.tag,
                self.source,
                error,
                extra=event(
                    "tag_failed",
                    error_type=error.kind,
                    error_message=str(error),
                    tag=result.tag,
                    run_id=self.run_id,
                    source=self.source,
                ),
            )
        log.info(
            "#%s from %s: %s, %d read, %d new in %d requests",
            result.tag,
            self.source,
            result.status,
            result.posts_read,
            result.posts_new,
            result.requests,
            extra=event(
                "tag_finished",
                outcome="success" if result.status == "success" else "failure",
                tag=result.tag,
                run_id=self.run_id,
                source=self.source,
                tag_status=result.status,
                requests=result.requests,
                posts_read=result.posts_read,
                posts_new=result.posts_new,
            ),
        )
        if result.status == "success":
            metrics.LAST_SUCCESS.labels(tag=result.tag, source=self.source).set(time.time())

    def _record(self) -> None:
        """Record how this source's part ended (the tag in flight of a crash, unreached tags skipped)."""
        result = self.result
        error = result.first_error()
        crashed = next((t for t in result.tags if t.status == "failed" and t.error is None), None)
        try:
            store.finish_source(
                self.conn,
                self.run_id,
                self.source,
                result.status,
                str(error) if error else None,
                failed_tag=crashed.tag if crashed else None,
                failed_tag_requests=crashed.requests - crashed.stored_requests if crashed else 0,
            )
        except DB_ERRORS as exc:  # e.g. the disk is still full: finish_run tries again
            log.warning(
                "could not record how %s's part of run %s ended: %s",
                self.source,
                self.run_id,
                exc,
                extra=event("source_record_failed", run_id=self.run_id, source=self.source),
            )
        metrics.SOURCE_RUNS.labels(source=self.source, outcome=result.status).inc()
        log.info(
            "%s's part of run %s finished: %s",
            self.source,
            self.run_id,
            result.status,
            extra=event("source_finished", run_id=self.run_id, source=self.source, run_status=result.status),
        )


def run_status(result: SourceResult, tag_count: int) -> str:
    """A source's part's status from its tags and error: `failed` on a run-level error (auth/credit
    errors, the circuit breaker, a lost lease, any unexpected exception), `interrupted` on a stop,
    `success` when every tag succeeded, else `partial` (a tag failed, stalled or was skipped, or a
    rate-limit wait was beyond the cap)."""
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
