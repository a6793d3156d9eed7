"""POST /api/v1/collect against a real collect loop (sample source) in a thread: no process spawned."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from processes import descendants

from tagwatch import service, store
from tagwatch.api import admin
from tagwatch.app import create_app

BEARER = {"Authorization": "Bearer test-admin-token"}
PROBLEM_BASE = "https://github.com/tagwatch/tagwatch/blob/main/docs/api.md#"


def problem(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"] == PROBLEM_BASE + kind and body["detail"]
    return body


def runs(conn) -> list[dict]:
    return [row._asdict() for row in conn.execute("SELECT id, trigger, status FROM runs ORDER BY id")]


def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Loop:
    """A CollectLoop on the sample source in a thread, as `tagwatch collect` runs it."""

    def __init__(self, settings) -> None:
        self.stop = threading.Event()
        self.conn = store.connect(settings.db_path)
        collector = service.build_collector(settings, self.conn, self.stop)
        self.loop = service.CollectLoop(settings, collector, self.conn, self.stop)
        self.thread = threading.Thread(target=self.loop.run, daemon=True)

    def __enter__(self) -> Loop:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the loop stops when asked"
        self.conn.close()


@pytest.fixture
def small(settings):
    """Two tags and a small budget keep each sample run short; one scheduled run an hour.

    The runs count in this process's metrics: the tags are ones test_metrics does not expect at 0.
    """
    return replace(settings, tags=("sre", "oauth"), max_posts_per_tag=20, collect_interval=3600)


@pytest.fixture
def api(small):
    return create_app(small).test_client()


def test_collect_without_a_collector_is_503_and_records_nothing(api, conn):
    body = problem(api.post("/api/v1/collect", headers=BEARER), 503, "collector-unavailable")
    assert "heartbeat" in body["detail"]
    assert conn.execute("SELECT count(*) FROM run_requests").fetchone()[0] == 0


def test_collect_is_served_by_the_loop_within_about_a_second(api, small, conn):
    with Loop(small):
        wait_until(lambda: [r["status"] for r in runs(conn)] == ["success"])
        started = time.monotonic()
        response = api.post("/api/v1/collect", headers=BEARER)
        elapsed = time.monotonic() - started
        assert descendants(os.getpid()) == set(), "the API starts no process"
        assert response.status_code == 202, response.get_data(as_text=True)
        assert elapsed < 3.0, f"claimed after {elapsed:.1f} s"
        first, second = runs(conn)
        assert (first["trigger"], second["trigger"]) == ("schedule", "api")
        location = f"/api/v1/runs/{second['id']}"
        assert response.headers["Location"] == location
        data = response.get_json()["data"]
        assert set(data) == {"run_id", "status", "location"}
        assert (data["run_id"], data["location"]) == (second["id"], location)
        assert data["status"] in ("running", "success")
        assert api.get(location).get_json()["data"]["trigger"] == "api"
        assert store.get_run_request(conn, 1) == store.RunRequest(1, "started", second["id"])


def test_two_concurrent_requests_start_one_run(small, conn):
    apps = [create_app(small).test_client() for _ in range(2)]
    with Loop(small):
        wait_until(lambda: len(runs(conn)) == 1 and runs(conn)[0]["status"] == "success")
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda c: c.post("/api/v1/collect", headers=BEARER), apps))
        assert sorted(a.status_code for a in answers) == [202, 409]
        assert [r["trigger"] for r in runs(conn)] == ["schedule", "api"]


def test_collect_while_a_run_holds_the_lease_is_409_naming_it(api, conn):
    store.beat(conn, "h:1", "t")
    running = store.begin_run(conn, source="sample", trigger="schedule", tags=("devops",), holder="other")
    response = api.post("/api/v1/collect", headers=BEARER)
    assert problem(response, 409, "conflict")["run_id"] == running.run_id
    assert response.headers["Location"] == f"/api/v1/runs/{running.run_id}"


def test_collect_while_a_request_is_open_is_409(api, conn):
    store.beat(conn, "h:1", "t")
    open_request = store.request_run(conn)
    response = api.post("/api/v1/collect", headers=BEARER)
    assert problem(response, 409, "conflict")["request_id"] == open_request.request_id
    assert response.headers["Retry-After"] == "1"


def test_unclaimed_request_is_withdrawn_and_503(api, conn, monkeypatch):
    monkeypatch.setattr(admin, "CLAIM_WAIT_SECONDS", 0.3)
    store.beat(conn, "h:1", "t")  # alive, but nothing claims
    body = problem(api.post("/api/v1/collect", headers=BEARER), 503, "collector-unavailable")
    assert "within" in body["detail"]
    assert store.get_run_request(conn, 1).status == "withdrawn"


def test_scheduled_run_beginning_first_turns_the_request_into_409(api, conn, db_path):
    store.beat(conn, "h:1", "t")
    started: list[int] = []

    def scheduled_run_soon() -> None:
        time.sleep(0.3)
        other = store.connect(db_path)
        run = store.begin_run(other, source="sample", trigger="schedule", tags=("sre",), holder="h:1")
        started.append(run.run_id)

    thread = threading.Thread(target=scheduled_run_soon)
    thread.start()
    response = api.post("/api/v1/collect", headers=BEARER)
    thread.join()
    assert problem(response, 409, "conflict")["run_id"] == started[0]
    assert store.get_run_request(conn, 1).status == "withdrawn"


@pytest.mark.sqlite_only  # database files
def test_collect_on_a_missing_or_broken_database_is_503(small, tmp_path, conn):
    store.beat(conn, "h:1", "t")
    missing = create_app(replace(small, db_path=str(tmp_path / "none.db"))).test_client()
    problem(missing.post("/api/v1/collect", headers=BEARER), 503, "database-not-ready")
    assert not (tmp_path / "none.db").exists(), "the API never creates the database"
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    broken = create_app(replace(small, db_path=str(garbage))).test_client()
    problem(broken.post("/api/v1/collect", headers=BEARER), 503, "database-not-ready")


def test_loop_heartbeat_says_alive_until_it_stops(small, conn):
    with Loop(small) as loop:
        wait_until(lambda: store.collector_alive(conn))
        holder = conn.execute("SELECT holder FROM collectors").fetchone()[0]
        assert holder == loop.loop.holder
    assert not store.collector_alive(conn), "a clean stop forgets the collector"


def test_loop_survives_an_error_in_a_tick(small, conn, monkeypatch, caplog):
    calls = []
    claim = store.claim_run_request

    def failing_once(*args):
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        return claim(*args)

    monkeypatch.setattr(store, "claim_run_request", failing_once)
    caplog.set_level(logging.INFO, logger="tagwatch.collector")
    with Loop(small):
        wait_until(lambda: len(calls) >= 2 and runs(conn) and runs(conn)[-1]["status"] == "success")
    actions = [getattr(r, "event.action", None) for r in caplog.records]
    assert actions.count("collector_loop_failed") == 1
    failure = next(r for r in caplog.records if getattr(r, "event.action", None) == "collector_loop_failed")
    assert failure.exc_info and "disk I/O error" in str(failure.exc_info[1])
    assert "collector_started" in actions and "run_finished" in actions


def test_loop_stops_at_once_when_idle(small, conn):
    loop = Loop(small)
    with loop:
        wait_until(lambda: runs(conn) and runs(conn)[-1]["status"] == "success")
        time.sleep(0.2)
        started = time.monotonic()
        loop.stop.set()
        loop.thread.join(5)
        assert time.monotonic() - started < 1.5, "the interval wait ends when stop is set"
