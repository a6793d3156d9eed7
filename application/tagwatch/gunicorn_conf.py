"""gunicorn settings for the API: JSON logs, multiprocess Prometheus metrics, env-driven sizing.

The only gunicorn configuration, loaded as `gunicorn --config python:tagwatch.gunicorn_conf` by the image,
`tagwatch serve` and the tests. It runs in the master before workers fork, so the metrics directory is chosen
and wiped here, and a bad environment variable stops start-up with one line.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from tagwatch.config import ConfigError, Settings, address

try:
    _settings = Settings.from_env()
except ConfigError as _exc:
    sys.stderr.write(f"tagwatch: configuration error: {_exc}\n")
    sys.exit(2)

os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"tagwatch-prom-{os.getpid()}")
)

bind = [address(_settings.host, _settings.port)]
workers = _settings.web_concurrency
# gevent: a slow or idle client costs a greenlet, not a worker (sync) or a thread (gthread reads a trickled
# request in a blocking thread); measurements in docs/performance.md. SQLite calls do not yield, so each
# request's reads run to completion; readers come from a pool (tagwatch.api.db), not one per greenlet.
worker_class = "tagwatch.gunicorn_worker.Worker"
worker_connections = 1000
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None  # tagwatch writes its own JSON access line per request
loglevel = _settings.log_level.lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "tagwatch.logs.EcsJsonFormatter"}},
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    },
    "root": {"handlers": ["stdout"], "level": _settings.log_level},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": _settings.log_level, "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "WARNING", "propagate": False},
    },
}


def on_starting(server) -> None:
    """Wipe the multiprocess metrics directory so counters start at zero with the master."""
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server, worker) -> None:
    """Let prometheus-client drop a dead worker's live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
