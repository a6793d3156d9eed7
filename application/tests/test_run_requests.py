"""Run requests and collector heartbeats in the store: what POST /api/v1/collect and the loop share."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tagwatch import store

NOW = 1_795_000_000.0


def begin(conn, trigger: str = "schedule", now: float = NOW) -> store.RunStart:
    return store.begin_run(conn, source="sample", trigger=trigger, tags=("devops",), holder="h:1", now=now)


def request_row(conn, request_id: int) -> dict:
    return conn.execute("SELECT * FROM run_requests WHERE id = ?", (request_id,)).one()._asdict()


def test_request_run_needs_a_live_collector(conn):
    assert store.request_run(conn, now=NOW) == store.RequestOutcome("no-collector")
    store.beat(conn, "h:1", "2026-11-18T09:00:00Z", now=NOW - store.COLLECTOR_ALIVE_SECONDS - 0.1)
    assert store.request_run(conn, now=NOW).kind == "no-collector"
    store.beat(conn, "h:1", "2026-11-18T09:00:00Z", now=NOW - store.COLLECTOR_ALIVE_SECONDS + 0.1)
    assert store.request_run(conn, now=NOW).kind == "created"
    assert conn.execute("SELECT count(*) FROM run_requests").fetchone()[0] == 1


def test_forgotten_collector_is_not_alive(conn):
    store.beat(conn, "h:1", "2026-11-18T09:00:00Z", now=NOW)
    assert store.collector_alive(conn, now=NOW)
    store.forget_collector(conn, "h:1")
    assert not store.collector_alive(conn, now=NOW)


def test_request_run_conflicts_with_a_live_run_and_an_open_request(conn):
    store.beat(conn, "h:1", "t", now=NOW)
    running = begin(conn)
    assert store.request_run(conn, now=NOW) == store.RequestOutcome("running", run_id=running.run_id)
    store.finish_run(conn, running.run_id, "success")
    first = store.request_run(conn, now=NOW)
    assert first.kind == "created"
    assert store.request_run(conn, now=NOW) == store.RequestOutcome("requested", request_id=first.request_id)
    assert store.claim_run_request(conn, "h:1") == first.request_id
    assert store.request_run(conn, now=NOW).kind == "requested", "a claimed request is still open"


def test_at_most_one_open_request_even_without_the_check(conn):
    conn.execute("INSERT INTO run_requests(requested_at, requested_ts) VALUES ('t', 1)")
    with pytest.raises(sa.exc.IntegrityError):
        conn.execute(
            "INSERT INTO run_requests(requested_at, requested_ts, status) VALUES ('t', 1, 'claimed')"
        )
    conn.execute("INSERT INTO run_requests(requested_at, requested_ts, status) VALUES ('t', 1, 'withdrawn')")


def test_open_request_older_than_the_ttl_expires(conn):
    store.beat(conn, "h:1", "t", now=NOW)
    old = store.request_run(conn, now=NOW)
    later = NOW + store.REQUEST_TTL_SECONDS + 1
    store.beat(conn, "h:1", "t", now=later)
    new = store.request_run(conn, now=later)
    assert new.kind == "created" and new.request_id != old.request_id
    assert request_row(conn, old.request_id)["status"] == "expired"


def test_claimed_request_learns_its_run_when_the_api_run_begins(conn):
    store.beat(conn, "h:1", "t", now=NOW)
    request_id = store.request_run(conn, now=NOW).request_id
    assert store.claim_run_request(conn, "h:1") == request_id
    assert store.claim_run_request(conn, "h:2") is None, "claimed once"
    assert store.get_run_request(conn, request_id) == store.RunRequest(request_id, "claimed")
    scheduled = begin(conn, "schedule")
    assert store.get_run_request(conn, request_id).run_id is None, "only an api run is linked"
    store.finish_run(conn, scheduled.run_id, "success")
    run = begin(conn, "api")
    assert store.get_run_request(conn, request_id) == store.RunRequest(request_id, "started", run.run_id)
    assert request_row(conn, request_id)["claimed_by"] == "h:1"


def test_request_rejected_when_another_run_holds_the_lease(conn):
    store.beat(conn, "h:1", "t", now=NOW)
    request_id = store.request_run(conn, now=NOW).request_id
    store.claim_run_request(conn, "h:1")
    other = begin(conn, "schedule", now=NOW + 1)
    refused = begin(conn, "api", now=NOW + 1)
    assert refused == store.RunStart(run_id=other.run_id, started=False)
    store.settle_run_request(conn, request_id, refused.run_id, refused.started)
    assert store.get_run_request(conn, request_id) == store.RunRequest(request_id, "rejected", other.run_id)


def test_withdraw_only_takes_back_an_unclaimed_request(conn):
    store.beat(conn, "h:1", "t", now=NOW)
    first = store.request_run(conn, now=NOW).request_id
    assert store.withdraw_run_request(conn, first)
    assert store.claim_run_request(conn, "h:1") is None
    second = store.request_run(conn, now=NOW).request_id
    store.claim_run_request(conn, "h:1")
    assert not store.withdraw_run_request(conn, second)
    assert store.get_run_request(conn, second).status == "claimed"


@pytest.mark.sqlite_only  # PRAGMA data_version
def test_idle_claim_writes_nothing(conn, db_path):
    reader = store.connect(db_path)
    before = reader.execute("PRAGMA data_version").fetchone()[0]
    assert store.claim_run_request(conn, "h:1") is None
    assert reader.execute("PRAGMA data_version").fetchone()[0] == before
