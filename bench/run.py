# ruff: noqa: E501 - the report prose is kept as whole lines of the generated Markdown
"""`make bench`: seed 10k and 1M posts on each backend, load the API under gunicorn, write docs/performance.md.

Each summary endpoint is measured against /healthz in the same run (rounds interleaved), because
these machines are shared and noisy: the ratio is the result, absolute numbers are context. PostgreSQL
runs in a database of its own on BENCH_POSTGRES (dropped afterwards); BENCH_BACKENDS=sqlite skips it.
"""

from __future__ import annotations

import os
import platform
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "application" / "tests"))
from install import install_section
from loadgen import LATENCY_CONNECTIONS, THROUGHPUT_CONNECTIONS, measure
from processes import free_port, gunicorn_args, running, tagwatch_env, wait_for
from tagwatch import database, store

REPO = Path(__file__).resolve().parents[1]
SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "10000,1000000").split(",")]
BACKENDS = os.environ.get("BENCH_BACKENDS", "sqlite,postgresql").split(",")
POSTGRES = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))  # medians of 5: these machines are shared
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
TARGET_RATIO = 1.5
ENDPOINTS = [
    "/healthz",
    "/api/v1/users/top",
    "/api/v1/users/top?tag=devops",
    "/api/v1/posts/by-hour",
    "/api/v1/posts/by-hour?tag=sre&tz=Asia/Kolkata",
    "/api/v1/posts/by-hour-of-day?tz=America/Sao_Paulo",
    "/api/v1/tags/breakdown",
    "/api/v1/tags",
]
POSTS_ENDPOINTS = [
    "/api/v1/posts",
    "/api/v1/posts?tag=devops",
    "/api/v1/posts?lang=EN",
    "/api/v1/posts?country=gb",
    "/api/v1/posts?username={busiest}",
]


def posts_endpoints(url: str) -> list[str]:
    """The post list with each filter; the username is the busiest author's (the most posts to sort)."""
    with store.connect(url) as conn:
        busiest = conn.execute(
            "SELECT username FROM agg_user WHERE tag = '' AND username IS NOT NULL ORDER BY posts DESC LIMIT 1"
        ).scalar_one()
    return [path.format(busiest=busiest) for path in POSTS_ENDPOINTS]


def seed(env: dict[str, str], posts: int) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "tagwatch", "seed", "--posts", str(posts)], env=env, check=True)
    return time.monotonic() - started


def size_mib(url: str) -> float:
    """The database's size on disk: the SQLite file (WAL checkpointed), or pg_database_size."""
    with store.connect(url) as conn:
        if conn.is_postgresql:
            return conn.execute("SELECT pg_database_size(current_database())").scalar_one() / 2**20
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Path(database.sqlite_path(url)).stat().st_size / 2**20


class PostgresDatabase:
    """A database of its own on the benchmark's PostgreSQL server, dropped on exit."""

    def __init__(self, posts: int) -> None:
        self.name = f"tw_bench_{posts}_{secrets.token_hex(3)}"
        self.url = database.parse_url(POSTGRES).set(database=self.name).render_as_string(hide_password=False)

    def _admin(self, sql: str) -> None:
        with store.connect(POSTGRES) as conn:
            conn.execute(sql)

    def __enter__(self) -> str:
        self._admin(f"CREATE DATABASE {self.name} TEMPLATE template0 ENCODING 'UTF8'")
        return self.url

    def __exit__(self, *exc: object) -> None:
        database.dispose_all()
        self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def worker_rss_mib(master_pid: int) -> list[float]:
    """Resident memory of each gunicorn worker (children of the master)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    pids = children.read_text().split() if children.exists() else []
    sizes = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status")
        if status.exists():
            match = re.search(r"VmRSS:\s+(\d+) kB", status.read_text())
            if match:
                sizes.append(int(match.group(1)) / 1024)
    return sizes


def bench_size(posts: int, workdir: Path, backend: str) -> dict:
    if backend == "postgresql":
        with PostgresDatabase(posts) as url:
            return bench_url(posts, workdir, backend, url)
    return bench_url(posts, workdir, backend, database.sqlite_url(workdir / f"bench-{posts}.db"))


def bench_url(posts: int, workdir: Path, backend: str, url: str) -> dict:
    env = tagwatch_env(workdir / "unused.db", LOG_LEVEL="WARNING", TAGWATCH_DATABASE_URL=url)
    seconds = seed(env, posts)
    port = free_port()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(workdir / f"mp-{backend}-{posts}")
    endpoints = ENDPOINTS + posts_endpoints(url)
    results: dict[str, list[tuple[float, float]]] = {path: [] for path in endpoints}
    with running(gunicorn_args(port, workers=2), env, workdir / f"gunicorn-{backend}-{posts}.log") as master:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/readyz")
        for path in endpoints:
            measure(base + path, 1.0, THROUGHPUT_CONNECTIONS)  # warm up caches and connections
        for _ in range(ROUNDS):
            for path in endpoints:
                latency, _ = measure(base + path, SECONDS, LATENCY_CONNECTIONS)
                _, rps = measure(base + path, SECONDS, THROUGHPUT_CONNECTIONS)
                results[path].append((latency, rps))
        rss = worker_rss_mib(master.pid)
    rows = {}
    for path, samples in results.items():
        rows[path] = (
            statistics.median(s[0] for s in samples),
            statistics.median(s[1] for s in samples),
        )
    return {
        "backend": backend,
        "posts": posts,
        "seed_seconds": seconds,
        "rows": rows,
        "rss": rss,
        "db_mib": size_mib(url),
    }


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = match.group(1).strip() if match else cpu
    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo.read_text()).group(1))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    return (
        f"{os.cpu_count()} cores ({cpu}){mem}; {platform.platform()}; Python {platform.python_version()}; "
        f"SQLite {sqlite3.sqlite_version}; {postgres_version()}; load generator: {'wrk' if shutil.which('wrk') else 'Python (loadgen.py)'}"
    )


def postgres_version() -> str:
    if "postgresql" not in BACKENDS:
        return "PostgreSQL not run"
    with store.connect(POSTGRES) as conn:
        return "PostgreSQL " + conn.execute("SHOW server_version").scalar_one().split()[0]


def report(results: list[dict]) -> str:
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (bench/run.py). gunicorn with 2 gevent workers, as in production; each endpoint",
        f"is loaded for {SECONDS:g} s with {LATENCY_CONNECTIONS} connection (latency: one request after the other, no queue)",
        f"and for {SECONDS:g} s with {THROUGHPUT_CONNECTIONS} (requests/s: the server saturated), {ROUNDS} rounds interleaved across",
        "endpoints; the table shows medians. Under saturation a median latency measures mostly the queue (and",
        "how the load generator's connections landed on the two workers), so latency is taken without one.",
        f"The target: every summary and every `/api/v1/posts` filter within {TARGET_RATIO}× of `/healthz` latency",
        "at 1,000,000 posts (the username is the busiest author's: the most posts to sort), on both backends:",
        "SQLite (the default) and PostgreSQL (a local server, the API reading through its pool). Ingest is",
        "`tagwatch seed` through the normal store path (parse, upserts, aggregates; one transaction per page).",
        "",
        f"Machine: {machine()}. Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
    ]
    for result in results:
        health_latency = result["rows"]["/healthz"][0]
        name = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[result["backend"]]
        lines += [
            f"## {name}, {result['posts']:,} posts",
            "",
            f"Seeded in {result['seed_seconds']:.0f} s ({result['posts'] / result['seed_seconds']:,.0f} posts/s "
            f"ingest); database {result['db_mib']:.0f} MiB; "
            f"worker RSS {', '.join(f'{r:.0f} MiB' for r in result['rss'])}.",
            "",
            f"| endpoint | median latency (ms) | latency ÷ /healthz | target met | requests/s ({THROUGHPUT_CONNECTIONS} conn.) | /healthz's ÷ this |",
            "|---|---:|---:|---|---:|---:|",
        ]
        health_rps = result["rows"]["/healthz"][1]
        ratios = []
        for path, (latency, rps) in result["rows"].items():
            ratio = latency / health_latency if health_latency else float("nan")
            met = "—" if path == "/healthz" else ("yes" if ratio <= TARGET_RATIO else "**no**")
            cost = health_rps / rps if rps else float("nan")
            lines.append(f"| `{path}` | {latency:.2f} | {ratio:.2f} | {met} | {rps:,.0f} | {cost:.2f} |")
            ratios += [] if path == "/healthz" else [ratio]
        missed = sum(ratio > TARGET_RATIO for ratio in ratios)
        lines += [
            "",
            f"Within {min(ratios):.2f}–{max(ratios):.2f}× of /healthz; {missed} of {len(ratios)} endpoints miss the"
            f" {TARGET_RATIO}× target.",
            "",
        ]
    lines += [
        "## Why the summaries do not grow with the data",
        "",
        "The collector maintains small aggregate tables in the same transaction as each page (posts per tag per",
        "UTC quarter hour, per tag × language × country, per user × tag with the latest follower count). The API",
        "reads only those: their size depends on tags, users shown and the time span, not on the number of posts.",
        "Quarter-hour buckets keep time zones exact, including half-hour (Asia/Kolkata) and 45-minute",
        "(Asia/Kathmandu) offsets and DST changes: a query groups buckets per segment of constant UTC offset.",
        "",
        "Each worker also caches a summary's JSON until the data version shows the collector committed",
        "something (SQLite's `PRAGMA data_version`; on PostgreSQL the `data_version` row every write transaction",
        "bumps), so between collection runs a summary costs one cheap query and a dictionary lookup. A query",
        "string answered before is remembered with the key it validated to, so a repeated request skips",
        "parsing its parameters too. Measured uncached in-process (Flask test client, 10k posts) the summaries",
        "took 1.4–4.3 ms against 1.0 ms for /healthz, and `/api/v1/tags/breakdown` (≈ 60 KB of JSON for all",
        "tags × languages × countries) 11 ms: the cache is what brings them within the target. The load",
        "generator shares the two cores with gunicorn (and, here, with the machine's other jobs): compare the",
        "ratios of one run, and expect ±30% between runs.",
        "",
        "`/api/v1/tags/breakdown` without `tag` answers every tag × language × country: about 230 KB of JSON at",
        "1,000,000 sample posts (7 KB at 10,000). Cached, its cost is writing that body, the largest of all;",
        "a client that needs less asks for one tag or one dimension (`?tag=…`, `?by=lang`).",
        "",
        "## PostgreSQL",
        "",
        "The same aggregates and indexes serve PostgreSQL, so its figures do not grow with the data either; what",
        "differs is the constant. A cached summary on SQLite costs one `PRAGMA data_version` on a local file",
        "(read straight from sqlite3: about 7 µs of CPU). On PostgreSQL it costs one round trip: each worker reads",
        "the `data_version` row (the replicas share it) with a prepared SELECT on probe connections of its own,",
        "autocommit, each keeping its cursor, without SQLAlchemy's pool, a transaction or a ping; only a miss",
        "opens the REPEATABLE READ READ ONLY snapshot. Measured in one process on this machine the check takes",
        "55–58 µs of CPU and 120–150 µs (a new cursor per check: 74–80 µs and 180–220 µs).",
        "",
        "The round trip itself stays: a request that comes after a commit must see it in every replica, and",
        "only the server knows (LISTEN/NOTIFY arrives after the writer's COMMIT has returned, so the next request",
        "could miss it). One request at a time it adds about a tenth of a millisecond (the latency column).",
        "Saturated, the server's backend process competes with the two workers and the load generator for the",
        "same two cores, so the summaries' requests/s falls further behind /healthz's than on SQLite (the last",
        "column); with PostgreSQL on a host of its own that CPU is not the API's.",
        "",
        "Ingest through the store path is slower than SQLite's: every page is a transaction with the",
        "writer lock, the lease check and the upserts as round trips; psycopg pipelines `executemany`, whose",
        "per-row work in Python is most of the time (profiled). Two fixes of this round: `executemany` hands",
        "the rows straight to the driver (SQLAlchemy's per-row bind processing cost more than SQLite's own",
        "work), and the identity lookup of a page's posts sends its keys as one array (`= ANY`): with a",
        "900-parameter `IN` list PostgreSQL's generic plan, used after five runs, filtered every post of the",
        "source through the list, so seeding slowed as the table grew (tests/test_postgres.py explains that",
        "plan).",
        "",
        "## Why /api/v1/posts does not grow with the data",
        "",
        "Each filter has an index that yields posts newest first, so a page reads about `limit` rows:",
        "`post_tags`' primary key (tag, post_id) for `tag`, `posts_by_lang` (lower(lang), id),",
        "`posts_by_country` (country, id), and for `username` `users_by_username` then `posts_by_author`;",
        "tests/test_queries.py asserts each plan with EXPLAIN QUERY PLAN (no scan, no sort). Pages are cached",
        "like the summaries (keyed by the normalised filters and cursor), so the table above measures repeated",
        "pages; an uncached page at 1,000,000 posts took 0.5-0.8 ms in-process against 0.2-0.35 ms for",
        "/healthz (Flask test client, every filter), whatever the filter.",
        "",
        "## Why gevent workers",
        "",
        "A client that trickles its request headers holds whatever reads them. Measured here with 2 workers,",
        "probing /healthz ten times while connections sent one header line a second:",
        "",
        "| worker | trickling connections | probes answered within 3 s |",
        "|---|---:|---:|",
        "| sync (before) | 2 | ~30 s of outage (issue 9) |",
        "| gthread, 4 threads | 20 | 5 of 10 |",
        "| gthread, 32 threads | 100 | 8 of 10 |",
        "| gevent (now) | 20 | 10 of 10 |",
        "| gevent (now) | 200 | 10 of 10 |",
        "",
        "gthread only waits for a connection's *first* bytes off-thread; once a request has started, a thread",
        "reads it to the end, so slow clients still take threads. gevent reads every connection on its event",
        "loop (up to 1,000 per worker). SQLite calls do not yield, so a request's reads run to completion; the",
        "readers come from a small pool rather than one connection per greenlet. psycopg's do yield (it waits",
        "with gevent's patched poll; tests/test_postgres.py checks it). tests/test_slow_clients.py",
        "holds 20 trickling connections against the production configuration and requires every probe of",
        "/healthz and of a cached summary to answer within 1 s.",
        "",
        "`tagwatch seed` takes the normal store path (parse, upserts, aggregates); a second process generates",
        f"and parses while the first writes. Seeding took {seeding_note(results)}; the aim is about a minute",
        "per million posts.",
        "",
    ]
    return "\n".join(lines)


def seeding_note(results: list[dict]) -> str:
    return ", ".join(f"{r['seed_seconds']:.0f} s for {r['posts']:,} posts ({r['backend']})" for r in results)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tagwatch-bench-") as tmp:
        results = [bench_size(posts, Path(tmp), backend) for backend in BACKENDS for posts in SIZES]
    text = report(results)
    path = REPO / "docs" / "performance.md"
    kept = install_section(path.read_text()) if path.exists() else ""  # written by bench/install.py
    path.write_text(text + ("\n" + kept if kept else ""))
    print(text)


if __name__ == "__main__":
    main()
