"""Settings from the environment: defaults, parsing and one-line errors naming the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tagwatch.config import DEFAULT_TAGS, ConfigError, Settings


def test_settings_defaults_without_environment():
    settings = Settings.from_env({})
    assert settings.db_path == "data/tagwatch.db"
    assert settings.tags == DEFAULT_TAGS and len(DEFAULT_TAGS) == 10
    assert settings.source == "sample"
    assert (settings.max_posts_per_tag, settings.collect_interval, settings.log_level) == (100, 900, "INFO")
    assert settings.x_api_base_url == "https://api.x.com"
    assert (settings.metrics_port, settings.port, settings.web_concurrency) == (9108, 8000, 2)


def test_settings_source_defaults_to_x_when_a_token_is_set():
    assert Settings.from_env({"X_BEARER_TOKEN": "abc"}).source == "x"
    assert Settings.from_env({"X_BEARER_TOKEN": "abc", "TAGWATCH_SOURCE": "sample"}).source == "sample"


def test_settings_tags_accept_hash_case_spaces_and_duplicates():
    settings = Settings.from_env({"TAGWATCH_TAGS": " #DevOps, sre,,#sre , OAuth"})
    assert settings.tags == ("devops", "sre", "oauth")


def test_settings_secrets_are_not_in_repr():
    settings = Settings.from_env({"X_BEARER_TOKEN": "tok-123", "TAGWATCH_ADMIN_TOKEN": "adm-456"})
    assert "tok-123" not in repr(settings) and "adm-456" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"TAGWATCH_COLLECT_INTERVAL": "abc"}, "TAGWATCH_COLLECT_INTERVAL"),
        ({"TAGWATCH_COLLECT_INTERVAL": "0"}, "TAGWATCH_COLLECT_INTERVAL"),
        ({"TAGWATCH_SOURCE": "foo"}, "TAGWATCH_SOURCE"),
        ({"TAGWATCH_SOURCE": "x"}, "X_BEARER_TOKEN"),
        ({"TAGWATCH_MAX_POSTS_PER_TAG": "-5"}, "TAGWATCH_MAX_POSTS_PER_TAG"),
        ({"TAGWATCH_TAGS": "dev ops"}, "TAGWATCH_TAGS"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"X_API_BASE_URL": "ftp://x"}, "X_API_BASE_URL"),
        ({"PORT": "99999"}, "PORT"),
        ({"WEB_CONCURRENCY": "two"}, "WEB_CONCURRENCY"),
        ({"TAGWATCH_METRICS_PORT": "x"}, "TAGWATCH_METRICS_PORT"),
    ],
)
def test_settings_bad_value_names_the_variable(env, variable):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert raised.value.variable == variable
    assert str(raised.value).startswith(f"{variable} must be")


@pytest.mark.parametrize("command", [["collect", "--once"], ["init-db"], ["seed", "--posts", "5"], ["serve"]])
def test_cli_bad_environment_stops_with_one_line_and_no_traceback(command, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TAGWATCH_DB": str(tmp_path / "t.db"), "TAGWATCH_COLLECT_INTERVAL": "abc"}
    done = subprocess.run(
        [sys.executable, "-m", "tagwatch", *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "tagwatch: configuration error: "
        "TAGWATCH_COLLECT_INTERVAL must be an integer from 1 to 604800, got 'abc'"
    ]
