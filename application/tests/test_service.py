"""`tagwatch collect --once` as a real process: an exit code per run status, one line saying why."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import FakeXApi, FixedClock, Scripted, make_post, make_user, serve_fake_x
from fakes_mastodon import Author, FakeMastodon, serve_mastodon, toot
from processes import start, tagwatch_env

from tagwatch import store
from tagwatch.config import Settings
from tagwatch.service import EXIT_CODES, EXIT_LEASE_HELD, once_outcome


@dataclass
class Result:
    run_id: int | None
    status: str = "success"
    started: bool = True


@pytest.mark.parametrize(
    ("result", "code", "says"),
    [
        (Result(7), 0, "run 7 success: every tag is done (exit 0)"),
        (Result(7, "failed"), 1, "run 7 failed: the run failed"),
        (Result(7, "partial"), 3, "run 7 partial: some tags failed or were skipped (GET /api/v1/runs/7"),
        (Result(7, "interrupted"), 4, "run 7 interrupted: stopped by a signal"),
        (Result(6, started=False), 5, "not started: run 6 holds the collection lease (exit 5)"),
        (Result(7, "novel"), 1, "run 7 novel: unknown status (exit 1)"),
        (None, 1, "the run ended with an error before it was recorded"),
        (Result(None, "failed", started=False), 1, "the run ended with an error before it was recorded"),
    ],
)
def test_once_outcome_has_a_distinct_code_per_status(result, code, says):
    assert once_outcome(result)[0] == code
    assert says in once_outcome(result)[1]


def test_exit_codes_are_distinct_and_2_is_start_up():
    assert len({*EXIT_CODES.values(), EXIT_LEASE_HELD, 2}) == len(EXIT_CODES) + 2


def collect_once(db: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tagwatch", "collect", "--once"],
        env=tagwatch_env(db, **{"TAGWATCH_TAGS": "devops,sre", "TAGWATCH_MAX_POSTS_PER_TAG": "20", **env}),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_collect_once_with_mastodon_alone_stores_real_posts_for_the_ten_default_tags(tmp_path):
    """The README's quickstart (`TAGWATCH_SOURCES=mastodon`, no key) end to end against a fake Mastodon
    server: one `collect --once` stores posts for every default tag, well within a minute, and every
    collector line says its source."""
    clock = FixedClock(time.time())
    server = FakeMastodon("127.0.0.1", clock)
    author = Author("ana", "social.example", "Ana", 42)
    server.receive(*(toot(n, author, [tag]) for n, tag in enumerate(Settings().tags)))
    stop = serve_mastodon(server)
    try:
        started = time.monotonic()
        done = collect_once(
            tmp_path / "m.db", TAGWATCH_SOURCES="mastodon", MASTODON_SERVERS=server.base_url, TAGWATCH_TAGS=""
        )
        elapsed = time.monotonic() - started
    finally:
        stop()
    assert (done.returncode, done.stderr.splitlines()[-1]) == (
        0,
        "tagwatch: collect: run 1 success: every tag is done (exit 0)",
    )
    assert elapsed < 60
    conn = store.connect(tmp_path / "m.db")
    per_tag = dict(conn.execute("SELECT tag, posts FROM agg_tag WHERE source = 'mastodon'").all())
    assert per_tag == {"": 10, **dict.fromkeys(Settings().tags, 1)}
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    collector = [line for line in lines if line["event.dataset"] == "tagwatch.collector"]
    assert collector and all(line.get("tagwatch.source") == "mastodon" for line in collector)


def last_run(db: Path) -> dict:
    return store.connect(db).execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").one()._asdict()


def test_collect_once_success_exits_0_recorded_as_manual(tmp_path):
    db = tmp_path / "c.db"
    done = collect_once(db)
    run = last_run(db)
    assert (run["status"], run["trigger"]) == ("success", "manual")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"tagwatch: collect: run {run['id']} success: every tag is done (exit 0)"
    ]


def test_collect_once_while_another_run_holds_the_lease_exits_5(tmp_path):
    db = tmp_path / "c.db"
    store.init_db(db)
    held = store.begin_run(
        store.connect(db), source="sample", trigger="schedule", tags=("sre",), holder="x:1"
    )
    done = collect_once(db)
    assert done.returncode == EXIT_LEASE_HELD
    assert done.stderr.splitlines() == [
        f"tagwatch: collect: not started: run {held.run_id} holds the collection lease (exit 5)"
    ]


def test_collect_once_failed_run_exits_1(tmp_path):
    api = FakeXApi([], [])
    api.script.extend(Scripted(401, {"title": "Unauthorized"}) for _ in range(20))
    base, stop = serve_fake_x(api)
    try:
        done = collect_once(tmp_path / "c.db", TAGWATCH_SOURCE="x", X_BEARER_TOKEN="t", X_API_BASE_URL=base)
    finally:
        stop()
    run = last_run(tmp_path / "c.db")
    assert run["status"] == "failed"
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"tagwatch: collect: run {run['id']} failed: ") and line.endswith("(exit 1)")
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_collect_once_stopped_in_a_rate_limit_wait_exits_promptly_with_the_recorded_status(tmp_path, signum):
    reset = str(int(time.time()) + 200)  # within the 300 s cap: the run waits for it
    api = FakeXApi(
        [make_post(900 + i, ["devops"]) for i in range(5)],
        [make_user("u1", "alice", 3)],
    )
    api.script.append(Scripted(429, {"title": "Too Many Requests"}, {"x-rate-limit-reset": reset}))
    base, stop = serve_fake_x(api)
    db = tmp_path / "c.db"
    env = tagwatch_env(
        db, TAGWATCH_SOURCE="x", X_BEARER_TOKEN="t", X_API_BASE_URL=base, TAGWATCH_TAGS="devops"
    )
    process = start(["collect", "--once"], env)
    try:
        deadline = time.monotonic() + 30
        while not api.calls and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # now in the wait for the rate-limit reset, 200 s away
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
        stop()
    run = last_run(db)
    assert run["status"] != "running"
    assert process.returncode == EXIT_CODES[run["status"]], (run, stderr)
    assert stderr.splitlines()[-1].startswith(f"tagwatch: collect: run {run['id']} {run['status']}: ")
    assert '"signal_received"' in stdout and "Traceback" not in stdout + stderr
