"""Start-up fails fast: an unusable database or a taken port stops every command with exit 2, one line
naming the variable and no traceback, before any collection or child process starts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from processes import free_port

from tagwatch import store

DB_COMMANDS = [["collect", "--once"], ["collect"], ["init-db"], ["seed", "--posts", "5"], ["serve"], ["run"]]


def tagwatch(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    full_env = {"PATH": "/usr/bin:/bin", "TAGWATCH_METRICS_PORT": "0", **env}
    return subprocess.run(
        [sys.executable, "-m", "tagwatch", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_startup_failure(done: subprocess.CompletedProcess, variable: str, got: str) -> None:
    """Exit 2, one stderr line naming the variable and the value, one JSON event on stdout, no traceback."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    [line] = done.stderr.splitlines()
    assert line.startswith(f"tagwatch: configuration error: {variable} must be "), line
    assert f"got {got!r}" in line
    [record] = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["event.action"] == "startup_failed" and record["tagwatch.variable"] == variable
    assert "Traceback" not in done.stdout + done.stderr


def unusable_paths(tmp_path: Path) -> dict[str, str]:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a SQLite database\n" * 200)
    (tmp_path / "a-file").write_text("x")
    return {
        "a directory": str(tmp_path),
        "under /proc": "/proc/tagwatch/t.db",
        "in /proc itself": "/proc/t.db",
        "not SQLite": str(garbage),
        "below a file": str(tmp_path / "a-file" / "t.db"),
    }


@pytest.mark.parametrize(
    "case", ["a directory", "under /proc", "in /proc itself", "not SQLite", "below a file"]
)
@pytest.mark.parametrize("command", DB_COMMANDS, ids=" ".join)
def test_unusable_database_path_stops_every_command(command, case, tmp_path):
    path = unusable_paths(tmp_path)[case]
    done = tagwatch(*command, TAGWATCH_DB=path, PORT=str(free_port()))
    assert_startup_failure(done, "TAGWATCH_DB", path)


@pytest.fixture
def taken_port():
    """A port someone else listens on (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def no_runs(db: Path) -> bool:
    return store.connect(db).execute("SELECT count(*) FROM runs").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        (["serve"], "PORT"),
        (["run"], "PORT"),
        (["collect"], "TAGWATCH_METRICS_PORT"),
        (["run"], "TAGWATCH_METRICS_PORT"),
    ],
    ids=["serve PORT", "run PORT", "collect TAGWATCH_METRICS_PORT", "run TAGWATCH_METRICS_PORT"],
)
def test_taken_port_stops_before_any_collection_or_child_starts(command, variable, tmp_path, taken_port):
    db = tmp_path / "t.db"
    ports = {"PORT": str(free_port()), "TAGWATCH_METRICS_PORT": str(free_port()), variable: str(taken_port)}
    done = tagwatch(*command, TAGWATCH_DB=str(db), **ports)
    assert_startup_failure(done, variable, f"127.0.0.1:{taken_port}")
    assert no_runs(db)
    assert "run_started" not in done.stdout and "children_started" not in done.stdout


def test_taken_api_port_is_found_on_any_address(tmp_path, taken_port):
    done = tagwatch(
        "serve",
        TAGWATCH_DB=str(tmp_path / "t.db"),
        PORT=str(taken_port),
        TAGWATCH_HOST="0.0.0.0",  # noqa: S104
    )
    assert_startup_failure(done, "PORT", f"0.0.0.0:{taken_port}")


def test_serve_port_option_is_named_when_taken(tmp_path, taken_port):
    done = tagwatch("serve", "--port", str(taken_port), TAGWATCH_DB=str(tmp_path / "t.db"))
    assert_startup_failure(done, "--port", f"127.0.0.1:{taken_port}")


def test_empty_tag_list_is_an_error_not_the_defaults(tmp_path):
    done = tagwatch("collect", "--once", TAGWATCH_DB=str(tmp_path / "t.db"), TAGWATCH_TAGS=",,,")
    assert_startup_failure(done, "TAGWATCH_TAGS", ",,,")
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize(
    "url", ["mysql://u:p@127.0.0.1/db", "sqlite://", "not a url", "postgresql://u:p@127.0.0.1:5432/"]
)
def test_a_bad_database_url_stops_start_up_naming_the_variable(url, tmp_path):
    done = tagwatch("init-db", TAGWATCH_DATABASE_URL=url, TAGWATCH_DB=str(tmp_path / "t.db"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    [line] = done.stderr.splitlines()
    assert line.startswith("tagwatch: configuration error: TAGWATCH_DATABASE_URL must be sqlite:///path or ")
    assert ":p@" not in done.stdout + done.stderr and "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("command", [["init-db"], ["collect", "--once"], ["serve"]], ids=" ".join)
def test_an_unreachable_database_stops_start_up_without_showing_the_password(command):
    url = "postgresql://tagwatch:s3cret-pass@127.0.0.1:1/tagwatch"
    done = tagwatch(*command, TAGWATCH_DATABASE_URL=url, PORT=str(free_port()))
    assert_startup_failure(done, "TAGWATCH_DATABASE_URL", "postgresql://tagwatch:***@127.0.0.1:1/tagwatch")
    assert "s3cret-pass" not in done.stdout + done.stderr
