"""One collection run: every configured source at once, each in its own thread, under one lease.

Each source's part (tagwatch.source_run) has its own client, store connection, cursors and figures;
they serialize only on the database's writer lock, and every write is fenced by the run's lease.

Run statuses: each source's part ends `success`, `partial`, `failed` or `interrupted`
(source_run.run_status); the run is `interrupted` if a stop reached any part, `success` if every part
succeeded, `failed` if every part failed, else `partial`: one source failing never fails a run in which
another succeeded. A run never raises: whatever goes wrong ends it with a status and one log line, and
the collector loop goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tagwatch import metrics, store
from tagwatch.config import Settings
from tagwatch.database import DB_ERRORS
from tagwatch.logs import event, source_context
from tagwatch.source_run import SourceResult, SourceRun, TagResult
from tagwatch.sources import Client
from tagwatch.sources.base import SourceError

log = logging.getLogger("tagwatch.collector")

OUTCOMES = {"success": "success", "partial": "failure", "failed": "failure", "interrupted": "unknown"}


@dataclass
class RunResult:
    """What a whole run did. `started` is False when another live run holds the lease (or the run
    could not even be recorded: then `status` is "failed"); `status` is one of store.RUN_STATUSES."""

    run_id: int | None
    started: bool = True
    status: str = "running"
    sources: list[SourceResult] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def tags(self) -> list[TagResult]:
        """Every tag's result, source after source."""
        return [tag for part in self.sources for tag in part.tags]

    @property
    def error_type(self) -> str | None:
        """The loggable cause: a SourceError's kind, else the exception's class name."""
        if self.error is None:
            return None
        return self.error.kind if isinstance(self.error, SourceError) else type(self.error).__name__


def combined_status(statuses: list[str]) -> str:
    """The run's status from its sources' (see the module docstring)."""
    if "interrupted" in statuses:
        return "interrupted"
    if statuses and all(s == "success" for s in statuses):
        return "success"
    if all(s == "failed" for s in statuses):
        return "failed"
    return "partial"


class Collector:
    """Runs collections against one database with one client per source; the only writer of the database."""

    def __init__(
        self,
        settings: Settings,
        clients: Client | Mapping[str, Client],
        conn: store.Connection | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clients = dict(clients) if isinstance(clients, Mapping) else {clients.source: clients}
        self.conn = conn or store.connect(settings.db_url)
        self.should_stop = should_stop
        self.clock = clock
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        metrics.precreate_collector(
            settings.tags, self.clients
        )  # every outcome and reason at 0 from the start

    @property
    def client(self) -> Client:
        """The first source's client (the only one of a one-source collector)."""
        return next(iter(self.clients.values()))

    def run_once(self, trigger: str = "schedule") -> RunResult:
        """Collect every tag from every source once under the lease. Never raises.

        Its log lines carry the run's sources as `tagwatch.source` (comma-separated); each source's
        part logs under its own name."""
        with source_context(",".join(self.clients)):
            return self._run_once(trigger)

    def _run_once(self, trigger: str) -> RunResult:
        try:
            start = store.begin_run(
                self.conn,
                source=tuple(self.clients),
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
            "collection run %s started (%s, %d tags)",
            run_id,
            ", ".join(self.clients),
            len(self.settings.tags),
            extra=event("run_started", run_id=run_id),
        )
        result.sources = self._run_sources(run_id)
        failed = [part for part in result.sources if part.status == "failed"]
        result.status = combined_status([part.status for part in result.sources])
        if result.status == "failed" and failed:
            result.error = failed[0].first_error()
        self._finish(result, time.monotonic() - started)
        return result

    def _run_sources(self, run_id: int) -> list[SourceResult]:
        """Each source's part: in this thread for one source, else one thread (and connection) each."""
        if len(self.clients) == 1:
            return [self._part(self.client, self.conn, run_id).run()]
        results: dict[str, SourceResult] = {}

        def work(name: str, client: Client) -> None:
            try:
                conn = store.connect(self.settings.db_url)
            except DB_ERRORS as exc:
                results[name] = SourceResult(name, status="failed", error=exc)
                return
            try:
                results[name] = self._part(client, conn, run_id).run()
            finally:
                conn.close()

        threads = [
            threading.Thread(target=work, args=(name, client), name=f"collector-{name}", daemon=True)
            for name, client in self.clients.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [results.get(name) or SourceResult(name, status="failed") for name in self.clients]

    def _part(self, client: Client, conn: store.Connection, run_id: int) -> SourceRun:
        return SourceRun(self.settings, client, conn, run_id, self.should_stop, self.clock)

    def _finish(self, result: RunResult, seconds: float) -> None:
        """Close the run record (if this run still owns it), count it, and log how it ended."""
        error = result.error or next((p.first_error() for p in result.sources if p.first_error()), None)
        record_error = None
        try:
            store.finish_run(self.conn, result.run_id, result.status, str(error) if error else None)
            refresh_stored_posts(self.conn, self.settings.tags, tuple(self.clients))
        except DB_ERRORS as exc:  # e.g. the disk is still full: the lease expires by itself
            record_error = f"{type(exc).__name__}: {exc}"
        metrics.COLLECTION_RUNS.labels(outcome=result.status).inc()
        metrics.COLLECTION_DURATION.observe(seconds)
        if result.status == "interrupted":
            self._log_interrupted(result)
        for part in result.sources:
            if part.status == "failed":
                self._log_failed(result.run_id, part, record_error)
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

    def _log_failed(self, run_id: int | None, part: SourceResult, record_error: str | None) -> None:
        """The one ERROR line of a failed source part, with ECS error fields (and the trace of a crash)."""
        error = part.first_error()
        unexpected = not isinstance(error, SourceError | store.LeaseLost)
        kind = error.kind if isinstance(error, SourceError) else type(error).__name__ if error else None
        log.error(
            "collection run %s failed for %s: %s",
            run_id,
            part.source,
            error,
            exc_info=error if unexpected and error is not None else None,
            extra=event(
                "run_failed",
                error_type=kind,
                error_message=str(error),
                run_id=run_id,
                source=part.source,
                record_error=record_error,
            ),
        )


def refresh_stored_posts(conn: store.Connection, tags: tuple[str, ...], sources: tuple[str, ...]) -> None:
    """Set tagwatch_stored_posts{tag,source} from the aggregate table (cheap: one row per tag and source)."""
    counts = {
        (row.tag, row.source): row.posts for row in conn.execute("SELECT tag, source, posts FROM agg_tag")
    }
    for source in sources:
        for tag in tags:
            metrics.STORED_POSTS.labels(tag=tag, source=source).set(counts.get((tag, source), 0))
