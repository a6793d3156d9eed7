"""`tagwatch seed`: exactly N posts, truthful `new` counts, and a clear error when its generator dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backends import settings_env
from processes import descendants, start

from tagwatch import store
from tagwatch.sources import sample
from tagwatch.sources.sample import SampleWorld

NOW = 1_795_000_000.0


def seed(db: Path, count: int) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", **settings_env(db), "LOG_LEVEL": "INFO"}
    return subprocess.run(
        [sys.executable, "-m", "tagwatch", "seed", "--posts", str(count)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def reported(done: subprocess.CompletedProcess) -> dict:
    [line] = [json.loads(line) for line in done.stdout.splitlines() if '"seed"' in line]
    return line


def posts(db: Path) -> int:
    return store.connect(db).execute("SELECT count(*) FROM posts").fetchone()[0]


def test_seed_pages_make_exactly_n_unique_posts_beyond_4096_per_slot(monkeypatch):
    # two 10-minute slots for 10,000 posts: 5,000 per slot, more than a 12-bit sequence holds
    monkeypatch.setattr(sample, "WINDOW_SECONDS", 2 * sample.SLOT_SECONDS)
    pages = list(SampleWorld(users=50).seed_pages(10_000, NOW, page_size=3000))
    ids = [int(post["id"]) for page in pages for post in page["data"]]
    assert len(ids) == 10_000 == len(set(ids))
    workers = {(post_id >> 12) & 0x3FF for post_id in ids}
    assert sample.LIVE_WORKER not in workers and workers == {sample.SEED_WORKER, sample.SEED_WORKER + 1}


def test_seed_twice_reports_only_the_posts_that_are_new(db_url):
    db = db_url.removeprefix("sqlite:///")
    first = seed(db, 2000)
    assert first.returncode == 0, first.stderr
    assert (reported(first)["tagwatch.posts"], reported(first)["tagwatch.posts_new"]) == (2000, 2000)
    assert posts(db) == 2000
    second = seed(db, 2000)
    assert second.returncode == 0, second.stderr
    assert reported(second)["tagwatch.posts"] == 2000
    assert reported(second)["tagwatch.posts_new"] == posts(db) - 2000


@pytest.mark.slow
def test_seed_stops_with_a_clear_error_when_its_generator_dies(tmp_path):
    db = tmp_path / "s.db"
    env = {"PATH": "/usr/bin:/bin", "TAGWATCH_DB": str(db), "LOG_LEVEL": "WARNING"}
    process = start(["seed", "--posts", "2000000"], env)
    try:
        deadline = time.monotonic() + 30
        while not (producers := descendants(process.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        [producer] = producers
        time.sleep(0.5)
        os.kill(producer, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 1
    [line] = stderr.splitlines()
    assert line.startswith(
        f"tagwatch: seed: the sample generator (pid {producer}) died with exit code -9 after "
    )
    assert line.endswith(" of 2,000,000 posts")
    assert "Traceback" not in stdout + stderr
