"""scripts/generate-env.py: .env from .env.example with strong random secrets, never overwriting.

The script is run for real, as `make env` runs it; test_compose.py checks that Compose accepts
what it writes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from compose_model import ENV_EXAMPLE, REPO, env_values, generate_env, project, run_compose, with_values

PASSWORDS = ("ELASTIC_PASSWORD", "KIBANA_SYSTEM_PASSWORD", "FILEBEAT_INTERNAL_PASSWORD")
PASSWORDS += ("METRICBEAT_INTERNAL_PASSWORD", "POSTGRES_PASSWORD", "POSTGRES_APP_PASSWORD")
KEYS = (
    "KIBANA_SECURITY_ENCRYPTION_KEY",
    "KIBANA_SAVED_OBJECTS_ENCRYPTION_KEY",
    "KIBANA_REPORTING_ENCRYPTION_KEY",
)


def secrets_of(text: str) -> dict[str, str]:
    values = env_values(text)
    return {name: values[name] for name in (*PASSWORDS, *KEYS)}


def test_fills_every_secret_with_a_strong_distinct_value(tmp_path: Path) -> None:
    result = generate_env(tmp_path)
    assert result.returncode == 0, result.stderr
    secrets = secrets_of((tmp_path / ".env").read_text())
    for name in PASSWORDS:
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", secrets[name]), name  # 24 random bytes, URL-safe
    for name in KEYS:
        assert re.fullmatch(r"[0-9a-f]{64}", secrets[name]), name  # 32 random bytes
    assert len(set(secrets.values())) == len(secrets)


def test_changes_nothing_but_the_secrets(tmp_path: Path) -> None:
    assert generate_env(tmp_path).returncode == 0
    written = (tmp_path / ".env").read_text()
    assert with_values(written, **dict.fromkeys((*PASSWORDS, *KEYS), "")) == ENV_EXAMPLE.read_text()


def test_two_runs_never_share_a_secret(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    assert generate_env(first).returncode == generate_env(second).returncode == 0
    a, b = secrets_of((first / ".env").read_text()), secrets_of((second / ".env").read_text())
    assert not set(a.values()) & set(b.values())


def test_new_env_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    assert generate_env(tmp_path).returncode == 0
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600


def test_says_where_the_elastic_password_is_and_prints_no_secret(tmp_path: Path) -> None:
    result = generate_env(tmp_path)
    output = result.stdout + result.stderr
    assert f"ELASTIC_PASSWORD line of {tmp_path / '.env'}" in output
    for value in secrets_of((tmp_path / ".env").read_text()).values():
        assert value not in output


def test_never_overwrites_an_existing_env(tmp_path: Path) -> None:
    assert generate_env(tmp_path).returncode == 0
    env_file = tmp_path / ".env"
    mine = env_file.read_text() + "# my own line\n"
    env_file.write_text(mine)
    before = env_file.stat().st_mtime_ns

    result = generate_env(tmp_path)

    assert result.returncode == 0, result.stderr
    assert "left unchanged" in result.stdout
    assert env_file.read_text() == mine
    assert env_file.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"ELASTIC_PASSWORD": "changeme"}, ["ELASTIC_PASSWORD"]),
        ({"FILEBEAT_INTERNAL_PASSWORD": "short-but-15-ch"}, ["FILEBEAT_INTERNAL_PASSWORD"]),
        (
            {"KIBANA_REPORTING_ENCRYPTION_KEY": "x" * 31, "KIBANA_SYSTEM_PASSWORD": ""},
            KEYS[2:] + PASSWORDS[1:2],
        ),
    ],
)
def test_names_weak_secrets_of_an_existing_env_without_touching_it(
    tmp_path: Path, changes: dict[str, str], named: list[str]
) -> None:
    assert generate_env(tmp_path).returncode == 0
    env_file = tmp_path / ".env"
    weak = with_values(env_file.read_text(), **changes)
    env_file.write_text(weak)

    result = generate_env(tmp_path)

    assert result.returncode == 1
    assert env_file.read_text() == weak
    for name in (*PASSWORDS, *KEYS):
        assert (name in result.stderr) == (name in named), name


def test_an_env_from_before_the_kibana_keys_is_refused_by_name(tmp_path: Path) -> None:
    assert generate_env(tmp_path).returncode == 0
    env_file = tmp_path / ".env"
    env_file.write_text(re.sub(r"^KIBANA_\w+_ENCRYPTION_KEY=.*\n", "", env_file.read_text(), flags=re.M))

    result = generate_env(tmp_path)

    assert result.returncode == 1
    assert all(name in result.stderr for name in KEYS)


def add_missing(directory: Path) -> subprocess.CompletedProcess:
    return generate_env(directory, "--add-missing")


def drop(text: str, *names: str) -> str:
    return re.sub(rf"^({'|'.join(names)})=.*\n", "", text, flags=re.M)


NEW_IN_ISSUE_12 = ("COMPOSE_PROFILES", "POSTGRES_PASSWORD", "POSTGRES_APP_PASSWORD")


def test_an_env_from_before_the_postgres_profile_is_told_what_to_add(tmp_path: Path) -> None:
    assert generate_env(tmp_path).returncode == 0
    env_file = tmp_path / ".env"
    old = drop(env_file.read_text(), *NEW_IN_ISSUE_12, "POSTGRES_APP_USER", "POSTGRES_DB")
    env_file.write_text(old)

    result = generate_env(tmp_path)

    assert result.returncode == 1
    assert env_file.read_text() == old
    assert f"lacks {', '.join(NEW_IN_ISSUE_12)}, added to .env.example since it was made" in result.stderr
    assert "--add-missing" in result.stderr


def test_add_missing_appends_only_what_is_lacking_and_keeps_every_line(tmp_path: Path) -> None:
    assert generate_env(tmp_path).returncode == 0
    env_file = tmp_path / ".env"
    old = (
        drop(env_file.read_text(), *NEW_IN_ISSUE_12, "CADDY_VERSION")
        + "# my own line\nELASTIC_VERSION=8.19.99\n"
    )
    env_file.write_text(old)

    result = add_missing(tmp_path)

    assert result.returncode == 0, result.stderr
    text = env_file.read_text()
    assert text.startswith(old)
    added = env_values(text[len(old) :])
    assert set(added) == {*NEW_IN_ISSUE_12, "CADDY_VERSION"}
    assert added["COMPOSE_PROFILES"] == "sqlite"
    assert added["CADDY_VERSION"] == env_values(ENV_EXAMPLE.read_text())["CADDY_VERSION"]
    for name in ("POSTGRES_PASSWORD", "POSTGRES_APP_PASSWORD"):
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", added[name]), name
        assert added[name] not in result.stdout + result.stderr
    assert generate_env(tmp_path).returncode == 0  # now complete
    assert add_missing(tmp_path).returncode == 0 and env_file.read_text() == text  # and idempotent


def test_add_missing_still_names_a_weak_secret_it_may_not_replace(tmp_path: Path) -> None:
    assert generate_env(tmp_path).returncode == 0
    env_file = tmp_path / ".env"
    env_file.write_text(
        with_values(drop(env_file.read_text(), "POSTGRES_PASSWORD"), ELASTIC_PASSWORD="changeme")
    )

    result = add_missing(tmp_path)

    assert result.returncode == 1
    assert "ELASTIC_PASSWORD" in result.stderr and "POSTGRES_PASSWORD" not in result.stderr
    assert "ELASTIC_PASSWORD=changeme" in env_file.read_text()


NEW_IN_ISSUE_13 = ("MASTODON_SERVERS", "MASTODON_ACCESS_TOKEN", "MASTODON_ACCESS_TOKENS")
NEW_IN_ISSUE_13 += ("BLUESKY_SERVICE", "BLUESKY_HANDLE", "BLUESKY_APP_PASSWORD")


def test_an_env_from_before_the_feed_sources_stays_usable_and_add_missing_appends_them(
    tmp_path: Path,
) -> None:
    assert generate_env(tmp_path).returncode == 0
    env_file = tmp_path / ".env"
    old = drop(env_file.read_text(), *NEW_IN_ISSUE_13)
    env_file.write_text(old)
    result = generate_env(tmp_path)
    assert result.returncode == 0, result.stderr  # no secret of the stack is missing: still usable
    assert run_compose(project(tmp_path, old), "config", "-q").returncode == 0

    result = add_missing(tmp_path)

    assert result.returncode == 0, result.stderr
    added = env_values(env_file.read_text()[len(old) :])
    example = env_values(ENV_EXAMPLE.read_text())
    assert added == {name: example[name] for name in NEW_IN_ISSUE_13}
    assert added["BLUESKY_APP_PASSWORD"] == ""  # an account's password is never generated
    assert run_compose(project(tmp_path, env_file.read_text()), "config", "-q").returncode == 0


@pytest.mark.parametrize("password", ["p@ss/word:with-16+chars", "0123456789abcdef%"])
def test_an_app_password_that_would_break_the_database_url_is_refused(tmp_path: Path, password: str) -> None:
    assert generate_env(tmp_path).returncode == 0
    env_file = tmp_path / ".env"
    env_file.write_text(with_values(env_file.read_text(), POSTGRES_APP_PASSWORD=password))

    result = generate_env(tmp_path)

    assert result.returncode == 1
    assert "POSTGRES_APP_PASSWORD" in result.stderr


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_make_up_creates_env_before_starting_compose() -> None:
    result = subprocess.run(
        ["make", "--dry-run", "up"], cwd=REPO, capture_output=True, text=True, check=True, env=os.environ
    )
    commands = [line.strip() for line in result.stdout.splitlines()]
    generator = next(i for i, c in enumerate(commands) if c.endswith("scripts/generate-env.py"))
    assert commands[generator + 1] == "docker compose up -d"


def test_env_is_ignored_by_git() -> None:
    result = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False)
    assert result.returncode == 0
