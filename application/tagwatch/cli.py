"""The `tagwatch` command: run, serve, collect, init-db, seed, migrate-data.

Configuration comes only from the environment; every command checks it, the database and the ports it
binds before doing any work, and stops with exit code 2 and one line naming the variable (tagwatch.startup).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

import click

from tagwatch import database, migrate, startup
from tagwatch.config import address
from tagwatch.logs import event
from tagwatch.seed import MAX_POSTS

log = logging.getLogger("tagwatch.cli")


@click.group()
def main() -> None:
    """Collect hashtag posts into SQLite (or PostgreSQL) and serve summaries over a REST API."""
    # Ctrl-C before a command catches signals (tagwatch.signals) ends it quietly, never a KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@main.command("init-db")
def init_db() -> None:
    """Create or migrate the schema (idempotent; never drops data)."""
    settings = startup.prepare(database=False)
    version = startup.open_database(settings)
    log.info("database %s is at schema version %d", settings.db_shown, version, extra=event("init_db"))


@main.command("migrate-data")
@click.option("--from", "source", required=True, help="The store to copy, e.g. sqlite:///data/tagwatch.db.")
@click.option(
    "--to", "target", required=True, help="The store to fill, e.g. postgresql://user:pw@host:5432/db."
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=5000, show_default=True)
def migrate_data(source: str, target: str, batch_size: int) -> None:
    """Copy a store into another (resumable: run it again after an interruption), then verify counts and
    aggregates. Exit codes: 0 copied and verified, 1 verification found a difference, 2 a bad URL or a
    store that cannot be reached. Stop the collector first."""
    startup.prepare(database=False)
    source_conn, target_conn = startup.open_stores(source, target)
    with source_conn, target_conn:
        total = migrate.total_rows(source_conn)
        with click.progressbar(length=total, label="copying", file=sys.stderr) as bar:
            migrate.copy(source_conn, target_conn, batch_size, bar.update)
        mismatches = migrate.verify(source_conn, target_conn)
    for mismatch in mismatches:
        message = f"mismatch in {mismatch.table}: source {mismatch.source}, target {mismatch.target}"
        click.echo(message, err=True)
    shown = database.masked(target)
    if mismatches:
        log.error("migrate-data: %s differs from the source", shown, extra=event("migrate_data_failed"))
        sys.exit(migrate.EXIT_MISMATCH)
    log.info("migrate-data: %s holds a verified copy", shown, extra=event("migrate_data"))


@main.command()
@click.option("--once", is_flag=True, help="One run over all tags, then exit: 0 only if it was a success.")
def collect(once: bool) -> None:
    """Collect now and then every TAGWATCH_COLLECT_INTERVAL seconds, and on each POST /api/v1/collect.

    With --once the exit code tells how the run ended: 0 success, 1 failed, 3 partial, 4 interrupted,
    5 not started because another run holds the lease (2 is a start-up error).
    """
    from tagwatch import service

    settings = startup.prepare()
    sys.exit(service.collect_once(settings) if once else service.collect_forever(settings))


@main.command()
@click.option("--posts", "count", type=click.IntRange(1, MAX_POSTS), default=10_000, show_default=True)
def seed(count: int) -> None:
    """Fill the database with COUNT sample posts over the last week, through the normal store path."""
    from tagwatch.seed import SeedError
    from tagwatch.seed import seed as seed_posts

    settings = startup.prepare()
    started = time.monotonic()
    show = sys.stderr if sys.stderr.isatty() else None
    try:
        with click.progressbar(length=count, label="seeding", file=show) as bar:
            result = seed_posts(settings, count, time.time(), bar.update)
    except SeedError as exc:
        click.echo(f"tagwatch: seed: {exc}", err=True)
        log.error("seed failed: %s", exc, extra=event("seed", outcome="failure", error_message=str(exc)))
        sys.exit(1)
    log.info(
        "seeded %d sample posts (%d new) in %.1f s",
        result.posts,
        result.new,
        time.monotonic() - started,
        extra=event("seed", outcome="success", posts=result.posts, posts_new=result.new),
    )


@main.command()
@click.option("--host", default=None, help="Default: TAGWATCH_HOST or 127.0.0.1.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default: PORT or 8000.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Default: WEB_CONCURRENCY or 2.")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the API under gunicorn (production settings from tagwatch.gunicorn_conf)."""
    settings = startup.prepare()
    variable = "--port" if port else "PORT"
    host, port = host or settings.host, port or settings.port
    startup.check_port(host, port, variable)
    args = gunicorn_command(host, port, workers or settings.web_concurrency)
    os.execv(args[0], args)


@main.command()
def run() -> None:
    """Start the API and the collector together; Ctrl-C (or SIGTERM) stops both, and so does either dying."""
    from tagwatch import supervisor

    settings = startup.prepare()
    startup.check_ports(settings)
    api = gunicorn_command(settings.host, settings.port, settings.web_concurrency)
    sys.exit(supervisor.run(api, [sys.executable, "-m", "tagwatch", "collect"]))


def gunicorn_command(host: str, port: int, workers: int) -> list[str]:
    """The API under gunicorn with tagwatch's production settings (IPv6 addresses go in brackets)."""
    bind = address(host, port)
    return [
        sys.executable, "-m", "gunicorn", "--config", "python:tagwatch.gunicorn_conf",
        "--bind", bind, "--workers", str(workers), "tagwatch.wsgi:app",
    ]  # fmt: skip
