"""`tagwatch seed`: N sample posts over the last week, written through the normal store path.

A second process generates and parses the pages while this one only writes (two cores, about twice as fast).
If that process dies, seeding stops with a clear error instead of waiting forever; the posts reported new are
the ones the database did not hold yet.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable
from dataclasses import dataclass, replace

from tagwatch import store
from tagwatch.config import Settings

MAX_POSTS = 20_000_000
PAGE_SIZE = 10_000
POLL_SECONDS = 1.0


class SeedError(Exception):
    """Seeding could not finish; the message says why and how far it got."""


@dataclass(frozen=True)
class Failure:
    """What the generator sends instead of a page when it fails."""

    message: str


@dataclass(frozen=True)
class SeedResult:
    """Posts generated and written, and how many of them the database did not hold yet."""

    posts: int
    new: int


def seed(
    settings: Settings, count: int, now: float, progress: Callable[[int], None] = lambda n: None
) -> SeedResult:
    """Write exactly `count` sample posts; raises SeedError if the generator dies or falls short."""
    context = multiprocessing.get_context("fork")
    pages: multiprocessing.Queue = context.Queue(maxsize=4)
    producer = context.Process(target=_produce, args=(count, now, settings.tags, pages), daemon=True)
    producer.start()
    conn = store.connect(settings.db_url)
    posts = new = 0
    try:
        while (parsed := _next_page(pages, producer, posts, count)) is not None:
            with store.transaction(conn):
                new += len(store.write_rows(conn, parsed))
            posts += len(parsed.posts)
            progress(len(parsed.posts))
    finally:
        conn.close()
        producer.join(5)
        if producer.is_alive():
            producer.kill()
    if posts != count:
        raise SeedError(f"the sample generator produced {posts:,} posts instead of {count:,}")
    return SeedResult(posts=posts, new=new)


def _next_page(pages: multiprocessing.Queue, producer, done: int, count: int):
    """The next parsed page, None at the end; SeedError if the generator failed or died."""
    while True:
        try:
            item = pages.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if producer.is_alive():
                continue
            try:  # it may have exited right after its last put
                item = pages.get(timeout=0.1)
            except queue.Empty:
                raise SeedError(
                    f"the sample generator (pid {producer.pid}) died with exit code {producer.exitcode} "
                    f"after {done:,} of {count:,} posts"
                ) from None
        if isinstance(item, Failure):
            raise SeedError(f"the sample generator failed after {done:,} of {count:,} posts: {item.message}")
        return item


def _produce(count: int, now: float, tags: tuple[str, ...], pages: multiprocessing.Queue) -> None:
    """Generate and parse the pages (second process); each user is sent once: a repeat changes nothing."""
    from tagwatch.parse import parse_page
    from tagwatch.sources.sample import SampleWorld

    try:
        sent: set[str] = set()
        for payload in SampleWorld(users=20_000).seed_pages(count, now, page_size=PAGE_SIZE):
            parsed = parse_page(payload, tags, None, "sample")
            users = [user for user in parsed.users if user.id not in sent]
            sent.update(user.id for user in users)
            pages.put(replace(parsed, users=users))
    except Exception as exc:  # the parent reports it; a traceback from a child process would say less
        pages.put(Failure(f"{type(exc).__name__}: {exc}"))
        return
    pages.put(None)
