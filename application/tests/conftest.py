"""Shared fixtures: settings on a temp database, the app and its client, a fixed clock, sample data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakes import NOW, FixedClock, RecordedSleep

from tagwatch import store
from tagwatch.app import create_app
from tagwatch.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A freshly initialised database file."""
    path = tmp_path / "tagwatch.db"
    store.init_db(path)
    return path


@pytest.fixture
def settings(db_path: Path) -> Settings:
    """Default settings on the temp database, sample source, an admin token set."""
    return Settings(db_path=str(db_path), source="sample", admin_token="test-admin-token")


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
