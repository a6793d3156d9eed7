"""JSON log lines with ECS field names, one object per line on stdout.

Keys are dotted at the top level (`log.level`, `http.request.id`); Filebeat expands them into ECS objects.
Fields travel as `extra={...}` so they stay data, never formatted into the message.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from tagwatch import __version__, timestamps

SERVICE_NAME = "tagwatch"
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tagwatch_request_id", default=None
)
#: the source a collector thread is collecting from: every line it logs carries it as tagwatch.source
source_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("tagwatch_source", default=None)
#: short field names for `event()` that ECS defines; every other field goes under `tagwatch.`
ECS_FIELDS = {
    "tag": "labels.tag",
    "outcome": "event.outcome",
    "error_type": "error.type",
    "error_message": "error.message",
}
_DATASETS = (("tagwatch.access", "tagwatch.access"), ("tagwatch.collector", "tagwatch.collector"))


def dataset_for(logger_name: str) -> str:
    """Map a logger to its ECS event.dataset so Kibana can split access, app and collector lines."""
    for prefix, dataset in _DATASETS:
        if logger_name == prefix or logger_name.startswith(prefix + "."):
            return dataset
    return "tagwatch.app"


def event(action: str, **fields: Any) -> dict[str, Any]:
    """The `extra=` of a log call: `event.action` plus `fields` under their ECS or `tagwatch.` names.

    `duration_seconds` becomes ECS `event.duration` (nanoseconds); fields that are None are left out.
    """
    extra: dict[str, Any] = {"event.action": action}
    for name, value in fields.items():
        if value is None:
            continue
        if name == "duration_seconds":
            extra["event.duration"] = int(value * 1e9)
        else:
            extra[ECS_FIELDS.get(name, "tagwatch." + name)] = value
    return extra


@contextmanager
def source_context(source: str) -> Iterator[None]:
    """Every line logged inside (in this thread) carries `tagwatch.source`."""
    token = source_var.set(source)
    try:
        yield
    finally:
        source_var.reset(token)


class SourceFilter(logging.Filter):
    """Adds `tagwatch.source` from source_context to records that do not name their source."""

    def filter(self, record: logging.LogRecord) -> bool:
        source = source_var.get()
        if source is not None and not hasattr(record, "tagwatch.source"):
            setattr(record, "tagwatch.source", source)
        return True


class EcsJsonFormatter(JsonFormatter):
    """python-json-logger formatter that writes the ECS base fields tagwatch promises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(message)s")
        super().__init__(*args, **kwargs)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """Put the ECS base fields first, then the record's extras, then error details."""
        log_data["@timestamp"] = timestamps.utc(record.created, millis=True)
        log_data["log.level"] = record.levelname.lower()
        log_data["log.logger"] = record.name
        super().add_fields(log_data, record, message_dict)
        log_data.setdefault("service.name", SERVICE_NAME)
        log_data.setdefault("service.version", __version__)
        log_data.setdefault("event.dataset", dataset_for(record.name))
        log_data["process.pid"] = record.process
        request_id = request_id_var.get()
        if request_id and "http.request.id" not in log_data:
            log_data["http.request.id"] = request_id
        _move_error_fields(log_data, record)


def _move_error_fields(log_data: dict[str, Any], record: logging.LogRecord) -> None:
    """Replace python-json-logger's `exc_info` text with ECS error.* fields."""
    log_data.pop("exc_info", None)
    log_data.pop("stack_info", None)
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        log_data.setdefault("error.type", type(exc).__name__)
        log_data.setdefault("error.message", str(exc))
        log_data["error.stack_trace"] = "".join(traceback.format_exception(exc))


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send every logger's records as JSON lines to stdout (or `stream`), replacing other handlers."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(EcsJsonFormatter())
    handler.addFilter(SourceFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "werkzeug", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
