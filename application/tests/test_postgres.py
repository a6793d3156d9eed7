"""PostgreSQL only: two writers under one lease, and every database fault a 503 problem, never a 500."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import dataset
import processes
import psycopg
import pytest
import sqlalchemy as sa
from backends import settings_on
from click.testing import CliRunner
from fakes import NOW, make_post, make_user

from tagwatch import database, store
from tagwatch.api.db import VersionProbe
from tagwatch.app import create_app
from tagwatch.cli import main
from tagwatch.config import DEFAULT_TAGS, Settings
from tagwatch.parse import parse_page
from tagwatch.seed import seed


def _page(post_id: int):
    post, user = make_post(post_id, ["sre"], author="u1"), make_user("u1", "a", 1)
    payload = {"data": [post], "includes": {"users": [user]}}
    return parse_page(payload, DEFAULT_TAGS, "sre")


def test_two_writers_on_two_connections_one_lease_the_loser_never_writes(db_path):
    first, second = store.connect(db_path), store.connect(db_path)
    won = store.begin_run(first, source="x", trigger="manual", tags=("sre",), holder="a", now=1000.0)
    lost = store.begin_run(second, source="x", trigger="manual", tags=("sre",), holder="b", now=1001.0)
    assert won.started and not lost.started and lost.run_id == won.run_id
    taken = store.begin_run(second, source="x", trigger="manual", tags=("sre",), holder="b", now=2000.0)
    assert taken.started  # the first lease lapsed (TTL): the second takes over
    with pytest.raises(store.LeaseLost):
        _try_store(first, won.run_id)
    assert first.execute("SELECT count(*) FROM posts").scalar_one() == 0
    assert store.store_page(
        second, _page(2), tag="sre", cursor=store.TagCursor(), run_id=taken.run_id, posts_read=1, now=2001.0
    )
    assert first.execute("SELECT id FROM posts").scalars().all() == [2]


def test_concurrent_writers_serialise_on_the_writer_lock(db_path):
    """A write transaction waits for another one (advisory lock), then finds the lease taken: LeaseLost."""
    first, second = store.connect(db_path), store.connect(db_path)
    old = store.begin_run(first, source="x", trigger="manual", tags=("sre",), holder="a", now=1000.0)
    errors: list[BaseException] = []
    with store.transaction(second):  # holds the writer lock while it takes the lapsed lease
        second.execute("UPDATE lease SET run_id = run_id + 1000")
        writer = threading.Thread(target=lambda: _try_write(first, old.run_id, errors))
        writer.start()
        writer.join(0.5)
        assert writer.is_alive(), "the second writer must wait for the first transaction"
    writer.join(5)
    assert len(errors) == 1 and isinstance(errors[0], store.LeaseLost)
    assert first.execute("SELECT count(*) FROM posts").scalar_one() == 0


def _try_store(conn, run_id: int) -> int:
    return store.store_page(conn, _page(1), tag="sre", cursor=store.TagCursor(), run_id=run_id, posts_read=1)


def _try_write(conn, run_id: int, errors: list[BaseException]) -> None:
    try:
        _try_store(conn, run_id)
    except BaseException as exc:
        errors.append(exc)


def _problem(url: str, path: str = "/api/v1/tags", **settings):
    client = create_app(settings_on(url, **settings)).test_client()
    response = client.get(path)
    return response.status_code, response.headers.get("Content-Type"), response.get_json()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:1/test",  # nothing listens: connection refused
        "postgresql://no_such_role:secret@127.0.0.1:5432/test",  # authentication / role failure
    ],
)
def test_unreachable_server_is_503_problem_json(url, backend, pg_server):
    database.dispose_all()
    status, content_type, body = _problem(url)
    assert (status, content_type) == (503, "application/problem+json")
    assert "secret" not in body["detail"]


def test_statement_timeout_is_503(db_path, monkeypatch):
    from tagwatch import aggregates

    def slow(conn, *args, **kwargs):
        conn.execute("SELECT pg_sleep(2)")

    monkeypatch.setattr(aggregates, "tag_overview", slow)
    status, content_type, body = _problem(db_path, db_statement_timeout_ms=100)
    assert (status, content_type) == (503, "application/problem+json")
    assert "statement timeout" in body["detail"]


def test_connection_killed_mid_query_is_503_and_the_next_request_works(db_path, monkeypatch):
    from tagwatch import aggregates

    real = aggregates.tag_overview

    def killed(conn, *args, **kwargs):
        pid = conn.execute("SELECT pg_backend_pid()").scalar_one()
        with psycopg.connect(db_path.replace("+psycopg", "")) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        conn.execute("SELECT 1")

    monkeypatch.setattr(aggregates, "tag_overview", killed)
    app = create_app(settings_on(db_path))
    client = app.test_client()
    response = client.get("/api/v1/tags")
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    monkeypatch.setattr(aggregates, "tag_overview", real)
    assert client.get("/api/v1/tags").status_code == 200


def _admin(db_path: str) -> psycopg.Connection:
    return psycopg.connect(db_path.replace("+psycopg", ""), autocommit=True)


def test_version_probe_killed_is_503_and_the_next_request_reconnects(db_path):
    """The cache's version probe is a connection of its own: its death is a 503, then it reconnects."""
    client = create_app(settings_on(db_path)).test_client()
    assert client.get("/api/v1/tags").status_code == 200
    with _admin(db_path) as killer:
        killed = killer.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query = %s AND pid <> pg_backend_pid()",
            (VersionProbe.SQL,),
        ).fetchone()[0]
    assert killed == 1
    response = client.get("/api/v1/tags")
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    assert client.get("/api/v1/tags").status_code == 200


def test_version_probe_gives_up_after_the_statement_timeout_with_503(db_path):
    """A probe blocked by a lock (e.g. a migration's) is cut by statement_timeout like any other read."""
    client = create_app(settings_on(db_path, db_statement_timeout_ms=200)).test_client()
    with _admin(db_path) as locker, locker.transaction():
        locker.execute("LOCK TABLE data_version IN ACCESS EXCLUSIVE MODE")
        response = client.get("/api/v1/users/top")
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    assert "statement timeout" in response.get_json()["detail"]
    assert client.get("/api/v1/users/top").status_code == 200


def test_readyz_reports_postgresql(db_path):
    status, _, body = _problem(db_path, "/readyz")
    assert status == 200 and body["backend"] == "postgresql"
    assert body["schema_version"] == body["expected_schema_version"] == store.SCHEMA_VERSION


def test_init_db_is_idempotent_and_concurrent_runs_do_not_break(db_url):
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(store.init_db(db_url))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [store.SCHEMA_VERSION] * 3
    assert store.init_db(db_url) == store.SCHEMA_VERSION


GEVENT_CHECK = """
import sys, threading, time
from gevent import monkey
monkey.patch_all()
import gevent
from tagwatch import store
from tagwatch.api import db
import psycopg.waiting
assert psycopg.waiting.wait is not getattr(psycopg.waiting, "wait_c", None), psycopg.waiting.wait
ticks = []
def tick():
    while len(ticks) < 50:
        ticks.append(time.monotonic())
        gevent.sleep(0.01)
conn = store.connect(sys.argv[1])
ticker = gevent.spawn(tick)
conn.execute("SELECT pg_sleep(0.5)")
assert len(ticks) >= 20, f"the query blocked the other greenlets: {len(ticks)} ticks"
print("cooperative", psycopg.waiting.wait.__name__)
"""


def test_psycopg_waits_cooperatively_under_gevent(db_path):
    """gunicorn's gevent workers: a slow query must let the worker's other greenlets run."""
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_CHECK, db_path], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith("cooperative"), result.stderr[-2000:]


def _sqlite_source(tmp_path, posts: int):
    """A SQLite store with the API dataset (runs, a refresh page) and `posts` sample posts."""
    source = tmp_path / "source.db"
    store.init_db(source)
    dataset.seed(store.connect(source))
    seed(Settings(db_path=str(source)), posts, now=NOW)
    return source


def test_migrate_data_copies_a_sqlite_store_resumably_and_verifies(db_path, tmp_path):
    source = _sqlite_source(tmp_path, 300)
    runner = CliRunner()
    command = ["migrate-data", "--from", f"sqlite:///{source}", "--to", db_path, "--batch-size", "50"]
    first = runner.invoke(main, command)
    assert first.exit_code == 0, first.output
    again = runner.invoke(main, command)  # a re-run (as after an interruption) adds nothing twice
    assert again.exit_code == 0, again.output
    copy, original = store.connect(db_path), store.connect(source)
    for table in ("posts", "post_tags", "agg_tag", "runs"):
        count = f"SELECT count(*) FROM {table}"
        assert copy.execute(count).scalar_one() == original.execute(count).scalar_one() > 0
    assert store.begin_run(copy, source="x", trigger="manual", tags=("sre",), holder="h").started  # ids go on


def test_migrate_data_reports_a_difference_with_exit_1(db_path, tmp_path):
    source = _sqlite_source(tmp_path, 50)
    runner = CliRunner()
    command = ["migrate-data", "--from", f"sqlite:///{source}", "--to", db_path]
    assert runner.invoke(main, command).exit_code == 0
    target = store.connect(db_path)
    target.execute("UPDATE agg_tag SET posts = posts + 1 WHERE tag = ''")
    assert runner.invoke(main, command).exit_code == 0  # agg_tag is upserted whole: the copy repairs it
    target.execute("DELETE FROM agg_quarter WHERE bucket = (SELECT min(bucket) FROM agg_quarter)")
    target.execute("INSERT INTO agg_quarter(tag, bucket, source, posts) VALUES ('zzz', 1, 'x', 1)")
    original = store.connect(source)
    original.execute("DELETE FROM agg_quarter WHERE tag = 'zzz'")
    from tagwatch import migrate

    assert [m.table for m in migrate.verify(original, target)] == ["agg_quarter"]


def test_migrate_data_bad_url_exits_2_naming_the_option(tmp_path):
    result = CliRunner().invoke(main, ["migrate-data", "--from", "mysql://x/y", "--to", "sqlite:///t.db"])
    assert result.exit_code == 2


@pytest.mark.slow
def test_two_serve_processes_on_one_database_serve_a_collectors_commit_at_the_next_request(db_path, tmp_path):
    """Replicas: each `tagwatch serve` caches per worker; the data_version counter invalidates them all."""
    extra = {"TAGWATCH_DATABASE_URL": db_path, "TAGWATCH_SOURCE": "sample", "TAGWATCH_METRICS_PORT": "0"}
    env = processes.tagwatch_env(tmp_path / "unused.db", **extra)
    ports = [processes.free_port(), processes.free_port()]
    serve = [sys.executable, "-m", "tagwatch", "serve", "--workers", "1", "--port"]
    with (
        processes.running([*serve, str(ports[0])], env, tmp_path / "a.log"),
        processes.running([*serve, str(ports[1])], env, tmp_path / "b.log"),
    ):
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            processes.wait_for(f"{url}/readyz")
            for _ in range(2):  # the second answer comes from the worker's cache
                assert _stored(url) == 0
        collect = subprocess.run(
            [sys.executable, "-m", "tagwatch", "collect", "--once"], env=env, capture_output=True, timeout=120
        )
        assert collect.returncode == 0, collect.stderr[-2000:]
        stored = store.connect(db_path).execute("SELECT sum(posts) FROM agg_tag WHERE tag != ''").scalar_one()
        assert stored > 0
        assert [_stored(url) for url in urls] == [stored, stored]


def _stored(url: str) -> int:
    status, body = processes.get(f"{url}/api/v1/tags")
    assert status == 200, body
    return sum(tag["posts"] for tag in json.loads(body)["data"])


def test_a_long_lived_connection_reconnects_after_the_server_dropped_it(db_path):
    """The collector keeps one connection: a restart or pg_terminate_backend fails one statement only."""
    conn = store.connect(db_path)
    pid = conn.execute("SELECT pg_backend_pid()").scalar_one()
    with psycopg.connect(db_path.replace("+psycopg", "")) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(sa.exc.OperationalError), store.transaction(conn):
        conn.execute("SELECT 1")
    with store.transaction(conn):
        conn.execute("UPDATE agg_tag SET posts = posts")
    assert conn.execute("SELECT pg_backend_pid()").scalar_one() != pid


def _plan_nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def test_the_identity_lookup_keeps_its_index_in_the_generic_plan(db_path):
    """After five runs of a prepared statement PostgreSQL may switch to a generic plan. On a table filled
    faster than autovacuum analyses it, the generic plan of `source = $1 AND source_key IN ($2 … $901)`
    read every post of the source through posts_by_source and filtered them through the list one by one
    (ingest slowed as the table grew). The statement the store sends must keep posts_identity."""
    conn = store.connect(db_path)
    conn.execute("ALTER TABLE posts SET (autovacuum_enabled = off)")  # no statistics, as after a bulk load
    conn.execute(
        "INSERT INTO posts(id, source, source_key, created_at, created_ts, text, collected_at)"
        " SELECT g, 'x', g::text, '2026-11-18T09:00:00.000Z', 0, '', '' FROM generate_series(1, 50000) g"
    )
    sent: list[tuple[str, dict]] = []
    sa.event.listen(
        conn.sa, "before_cursor_execute", lambda _c, _cur, sql, params, *_: sent.append((sql, params))
    )
    page = parse_page({"data": [make_post(i, ["sre"]) for i in range(60_001, 60_901)]}, DEFAULT_TAGS, "sre")
    assert len(store.unseen_posts(conn, page.posts)) == 900
    [(sql, params)] = [(sql, params) for sql, params in sent if "source_key" in sql]
    names = sorted(params, key=lambda name: int(name[1:]))
    numbered = sql
    for number, name in sorted(enumerate(names, 1), reverse=True):  # p10 before p1
        numbered = numbered.replace(f"%({name})s", f"${number}")
    raw = conn.sa.connection.dbapi_connection
    raw.execute("SET plan_cache_mode = force_generic_plan")
    raw.execute(f"PREPARE identity_lookup AS {numbered}")
    explain = psycopg.ClientCursor(raw)
    marks = ", ".join(["%s"] * len(names))
    explain.execute(f"EXPLAIN (FORMAT JSON) EXECUTE identity_lookup({marks})", [params[n] for n in names])
    nodes = list(_plan_nodes(explain.fetchone()[0][0]["Plan"]))
    assert any(node.get("Index Name") == "posts_identity" for node in nodes), nodes
    assert not any("source_key" in node.get("Filter", "") for node in nodes), nodes
