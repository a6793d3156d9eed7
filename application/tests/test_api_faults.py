"""Database faults never answer 500: every route × every fault is a 503 problem+json, cache warm or cold;
a replaced database is reopened and served, never the unlinked old file."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import dataset
import pytest

from tagwatch import store
from tagwatch.api.db import Database
from tagwatch.app import create_app
from tagwatch.config import Settings

PROBLEM_BASE = "https://github.com/tagwatch/tagwatch/blob/main/docs/api.md#"
BEARER = {"Authorization": "Bearer test-admin-token"}
ROUTES = [
    ("GET", "/api/v1/users/top?tag=devops"),
    ("GET", "/api/v1/posts/by-hour"),
    ("GET", "/api/v1/posts/by-hour-of-day?tz=Asia/Kolkata"),
    ("GET", "/api/v1/tags/breakdown"),
    ("GET", "/api/v1/tags"),
    ("GET", "/api/v1/posts?lang=en"),
    ("GET", "/api/v1/runs"),
    ("GET", "/api/v1/runs/1"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/collect"),
]
GARBAGE = b"this is not a database " * 400


def seeded(path: Path) -> Path:
    """A database holding tests/dataset.py at `path`."""
    store.init_db(path)
    conn = store.connect(path)
    dataset.seed(conn)
    conn.close()
    return path


def remove_database(path: Path) -> None:
    """The file and its WAL companions gone, as `rm data/tagwatch.db*` would do."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def replace_with(path: Path, content: bytes) -> None:
    """Atomically put another file at `path` (what a restore from backup does)."""
    fresh = path.with_name("incoming.db")
    fresh.write_bytes(content)
    remove_database(path)
    os.replace(fresh, path)


def rollback_journal(path: Path) -> None:
    """A seeded database in rollback-journal mode (as copied from a tool that does not use WAL): there a
    writer's exclusive lock keeps readers out."""
    seeded(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()


@pytest.fixture
def locked() -> Iterator[Callable[[Path], None]]:
    """Lock a database against readers: a writer holding an exclusive transaction."""
    holders: list[sqlite3.Connection] = []

    def lock(path: Path) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("INSERT INTO agg_tag(tag, source, posts, newest_ts) VALUES ('locked', 'x', 1, 1)")
        holders.append(conn)

    yield lock
    for conn in holders:
        conn.close()


# name → (prepare the file before the app starts, break it while serving (after a warm-up) or None)
FAULTS: dict[str, tuple[Callable[[Path], None], str | None]] = {
    "missing": (lambda path: None, None),
    "garbage": (lambda path: path.write_bytes(GARBAGE), None),
    "no schema": (lambda path: path.write_bytes(b""), None),
    "deleted while serving": (seeded, "delete"),
    "replaced by garbage while serving": (seeded, "garbage"),
    "locked": (rollback_journal, "lock before"),
    "locked while serving": (rollback_journal, "lock"),
}


def call(client, method: str, url: str):
    return client.open(url, method=method, headers=BEARER)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_database_fault_is_503_problem_on_every_route(tmp_path, locked, fault, method, url):
    path = tmp_path / "tagwatch.db"
    prepare, while_serving = FAULTS[fault]
    prepare(path)
    app = create_app(Settings(db_path=str(path), admin_token="test-admin-token"))
    app.config["DB_BUSY_TIMEOUT_MS"] = 50
    client = app.test_client()
    if while_serving == "lock before":
        locked(path)
    elif while_serving:
        for _ in range(2):  # the second answer of a summary comes from the cache
            assert call(client, "GET", url).status_code < 500 if method == "GET" else True
        {"delete": remove_database, "garbage": lambda p: replace_with(p, GARBAGE), "lock": locked}[
            while_serving
        ](path)
    response = call(client, method, url)
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    kind = "not-ready" if url == "/readyz" else "database-not-ready"
    assert body["type"] == PROBLEM_BASE + kind and body["status"] == 503 and body["detail"]


def test_missing_database_is_not_created_by_the_api(tmp_path):
    path = tmp_path / "absent.db"
    create_app(Settings(db_path=str(path))).test_client().get("/api/v1/tags")
    assert not path.exists()


def test_replaced_database_is_reopened_and_its_data_served(tmp_path):
    path = seeded(tmp_path / "tagwatch.db")
    client = create_app(Settings(db_path=str(path))).test_client()
    for _ in range(2):  # warm: pooled connections and the cache both hold the first file
        assert client.get("/api/v1/tags").get_json()["data"][2]["posts"] == 4
        assert len(client.get("/api/v1/posts").get_json()["data"]) == 6
    other = tmp_path / "restored.db"
    store.init_db(other)
    remove_database(path)
    os.replace(other, path)
    assert client.get("/api/v1/tags").get_json()["data"][2]["posts"] == 0
    assert client.get("/api/v1/posts").get_json()["data"] == []
    assert client.get("/readyz").status_code == 200


def test_deleted_database_503_until_it_is_back(tmp_path):
    path = seeded(tmp_path / "tagwatch.db")
    client = create_app(Settings(db_path=str(path))).test_client()
    assert client.get("/readyz").status_code == 200
    remove_database(path)
    assert client.get("/readyz").status_code == 503
    seeded(path)
    assert client.get("/readyz").status_code == 200
    assert len(client.get("/api/v1/posts").get_json()["data"]) == 6


def test_readers_let_go_of_a_deleted_file(tmp_path):
    """No worker keeps an unlinked database open (its disk space would never come back)."""
    path = seeded(tmp_path / "tagwatch.db")
    client = create_app(Settings(db_path=str(path))).test_client()
    for url in ("/api/v1/tags", "/api/v1/posts", "/readyz"):
        client.get(url)
    assert open_files_named(path)
    remove_database(path)
    client.get("/readyz")
    assert open_files_named(path) == []


def test_idle_readers_of_a_replaced_file_are_closed_at_once(tmp_path):
    path = seeded(tmp_path / "tagwatch.db")
    database = Database(str(path))
    with database.snapshot(), database.snapshot():  # two requests at once: two pooled readers
        pass
    database.version()
    assert len(open_files_named(path)) >= 3
    replace_with(path, seeded(tmp_path / "other.db").read_bytes())
    database.current()  # what the next request does first
    assert [name for name in open_files_named(path) if name.endswith("(deleted)")] == []


def open_files_named(path: Path) -> list[str]:
    """This process's open file descriptors pointing at `path` (deleted or not)."""
    fds = Path("/proc/self/fd")
    targets = []
    for fd in fds.iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:
            continue
    return [t for t in targets if t.startswith(str(path))]
