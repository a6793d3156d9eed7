"""The collector process: `tagwatch collect --once` and the long-running `tagwatch collect` loop.

The main thread only waits, on tagwatch.signals, for SIGINT/SIGTERM or for the work to end; collection runs
in a worker thread whose every wait is `stop.wait`. On a signal the main thread sets `stop` and gives the
worker STOP_GRACE_SECONDS to end its run after the current page. The loop runs once at start and then
TAGWATCH_COLLECT_INTERVAL seconds after the previous run ended, claims each run request of
POST /api/v1/collect within a tick, and writes a heartbeat so the API can tell a collector is there.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress

from tagwatch import metrics, startup, store, timestamps
from tagwatch.config import Settings
from tagwatch.logs import event, source_context
from tagwatch.signals import SignalWatch, signal_name

log = logging.getLogger("tagwatch.collector")
#: `collect --once` exit codes by run status; 2 is a start-up error, 5 means another run holds the lease
EXIT_CODES = {"success": 0, "failed": 1, "partial": 3, "interrupted": 4}
EXIT_LEASE_HELD = 5
STOP_GRACE_SECONDS = 8.0
MAX_ERROR_BACKOFF_SECONDS = 60.0
SAMPLE_NOTICE = (
    "Using the built-in SAMPLE source: these posts are generated, not real. For real posts without a key set "
    "TAGWATCH_SOURCES=mastodon; from X, set X_BEARER_TOKEN (X bills every post read, see README)."
)
OUTCOMES = {
    "success": "every tag is done",
    "partial": "some tags failed or were skipped (GET /api/v1/runs/{run_id} lists them)",
    "failed": "the run failed; its error is in the log and in the run record",
    "interrupted": "stopped by a signal; the next run resumes where this one stopped",
}


def collect_once(settings: Settings) -> int:
    """One run with trigger `manual`; returns the exit code and prints one line saying why."""
    stop = threading.Event()
    results: list = []
    collector = build_collector(settings, store.connect(settings.db_url), stop)
    with SignalWatch() as signals:
        ended = _work(lambda: results.append(collector.run_once("manual")), stop, signals)
    code, line = once_outcome(results[0] if results else None, ended)
    sys.stderr.write(f"tagwatch: collect: {line}\n")
    return code


def once_outcome(result, ended: bool = True) -> tuple[int, str]:
    """The exit code and the one-line reason for a `collect --once` run result."""
    if not ended:
        return EXIT_CODES["interrupted"], f"the run did not stop within {STOP_GRACE_SECONDS:.0f} s"
    if result is None or result.run_id is None:
        return EXIT_CODES["failed"], "the run ended with an error before it was recorded (see the log)"
    if not result.started:
        return EXIT_LEASE_HELD, f"not started: run {result.run_id} holds the collection lease (exit 5)"
    code = EXIT_CODES.get(result.status, EXIT_CODES["failed"])
    reason = OUTCOMES.get(result.status, "unknown status").format(run_id=result.run_id)
    return code, f"run {result.run_id} {result.status}: {reason} (exit {code})"


def collect_forever(settings: Settings) -> int:
    """The loop until SIGINT/SIGTERM; returns 0 when that stopped it in time, else 1."""
    stop = threading.Event()
    server = _serve_metrics(settings)
    try:
        conn = store.connect(settings.db_url)
        loop = CollectLoop(settings, build_collector(settings, conn, stop), conn, stop)
        with SignalWatch() as signals:
            ended = _work(loop.run, stop, signals)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    clean = ended and stop.is_set()  # else the loop ended by itself: a bug, already logged
    log.info("collector stopped", extra=event("collector_stopped", outcome="success" if clean else "failure"))
    return 0 if clean else 1


def build_collector(settings: Settings, conn: store.Connection, stop: threading.Event):
    """The Collector on every configured source; its waits (rate limits, backoff) end when `stop` is set.

    Called before signals are caught, it also does the slow one-off work (the gazetteer index, seconds of
    CPU) that no signal could cut short inside a run: a signal meanwhile simply ends the process.
    """
    from tagwatch import geo, sources
    from tagwatch.collector import Collector

    if "sample" in settings.sources:
        log.warning(SAMPLE_NOTICE, extra=event("sample_source"))
    metrics.precreate_collector(settings.tags, settings.sources)
    geo.resolve_country("Berlin")
    clients = sources.build_clients(settings, sleep=stop.wait)
    return Collector(settings, clients, conn=conn, should_stop=stop.is_set)


def _work(task: Callable[[], object], stop: threading.Event, signals: SignalWatch) -> bool:
    """Run `task` in a worker thread until it ends or a signal comes; False if it outlives the grace."""
    done = threading.Event()

    def target() -> None:
        try:
            task()
        except Exception:
            log.exception("the collector failed", extra=event("collector_failed", outcome="failure"))
        finally:
            done.set()
            signals.wake()

    worker = threading.Thread(target=target, name="collector", daemon=True)
    worker.start()
    while not done.is_set():
        signum = signals.wait(timeout=1.0)
        if signum == 0:  # woken by the worker as it ends
            done.wait(1.0)
        elif signum:
            name = signal_name(signum)
            extra = event("signal_received", signal=name)
            log.info("%s received; stopping after the current page", name, extra=extra)
            stop.set()
            break
    if done.wait(STOP_GRACE_SECONDS):
        return True
    log.error(
        "the collector did not stop within %.0f s; exiting without it",
        STOP_GRACE_SECONDS,
        extra=event("collector_stop_timeout", outcome="failure"),
    )
    return False


def _serve_metrics(settings: Settings):
    """Bind the collector's /metrics before any collection starts; a taken port exits 2."""
    if not settings.metrics_port:
        return None
    from prometheus_client import start_http_server

    try:
        server, _ = start_http_server(settings.metrics_port, addr=settings.host)
    except OSError as exc:
        startup.fail(startup.port_error("TAGWATCH_METRICS_PORT", settings.host, settings.metrics_port, exc))
    log.info(
        "collector metrics on %s:%d/metrics",
        settings.host,
        settings.metrics_port,
        extra=event("metrics_listening", port=settings.metrics_port),
    )
    return server


class CollectLoop:
    """The long-running collector: a run at start and every interval after the last, and each run request."""

    def __init__(self, settings: Settings, collector, conn: store.Connection, stop: threading.Event) -> None:
        self.settings = settings
        self.collector = collector
        self.conn = conn
        self.stop = stop
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = timestamps.utc()
        self.next_beat = 0.0

    def run(self) -> None:
        """Tick every TICK_SECONDS until `stop`; an error in a tick is logged and retried with backoff."""
        with source_context(",".join(self.settings.sources)):
            self._loop()

    def _loop(self) -> None:
        log.info(
            "collector started: a run now and %d s after each run; run requests within %.0f s",
            self.settings.collect_interval,
            store.TICK_SECONDS,
            extra=event(
                "collector_started", holder=self.holder, interval_seconds=self.settings.collect_interval
            ),
        )
        next_run, errors = time.monotonic(), 0
        try:
            while not self.stop.is_set():
                try:
                    next_run, errors = self.tick(next_run), 0
                except Exception:
                    errors += 1
                    log.exception("collector loop error; retrying", extra=event("collector_loop_failed"))
                self.stop.wait(min(MAX_ERROR_BACKOFF_SECONDS, store.TICK_SECONDS * 2**errors))
        finally:
            with suppress(Exception):
                store.forget_collector(self.conn, self.holder)

    def tick(self, next_run: float) -> float:
        """Serve a pending run request, or the scheduled run when due; returns when the next one is due."""
        self.beat()
        request_id = store.claim_run_request(self.conn, self.holder)
        if request_id is not None:
            log.info(
                "run request %d claimed",
                request_id,
                extra=event("run_request_claimed", request_id=request_id, holder=self.holder),
            )
            result = self.collector.run_once("api")
            store.settle_run_request(self.conn, request_id, result.run_id, result.started)
        elif time.monotonic() >= next_run and not self.stop.is_set():
            self.collector.run_once("schedule")
        else:
            return next_run
        self.beat(now=True)
        return time.monotonic() + self.settings.collect_interval

    def beat(self, now: bool = False) -> None:
        """Write the heartbeat every HEARTBEAT_SECONDS (and right after a run), so idle ticks rarely write."""
        if now or time.monotonic() >= self.next_beat:
            store.beat(self.conn, self.holder, self.started_at)
            self.next_beat = time.monotonic() + store.HEARTBEAT_SECONDS
