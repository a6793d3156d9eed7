"""Shared fixtures: settings on a temp database, the app and its client, a fixed clock, sample data."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from backends import pg_database

sys.path.insert(0, str(Path(__file__).parent))

from fakes import NOW, FixedClock, RecordedSleep

from tagwatch import database, store
from tagwatch.app import create_app
from tagwatch.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
#: the PostgreSQL server of the test machine (trust auth); each test gets a database of its own on it
PG_SERVER = os.environ.get("TAGWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
#: test modules whose storage-touching tests run on both backends (the others: SQLite only)
BOTH_BACKENDS = {
    "test_store",
    "test_aggregates",
    "test_api",
    "test_api_cache",
    "test_collector",
    "test_faults",
    "test_run_requests",
    "test_admin",
    "test_seed",
    "test_migration_sources",
    "test_multi_source",
}
PG_ONLY = {"test_postgres"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: about SQLite's files or pragmas; not run on PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`backend` is sqlite, and also postgresql for the storage-touching modules."""
    if "backend" not in metafunc.fixturenames:
        return
    both = metafunc.module.__name__ in BOTH_BACKENDS and not metafunc.definition.get_closest_marker(
        "sqlite_only"
    )
    backends = ["sqlite", "postgresql"] if both else ["sqlite"]
    if metafunc.module.__name__ in PG_ONLY:
        backends = ["postgresql"]
    metafunc.parametrize("backend", backends, indirect=True)


PG_SKIPPED = pytest.StashKey[tuple[int, str]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a server the PostgreSQL half is deselected and summed up in one line (CI requires it)."""
    if os.environ.get("TAGWATCH_TEST_REQUIRE_POSTGRES") == "1":
        return
    postgres = [item for item in items if _backend_of(item) == "postgresql"]
    problem = _pg_reachable() if postgres else None
    if problem is None:
        return
    config.hook.pytest_deselected(items=postgres)
    items[:] = [item for item in items if _backend_of(item) != "postgresql"]
    config.stash[PG_SKIPPED] = (len(postgres), problem)
    if hasattr(config, "workeroutput"):  # an xdist worker: the controller prints the summary
        config.workeroutput["pg_skipped"] = config.stash[PG_SKIPPED]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist's controller collects nothing itself: it takes the PostgreSQL summary from a worker."""
    skipped = getattr(node, "workeroutput", {}).get("pg_skipped")
    if skipped is not None:
        node.config.stash[PG_SKIPPED] = tuple(skipped)


def _backend_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("backend") if callspec else None


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if PG_SKIPPED in config.stash:
        count, problem = config.stash[PG_SKIPPED]
        terminalreporter.write_line(
            f"PostgreSQL half skipped ({count} tests): no server at {database.masked(PG_SERVER)}"
            f" ({problem}); start one, or see .ci/run, which requires it",
            yellow=True,
        )


def _pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_SERVER, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL server's URL; without one the PostgreSQL half skips (fails when CI requires it)."""
    problem = _pg_reachable()
    if problem is not None:
        message = f"PostgreSQL half skipped: no server at {database.masked(PG_SERVER)} ({problem})"
        if os.environ.get("TAGWATCH_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(message.replace("skipped", "required (TAGWATCH_TEST_REQUIRE_POSTGRES=1)"))
        pytest.skip(message)
    return PG_SERVER


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> Iterator[str]:
    """A database migrated to head once per session; each test's database is a copy (fast)."""
    with pg_database(pg_server) as url:
        store.init_db(url)
        database.dispose_all()  # a template must have no connections when it is copied
        yield database.parse_url(url).database


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A new, empty database of its own (dropped afterwards) on the test server."""
    with pg_database(pg_server) as url:
        yield url


@pytest.fixture
def pg_migrated_url(pg_server: str, pg_template: str) -> Iterator[str]:
    """A new database at the schema's head, copied from the session's template."""
    with pg_database(pg_server, pg_template) as url:
        yield url


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """sqlite or postgresql (parametrised by pytest_generate_tests)."""
    return request.param


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of an empty database of the backend (not initialised)."""
    if backend == "postgresql":
        return request.getfixturevalue("pg_url")
    return database.sqlite_url(tmp_path / "tagwatch.db")


@pytest.fixture
def db_path(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path | str:
    """A freshly initialised database: its file on SQLite, its URL on PostgreSQL."""
    if backend == "postgresql":
        return request.getfixturevalue("pg_migrated_url")
    path = tmp_path / "tagwatch.db"
    store.init_db(path)
    return path


@pytest.fixture
def settings(db_path: Path | str, backend: str) -> Settings:
    """Default settings on the temp database, sample source, an admin token set."""
    url = {"database_url": db_path} if backend == "postgresql" else {}
    return Settings(db_path=str(db_path), sources=("sample",), admin_token="test-admin-token", **url)


@pytest.fixture
def conn(db_path: Path):
    """A writer connection to the temp database."""
    connection = store.connect(db_path)
    yield connection
    connection.close()


@pytest.fixture
def app(settings: Settings):
    """The Flask app on the temp database."""
    application = create_app(settings)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    """Flask test client."""
    return app.test_client()


@pytest.fixture
def clock() -> FixedClock:
    """A clock that only moves when a test (or a recorded sleep) moves it."""
    return FixedClock(NOW)


@pytest.fixture
def sleep(clock: FixedClock) -> RecordedSleep:
    """A sleep that records its waits and advances the fixed clock instead of sleeping."""
    return RecordedSleep(clock)
