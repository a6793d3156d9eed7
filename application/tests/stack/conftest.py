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
