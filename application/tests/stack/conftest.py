"""Session fixtures of the stack tests: one generated .env and the compose model resolved with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from compose_model import generate_env, resolve


@pytest.fixture(scope="session")
def generated_env(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The text of an .env that scripts/generate-env.py made from .env.example."""
    directory = tmp_path_factory.mktemp("generated-env")
    result = generate_env(directory)
    assert result.returncode == 0, result.stderr
    return (directory / ".env").read_text()


@pytest.fixture(scope="session")
def resolved(generated_env: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The compose model as `docker compose config` resolves it with the generated .env."""
    return resolve(Path(tmp_path_factory.mktemp("compose")), generated_env)


@pytest.fixture(scope="session")
def resolved_postgres(generated_env: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The compose model of `docker compose --profile postgres config` with the generated .env."""
    return resolve(Path(tmp_path_factory.mktemp("compose-postgres")), generated_env, "postgres")


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def each_profile(request: pytest.FixtureRequest, resolved: dict, resolved_postgres: dict) -> dict:
    """The compose model of each profile in turn: the default (sqlite) and postgres."""
    return resolved if request.param == "sqlite" else resolved_postgres
