"""Settings from the environment: defaults, parsing and one-line errors naming the variable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tagwatch import database
from tagwatch.config import DEFAULT_TAGS, ConfigError, Settings


def test_settings_defaults_without_environment():
    settings = Settings.from_env({})
    assert settings.db_path == "data/tagwatch.db"
    assert settings.tags == DEFAULT_TAGS and len(DEFAULT_TAGS) == 10
    assert settings.sources == ("sample",)
    assert (settings.max_posts_per_tag, settings.collect_interval, settings.log_level) == (100, 900, "INFO")
    assert settings.x_api_base_url == "https://api.x.com"
    assert (settings.metrics_port, settings.port, settings.web_concurrency) == (9108, 8000, 2)
    assert settings.host == "127.0.0.1"


ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - the value the image sets


@pytest.mark.parametrize(
    ("raw", "host"),
    [(ANY_ADDRESS, ANY_ADDRESS), (" ::1 ", "::1"), ("localhost", "localhost"), ("", "127.0.0.1")],
)
def test_settings_host_accepts_addresses_and_host_names(raw, host):
    assert Settings.from_env({"TAGWATCH_HOST": raw}).host == host


def test_settings_blank_tags_mean_the_defaults():
    assert Settings.from_env({"TAGWATCH_TAGS": "  "}).tags == DEFAULT_TAGS


def test_settings_source_defaults_to_x_when_a_token_is_set():
    assert Settings.from_env({"X_BEARER_TOKEN": "abc"}).sources == ("x",)
    assert Settings.from_env({"X_BEARER_TOKEN": "abc", "TAGWATCH_SOURCE": "sample"}).sources == ("sample",)


BLUESKY = {"BLUESKY_HANDLE": "me.bsky.social", "BLUESKY_APP_PASSWORD": "secret-app-pw"}


@pytest.mark.parametrize(
    ("env", "sources"),
    [
        ({}, ("sample",)),
        ({"X_BEARER_TOKEN": "abc"}, ("x",)),
        ({"TAGWATCH_SOURCES": " Mastodon , sample "}, ("mastodon", "sample")),
        (
            {"TAGWATCH_SOURCES": "bluesky,x,mastodon", "X_BEARER_TOKEN": "t"} | BLUESKY,
            ("bluesky", "x", "mastodon"),
        ),
        ({"TAGWATCH_SOURCE": "mastodon"}, ("mastodon",)),
        ({"TAGWATCH_SOURCE": "sample", "TAGWATCH_SOURCES": "sample"}, ("sample",)),
        ({"TAGWATCH_SOURCES": "  "}, ("sample",)),
    ],
)
def test_settings_sources_list_alias_and_default(env, sources):
    settings = Settings.from_env(env)
    assert settings.sources == sources


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"TAGWATCH_SOURCES": "x,mastodn"},
            "TAGWATCH_SOURCES must be a comma-separated list of x, mastodon, bluesky, sample, each named"
            " once, got 'x,mastodn'",
        ),
        (
            {"TAGWATCH_SOURCES": "sample,mastodon,SAMPLE"},
            "TAGWATCH_SOURCES must be a comma-separated list of x, mastodon, bluesky, sample, each named"
            " once, got 'sample,mastodon,SAMPLE'",
        ),
        (
            {"TAGWATCH_SOURCES": ","},
            "TAGWATCH_SOURCES must be a comma-separated list of x, mastodon, bluesky, sample, each named"
            " once, got ','",
        ),
        (
            {"TAGWATCH_SOURCES": "mastodon,,sample"},
            "TAGWATCH_SOURCES must be a comma-separated list of x, mastodon, bluesky, sample, each named"
            " once, got 'mastodon,,sample'",
        ),
        (
            {"TAGWATCH_SOURCES": "mastodon,sample", "TAGWATCH_SOURCE": "sample"},
            "TAGWATCH_SOURCES must be the same as TAGWATCH_SOURCE=sample when both are set (unset one),"
            " got 'mastodon,sample'",
        ),
        (
            {"TAGWATCH_SOURCE": "bluesky,x"},
            "TAGWATCH_SOURCE must be one of x | mastodon | bluesky | sample, got 'bluesky,x'",
        ),
        (
            {"TAGWATCH_SOURCES": "mastodon,x"},
            "X_BEARER_TOKEN must be set when TAGWATCH_SOURCES includes x (an X API v2 bearer token)",
        ),
        (
            {"TAGWATCH_SOURCE": "x"},
            "X_BEARER_TOKEN must be set when TAGWATCH_SOURCE includes x (an X API v2 bearer token)",
        ),
        (
            {"TAGWATCH_SOURCES": "bluesky"},
            "BLUESKY_HANDLE must be set with BLUESKY_APP_PASSWORD when TAGWATCH_SOURCES includes bluesky"
            " (an account and an app password)",
        ),
        (
            {"TAGWATCH_SOURCES": "bluesky", "BLUESKY_HANDLE": "me.bsky.social"},
            "BLUESKY_APP_PASSWORD must be set together with the other (a Bluesky handle and an app password)",
        ),
    ],
)
def test_settings_bad_sources_give_one_line_naming_the_variable(env, message):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert str(raised.value) == message
    assert raised.value.variable == message.split()[0]


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
        ({"TAGWATCH_METRICS_PORT": "8000"}, "TAGWATCH_METRICS_PORT"),
        ({"TAGWATCH_TAGS": ",,,"}, "TAGWATCH_TAGS"),
        ({"TAGWATCH_TAGS": "#, ##"}, "TAGWATCH_TAGS"),
        ({"TAGWATCH_HOST": "not a host"}, "TAGWATCH_HOST"),
        ({"TAGWATCH_HOST": "http://0.0.0.0"}, "TAGWATCH_HOST"),
    ],
)
def test_settings_bad_value_names_the_variable(env, variable):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert raised.value.variable == variable
    assert str(raised.value).startswith(f"{variable} must be")


COMMANDS = [["collect", "--once"], ["collect"], ["init-db"], ["seed", "--posts", "5"], ["serve"], ["run"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_cli_bad_environment_stops_with_one_line_and_no_traceback(command, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TAGWATCH_DB": str(tmp_path / "t.db"), "TAGWATCH_COLLECT_INTERVAL": "abc"}
    done = subprocess.run(
        [sys.executable, "-m", "tagwatch", *command], env=env, capture_output=True, text=True, timeout=60
    )
    message = "TAGWATCH_COLLECT_INTERVAL must be an integer from 1 to 604800, got 'abc'"
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"tagwatch: configuration error: {message}"]
    [line] = done.stdout.splitlines()
    record = json.loads(line)
    assert record["event.action"] == "startup_failed" and record["log.level"] == "critical"
    assert record["tagwatch.variable"] == "TAGWATCH_COLLECT_INTERVAL" and record["error.message"] == message
    assert not (tmp_path / "t.db").exists(), "nothing was done before the check"


def test_settings_feed_sources_defaults():
    settings = Settings.from_env({})
    assert settings.mastodon_servers == ("https://mastodon.social",) and settings.mastodon_tokens == ()
    assert (settings.bluesky_service, settings.bluesky_handle, settings.bluesky_app_password) == (
        "https://bsky.social",
        None,
        None,
    )


def test_settings_mastodon_servers_and_tokens_per_server():
    settings = Settings.from_env(
        {
            "MASTODON_SERVERS": "Mastodon.Social, https://fosstodon.org/, http://127.0.0.1:8080,mastodon.social",
            "MASTODON_ACCESS_TOKENS": "fosstodon.org=tok-f, 127.0.0.1:8080=tok-l",
        }
    )
    assert settings.mastodon_servers == (
        "https://mastodon.social",
        "https://fosstodon.org",
        "http://127.0.0.1:8080",
    )
    assert dict(settings.mastodon_tokens) == {
        "https://fosstodon.org": "tok-f",
        "http://127.0.0.1:8080": "tok-l",
    }
    assert "tok-f" not in repr(settings)
    single = Settings.from_env({"MASTODON_SERVERS": "example.social", "MASTODON_ACCESS_TOKEN": "tok"})
    assert single.mastodon_tokens == (("https://example.social", "tok"),)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MASTODON_SERVERS": "https://x.example/path"}, "MASTODON_SERVERS"),
        (
            {"MASTODON_SERVERS": "a.example,b", "MASTODON_ACCESS_TOKEN": "secret-app-pw"},
            "MASTODON_ACCESS_TOKEN",
        ),
        ({"MASTODON_ACCESS_TOKENS": "other.example=secret-app-pw"}, "MASTODON_ACCESS_TOKENS"),
        ({"MASTODON_ACCESS_TOKENS": "mastodon.social="}, "MASTODON_ACCESS_TOKENS"),
        ({"BLUESKY_HANDLE": "me.bsky.social"}, "BLUESKY_APP_PASSWORD"),
        ({"BLUESKY_APP_PASSWORD": "secret-app-pw"}, "BLUESKY_HANDLE"),
        ({"BLUESKY_SERVICE": "bsky.social"}, "BLUESKY_SERVICE"),
    ],
)
def test_settings_feed_source_errors_name_the_variable_and_never_the_secret(env, variable):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert raised.value.variable == variable
    assert "secret-app-pw" not in str(raised.value)


def test_feed_clients_from_settings():
    from tagwatch.sources.bluesky import BlueskyClient
    from tagwatch.sources.mastodon import MastodonClient

    settings = Settings.from_env(
        {
            "MASTODON_SERVERS": "a.example,b.example",
            "MASTODON_ACCESS_TOKENS": "b.example=tok-b",
            "BLUESKY_HANDLE": "@me.bsky.social",
            "BLUESKY_APP_PASSWORD": "secret-app-pw",
        }
    )
    mastodon = MastodonClient.from_settings(settings)
    assert [(s.server.url, s.server.token) for s in mastodon.servers] == [
        ("https://a.example", None),
        ("https://b.example", "tok-b"),
    ]
    bluesky = BlueskyClient.from_settings(settings)
    assert (bluesky.service, bluesky.handle) == ("https://bsky.social", "me.bsky.social")
    with pytest.raises(ConfigError):
        BlueskyClient.from_settings(Settings.from_env({}))


@pytest.mark.parametrize(
    ("raw", "kind", "shown"),
    [
        ("postgresql://u:pw@db:5432/tw", "postgresql", "postgresql://u:***@db:5432/tw"),
        ("postgres://u:pw@db/tw", "postgresql", "postgres://u:***@db/tw"),
        ("sqlite:///data/x.db", "sqlite", "sqlite:///data/x.db"),
    ],
)
def test_settings_database_url_picks_the_backend_and_masks_the_password(raw, kind, shown):
    settings = Settings.from_env({"TAGWATCH_DATABASE_URL": raw})
    assert database.backend_of(settings.db_url) == kind
    assert database.parse_url(raw).drivername in ("postgresql+psycopg", "sqlite")
    assert settings.db_shown == shown and "pw" not in repr(settings)


def test_settings_database_url_defaults_to_sqlite_at_tagwatch_db():
    settings = Settings.from_env({"TAGWATCH_DB": "/tmp/t.db"})
    assert settings.db_url == "sqlite:////tmp/t.db" and settings.db_statement_timeout_ms == 5000


@pytest.mark.parametrize("raw", ["-1", "x", "3600001"])
def test_settings_statement_timeout_is_bounded(raw):
    with pytest.raises(ConfigError, match="TAGWATCH_DB_STATEMENT_TIMEOUT_MS"):
        Settings.from_env({"TAGWATCH_DB_STATEMENT_TIMEOUT_MS": raw})
