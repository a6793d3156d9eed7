"""Start-up checks shared by every command: settings, the database file and the ports to bind.

Each failure stops the process before it does any work, with exit code 2 and one line naming the variable:
plain text on stderr for the person at the terminal, and one JSON `startup_failed` event on stdout for the
log pipeline. Never a traceback.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import NoReturn

from tagwatch import database, store
from tagwatch.config import ConfigError, Settings
from tagwatch.database import DB_ERRORS, Connection
from tagwatch.logs import configure_logging, event

EXIT_STARTUP = 2
log = logging.getLogger("tagwatch.startup")


def fail(error: ConfigError) -> NoReturn:
    """Exit 2 with one line naming the variable (stderr), and the same as a JSON event (stdout)."""
    sys.stderr.write(f"tagwatch: configuration error: {error}\n")
    sys.stderr.flush()
    if not logging.getLogger().handlers:
        configure_logging("INFO")
    log.critical(
        "start-up failed: %s",
        error,
        extra=event(
            "startup_failed", variable=error.variable, error_type="ConfigError", error_message=str(error)
        ),
    )
    sys.exit(EXIT_STARTUP)


def prepare(database: bool = True) -> Settings:
    """Settings from the environment, JSON logs at LOG_LEVEL and (by default) a usable database, or exit 2."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        fail(exc)
    configure_logging(settings.log_level)
    if database:
        open_database(settings)
    return settings


def _reason(exc: BaseException) -> str:
    """The first line of the OS's or the driver's message (never SQL, never a password)."""
    reason = getattr(exc, "strerror", None) or str(getattr(exc, "orig", None) or exc).strip()
    return reason.splitlines()[0] if reason else type(exc).__name__


def open_database(settings: Settings) -> int:
    """Create or migrate the schema; an unusable TAGWATCH_DB (a directory, under /proc, …) or an
    unreachable TAGWATCH_DATABASE_URL exits 2 with one line (the URL's password masked)."""
    try:
        return store.init_db(settings.db_url)
    except (OSError, *DB_ERRORS) as exc:
        reason = _reason(exc)
        if settings.database_url:
            variable, got = "TAGWATCH_DATABASE_URL", settings.db_shown
            expected = "a database tagwatch can reach"
        else:
            variable, got = "TAGWATCH_DB", settings.db_path
            expected = "a SQLite database file tagwatch can create and write"
        fail(ConfigError(variable, expected, got, reason=reason))


def open_stores(source: str, target: str) -> tuple[Connection, Connection]:
    """migrate-data's two stores: the source as it is, the target migrated to head; exit 2 naming the
    option (--from/--to) when one is not a database URL or cannot be reached."""
    conns = []
    for option, url in (("--from", source), ("--to", target)):
        try:
            parsed = database.parse_url(url)
            if option == "--to":
                store.init_db(parsed)
            conns.append(database.connect(parsed))
        except database.BadDatabaseUrl as exc:
            fail(ConfigError(option, database.URL_FORM, reason=str(exc)))
        except (OSError, *DB_ERRORS) as exc:
            shown = database.masked(url)
            fail(ConfigError(option, "a database tagwatch can reach", shown, reason=_reason(exc)))
    return conns[0], conns[1]


def check_port(host: str, port: int, variable: str) -> None:
    """Exit 2 naming `variable` unless `host:port` can be bound now (as servers bind: SO_REUSEADDR)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        fail(ConfigError("TAGWATCH_HOST", "an address of this machine", host, reason=str(exc)))
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            fail(port_error(variable, host, port, exc))


def port_error(variable: str, host: str, port: int, exc: OSError) -> ConfigError:
    """The one-line error for a port that cannot be bound."""
    return ConfigError(variable, "a free TCP port", f"{host}:{port}", reason=exc.strerror or str(exc))


def check_ports(settings: Settings) -> None:
    """The API port and, unless 0, the collector's metrics port must both be free on TAGWATCH_HOST."""
    check_port(settings.host, settings.port, "PORT")
    if settings.metrics_port:
        check_port(settings.host, settings.metrics_port, "TAGWATCH_METRICS_PORT")
