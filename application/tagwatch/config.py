"""Settings read from the environment, validated once at start-up.

Every knob lives here so that a bad value stops the process with one line naming the variable,
instead of surfacing later as a traceback deep inside a collection run.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tagwatch import database

DEFAULT_TAGS = (
    "openbanking",
    "remediation",
    "devops",
    "sre",
    "microservices",
    "observability",
    "oauth",
    "metrics",
    "logmonitoring",
    "opentracing",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SOURCE_NAMES = ("x", "mastodon", "bluesky", "sample")
_TAG_RE = re.compile(r"^[0-9A-Za-z_]{1,100}$")
_LABEL = r"[0-9A-Za-z]([0-9A-Za-z-]{0,62})"
_HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable and the expected form."""

    def __init__(
        self, variable: str, expected: str, got: str | None = None, reason: str | None = None
    ) -> None:
        shown = "" if got is None else f", got {got!r}"
        why = "" if reason is None else f" ({reason})"
        super().__init__(f"{variable} must be {expected}{shown}{why}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    """Validated configuration for every tagwatch process."""

    db_path: str = "data/tagwatch.db"
    # TAGWATCH_DATABASE_URL (may hold a password: never in repr or logs); None = SQLite at db_path
    database_url: str | None = field(default=None, repr=False)
    db_statement_timeout_ms: int = 5000
    tags: tuple[str, ...] = DEFAULT_TAGS
    # Every configured source, in TAGWATCH_SOURCES order: the collector runs each of them in every run.
    sources: tuple[str, ...] = ("sample",)
    x_bearer_token: str | None = field(default=None, repr=False)
    x_api_base_url: str = "https://api.x.com"
    max_posts_per_tag: int = 100
    max_requests_per_tag: int = 100
    tag_time_budget: int = 300
    collect_interval: int = 900
    log_level: str = "INFO"
    admin_token: str | None = field(default=None, repr=False)
    metrics_port: int = 9108
    port: int = 8000
    host: str = "127.0.0.1"
    web_concurrency: int = 2
    api_cache_bytes: int = 32 * 2**20
    mastodon_servers: tuple[str, ...] = ("https://mastodon.social",)
    # (server URL, token) for the servers that want one; a token only ever goes to its own server
    mastodon_tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    bluesky_service: str = "https://bsky.social"
    bluesky_handle: str | None = None
    bluesky_app_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: os.environ), raising ConfigError on the first bad value."""
        env = os.environ if env is None else env
        token = _optional(env, "X_BEARER_TOKEN")
        variable, sources = _sources(env, "x" if token else "sample")
        feeds = _feed_sources(env)
        _check_credentials(variable, sources, token, feeds["bluesky_handle"])
        settings = cls(
            db_path=_optional(env, "TAGWATCH_DB") or cls.db_path,
            database_url=_database_url(env),
            db_statement_timeout_ms=_int(env, "TAGWATCH_DB_STATEMENT_TIMEOUT_MS", 5000, 0, 3_600_000),
            tags=_tags(env),
            sources=sources,
            x_bearer_token=token,
            x_api_base_url=_url(env, "X_API_BASE_URL", cls.x_api_base_url),
            max_posts_per_tag=_int(env, "TAGWATCH_MAX_POSTS_PER_TAG", 100, 1, 1_000_000),
            max_requests_per_tag=_int(env, "TAGWATCH_MAX_REQUESTS_PER_TAG", 100, 1, 100_000),
            tag_time_budget=_int(env, "TAGWATCH_TAG_TIME_BUDGET", 300, 1, 86_400),
            collect_interval=_int(env, "TAGWATCH_COLLECT_INTERVAL", 900, 1, 86_400 * 7),
            log_level=_choice(env, "LOG_LEVEL", LOG_LEVELS, "INFO", upper=True),
            admin_token=_optional(env, "TAGWATCH_ADMIN_TOKEN"),
            metrics_port=_int(env, "TAGWATCH_METRICS_PORT", 9108, 0, 65535),
            port=_int(env, "PORT", 8000, 1, 65535),
            web_concurrency=_int(env, "WEB_CONCURRENCY", 2, 1, 64),
            api_cache_bytes=_int(env, "TAGWATCH_API_CACHE_BYTES", cls.api_cache_bytes, 0, 2**40),
            host=_host(env, "TAGWATCH_HOST", cls.host),
            **feeds,
        )
        if settings.metrics_port == settings.port:
            raise ConfigError("TAGWATCH_METRICS_PORT", f"different from PORT ({settings.port}) or 0")
        return settings

    @property
    def db_url(self) -> str:
        """The store's URL: TAGWATCH_DATABASE_URL, else SQLite at TAGWATCH_DB."""
        return self.database_url or database.sqlite_url(self.db_path)

    @property
    def db_shown(self) -> str:
        """The store's URL with any password masked, for logs and messages."""
        return database.masked(self.db_url)


def _database_url(env: Mapping[str, str]) -> str | None:
    raw = _optional(env, "TAGWATCH_DATABASE_URL")
    if raw is None:
        return None
    try:
        database.parse_url(raw)
    except database.BadDatabaseUrl as exc:
        raise ConfigError("TAGWATCH_DATABASE_URL", database.URL_FORM, reason=str(exc)) from None
    return raw


def _sources(env: Mapping[str, str], default: str) -> tuple[str, tuple[str, ...]]:
    """TAGWATCH_SOURCES (or its one-source alias TAGWATCH_SOURCE): the variable read and the names."""
    raw = env.get("TAGWATCH_SOURCES", "").strip()
    alias = _choice(env, "TAGWATCH_SOURCE", SOURCE_NAMES, "") or None
    if not raw:
        return ("TAGWATCH_SOURCE", (alias,)) if alias else ("TAGWATCH_SOURCES", (default,))
    expected = "a comma-separated list of " + ", ".join(SOURCE_NAMES) + ", each named once"
    names = tuple(part.strip().lower() for part in raw.split(","))
    if not all(names) or any(name not in SOURCE_NAMES for name in names) or len(set(names)) < len(names):
        raise ConfigError("TAGWATCH_SOURCES", expected, raw)
    if alias and names != (alias,):
        raise ConfigError(
            "TAGWATCH_SOURCES", f"the same as TAGWATCH_SOURCE={alias} when both are set (unset one)", raw
        )
    return "TAGWATCH_SOURCES", names


def _check_credentials(variable: str, sources: tuple[str, ...], token: str | None, handle: object) -> None:
    """A source that needs credentials is chosen only with them (Mastodon's tokens are optional)."""
    if "x" in sources and not token:
        raise ConfigError("X_BEARER_TOKEN", f"set when {variable} includes x (an X API v2 bearer token)")
    if "bluesky" in sources and not handle:  # _feed_sources checked that a handle comes with a password
        raise ConfigError(
            "BLUESKY_HANDLE",
            f"set with BLUESKY_APP_PASSWORD when {variable} includes bluesky"
            " (an account and an app password)",
        )


def _feed_sources(env: Mapping[str, str]) -> dict[str, object]:
    """The Mastodon and Bluesky settings (read by their clients; TAGWATCH_SOURCES chooses which run)."""
    servers = _servers(env)
    handle, password = _optional(env, "BLUESKY_HANDLE"), _optional(env, "BLUESKY_APP_PASSWORD")
    if bool(handle) != bool(password):
        missing = "BLUESKY_APP_PASSWORD" if handle else "BLUESKY_HANDLE"
        raise ConfigError(missing, "set together with the other (a Bluesky handle and an app password)")
    return {
        "mastodon_servers": servers,
        "mastodon_tokens": _mastodon_tokens(env, servers),
        "bluesky_service": _url(env, "BLUESKY_SERVICE", Settings.bluesky_service),
        "bluesky_handle": handle.lstrip("@") if handle else None,
        "bluesky_app_password": password,
    }


def _servers(env: Mapping[str, str]) -> tuple[str, ...]:
    """MASTODON_SERVERS: comma-separated host names or http(s) base URLs, as base URLs without a path."""
    servers: list[str] = []
    for part in env.get("MASTODON_SERVERS", "").split(","):
        raw = part.strip().rstrip("/")
        if not raw:
            continue
        url = raw if "://" in raw else f"https://{raw}"
        match = re.match(r"^(https?)://([0-9A-Za-z.-]+(?::\d{1,5})?)$", url)
        if not match:
            raise ConfigError("MASTODON_SERVERS", "comma-separated server names such as mastodon.social", raw)
        normalised = f"{match.group(1)}://{match.group(2).lower()}"
        if normalised not in servers:
            servers.append(normalised)
    return tuple(servers) or Settings.mastodon_servers


def _mastodon_tokens(env: Mapping[str, str], servers: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """MASTODON_ACCESS_TOKENS=host=token,… (or MASTODON_ACCESS_TOKEN when there is one server only)."""
    by_host = {s.split("://", 1)[1]: s for s in servers}
    single = _optional(env, "MASTODON_ACCESS_TOKEN")
    if single and len(servers) != 1:
        raise ConfigError(
            "MASTODON_ACCESS_TOKEN",
            "used with one server only; with several use MASTODON_ACCESS_TOKENS=host=token,…",
        )
    tokens = {servers[0]: single} if single else {}
    for part in env.get("MASTODON_ACCESS_TOKENS", "").split(","):
        host, _, token = part.strip().partition("=")
        host = host.strip().lower().removeprefix("https://").removeprefix("http://")
        if not host and not token:
            continue
        if host not in by_host or not token.strip():
            raise ConfigError(
                "MASTODON_ACCESS_TOKENS", "host=token pairs for servers in MASTODON_SERVERS", host
            )
        tokens[by_host[host]] = token.strip()
    return tuple(sorted(tokens.items()))


def address(host: str, port: int) -> str:
    """`host:port` for a listener, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_tags(raw: str) -> tuple[str, ...]:
    """Split a comma-separated tag list; a leading '#' is accepted; duplicates collapse; lowercase."""
    tags: list[str] = []
    for part in raw.split(","):
        tag = part.strip().lstrip("#").lower()
        if not tag:
            continue
        if not _TAG_RE.match(tag):
            raise ConfigError(
                "TAGWATCH_TAGS", "comma-separated hashtags of letters, digits or _", part.strip()
            )
        if tag not in tags:
            tags.append(tag)
    return tuple(tags)


def _tags(env: Mapping[str, str]) -> tuple[str, ...]:
    """TAGWATCH_TAGS: unset or blank means the defaults; a list that parses to nothing is an error."""
    raw = env.get("TAGWATCH_TAGS", "").strip()
    if not raw:
        return DEFAULT_TAGS
    tags = parse_tags(raw)
    if not tags:
        raise ConfigError("TAGWATCH_TAGS", "at least one hashtag (leave it unset for the defaults)", raw)
    return tags


def _host(env: Mapping[str, str], name: str, default: str) -> str:
    """An IP address or a host name to bind; nothing else."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        pass
    if not _HOSTNAME_RE.match(raw):
        raise ConfigError(name, "an IP address or host name to listen on, such as 127.0.0.1 or 0.0.0.0", raw)
    return raw


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _choice(
    env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str, upper: bool = False
) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    value = raw.upper() if upper else raw.lower()
    if value not in allowed:
        raise ConfigError(name, "one of " + " | ".join(allowed), raw)
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"an integer from {low} to {high}", raw) from None
    if not low <= value <= high:
        raise ConfigError(name, f"an integer from {low} to {high}", raw)
    return value


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not re.match(r"^https?://[^\s/]+", raw):
        raise ConfigError(name, "an http(s) URL such as https://api.x.com", raw)
    return raw.rstrip("/")
