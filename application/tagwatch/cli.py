"""The `tagwatch` command: run, serve, collect, init-db, seed.

Configuration comes only from the environment; a bad value stops here with one line naming it.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import click

from tagwatch import metrics, store
from tagwatch.config import ConfigError, Settings
from tagwatch.logs import configure_logging, event

log = logging.getLogger("tagwatch.cli")
SAMPLE_NOTICE = (
    "Using the built-in SAMPLE source: these posts are generated, not real. To collect real posts from X, "
    "set X_BEARER_TOKEN (and optionally TAGWATCH_SOURCE=x); X bills every post read, see README."
)


def load_settings() -> Settings:
    """Settings from the environment, or exit 2 with one line naming the bad variable."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        click.echo(f"tagwatch: configuration error: {exc}", err=True)
        sys.exit(2)


@click.group()
def main() -> None:
    """Collect hashtag posts into SQLite and serve summaries over a REST API."""


@main.command("init-db")
def init_db() -> None:
    """Create or migrate the schema (idempotent; never drops data)."""
    settings = load_settings()
    configure_logging(settings.log_level)
    version = store.init_db(settings.db_path)
    log.info("database %s is at schema version %d", settings.db_path, version, extra=event("init_db"))


@main.command()
@click.option("--once", is_flag=True, help="One run over all tags, then exit (non-zero if it failed).")
@click.option("--trigger", default="schedule", hidden=True)
@click.option("--announce-fd", type=int, default=None, hidden=True)
def collect(once: bool, trigger: str, announce_fd: int | None) -> None:
    """Collect posts now and then every TAGWATCH_COLLECT_INTERVAL seconds until SIGTERM/SIGINT."""
    from tagwatch.collector import Collector, build_client

    settings = load_settings()
    configure_logging(settings.log_level)
    store.init_db(settings.db_path)
    stop = threading.Event()
    _on_signals(lambda: stop.set())
    if settings.source == "sample":
        log.warning(SAMPLE_NOTICE, extra=event("sample_source"))
    metrics.precreate_collector(settings.tags)
    # waits (rate-limit resets, backoff) end early on SIGTERM so the run can stop after its current page
    collector = Collector(settings, build_client(settings, sleep=stop.wait), should_stop=stop.is_set)
    if once:
        result = collector.run_once(trigger=trigger, announce=_announcer(announce_fd))
        sys.exit(0 if result.started and result.status == "success" else 1)
    _serve_metrics(settings.metrics_port)
    while not stop.is_set():
        collector.run_once(trigger=trigger)
        stop.wait(settings.collect_interval)
    log.info("collector stopped", extra=event("collector_stopped"))


@main.command()
@click.option("--posts", "count", type=click.IntRange(1, 20_000_000), default=10_000, show_default=True)
def seed(count: int) -> None:
    """Fill the database with COUNT sample posts over the last week, through the normal store path."""
    settings = load_settings()
    configure_logging(settings.log_level)
    store.init_db(settings.db_path)
    conn = store.connect(settings.db_path)
    started = time.monotonic()
    context = multiprocessing.get_context("fork")
    pages: multiprocessing.Queue = context.Queue(maxsize=4)
    producer = context.Process(
        target=_seed_producer, args=(count, time.time(), settings.tags, pages), daemon=True
    )
    producer.start()
    with click.progressbar(
        length=count, label="seeding", file=sys.stderr if sys.stderr.isatty() else None
    ) as bar:
        while (parsed := pages.get()) is not None:
            with store.transaction(conn):
                store.write_rows(conn, parsed)
            bar.update(len(parsed.posts))
    producer.join()
    log.info(
        "seeded %d sample posts in %.1f s",
        count,
        time.monotonic() - started,
        extra=event("seed", posts_new=count),
    )


def _next_page(pages: multiprocessing.Queue, producer: multiprocessing.Process):
    """The next parsed page, None at the end; exits 1 if the producer died instead of hanging."""
    while True:
        try:
            return pages.get(timeout=1)
        except queue.Empty:
            if not producer.is_alive():
                click.echo("tagwatch: seed: the page generator stopped unexpectedly", err=True)
                sys.exit(1)


def _seed_producer(count: int, now: float, tags: tuple[str, ...], pages: multiprocessing.Queue) -> None:
    """Generate and parse sample pages in a second process, so the writer only writes (two cores, ~2× faster).

    Each user is sent once: re-sending an unchanged user would only repeat the same upsert.
    """
    from tagwatch.parse import parse_page
    from tagwatch.sources.sample import SampleWorld

    sent: set[str] = set()
    for payload in SampleWorld(users=20_000).seed_pages(count, now, page_size=10_000):
        parsed = parse_page(payload, tags, None)
        users = [user for user in parsed.users if user.id not in sent]
        sent.update(user.id for user in users)
        pages.put(replace(parsed, users=users))
    pages.put(None)


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)  # noqa: S104 - a server must listen
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default: PORT or 8000.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Default: WEB_CONCURRENCY or 2.")
def serve(host: str, port: int | None, workers: int | None) -> None:
    """Serve the API under gunicorn (production settings from tagwatch.gunicorn_conf)."""
    settings = load_settings()
    port = port or settings.port
    workers = workers or settings.web_concurrency
    args = [sys.executable, "-m", "gunicorn", "--config", "python:tagwatch.gunicorn_conf"]
    args += ["--bind", f"{host}:{port}", "--workers", str(workers), "tagwatch.wsgi:app"]
    os.execv(sys.executable, args)


@main.command()
def run() -> None:
    """Start the API and the collector together; Ctrl-C stops both."""
    settings = load_settings()
    configure_logging(settings.log_level)
    store.init_db(settings.db_path)
    children = [
        subprocess.Popen([sys.executable, "-m", "tagwatch", "serve"]),
        subprocess.Popen([sys.executable, "-m", "tagwatch", "collect"], env=_without_multiproc_env()),
    ]
    stopping = threading.Event()
    _on_signals(stopping.set)
    while not stopping.is_set() and all(child.poll() is None for child in children):
        stopping.wait(0.5)
    for child in children:
        if child.poll() is None:
            child.terminate()
    codes = [child.wait(timeout=30) for child in children]
    sys.exit(0 if stopping.is_set() else max(1, *codes))


def _on_signals(handler: Callable[[], None]) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: handler())


def _announcer(fd: int | None) -> Callable[[int, bool], None] | None:
    """Tell the API process which run started (or which one holds the lease), through a pipe."""
    if fd is None:
        return None

    def announce(run_id: int, started: bool) -> None:
        with os.fdopen(fd, "w") as pipe:
            pipe.write(json.dumps({"run_id": run_id, "started": started}) + "\n")

    return announce


def _serve_metrics(port: int) -> None:
    if port:
        from prometheus_client import start_http_server

        start_http_server(port)
        log.info("collector metrics on :%d/metrics", port, extra=event("metrics_listening"))


def _without_multiproc_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env
