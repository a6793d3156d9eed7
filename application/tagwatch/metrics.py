"""Prometheus metric objects, defined once as module constants.

Names follow Prometheus conventions (base units, `_total`, `_seconds`); labels are bounded:
HTTP metrics use the route template, and tags come from configuration.

The collector's metrics are created on first use (module `__getattr__`), so they exist only in a
process that collects: the API's `/metrics` never shows an always-zero collector series such as
`tagwatch_collection_duration_seconds`, which Prometheus would otherwise scrape from two jobs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from tagwatch import __version__

RUN_OUTCOMES = ("success", "partial", "failed", "interrupted")
PARTIAL_REASONS = ("errors", "missing_author", "missing_place")
# Statuses the alerts watch per source (rate limited, refused): at 0 from the start, so that
# increase() sees the first one and dashboards show a flat line rather than nothing.
WATCHED_STATUSES = ("401", "402", "403", "429")
UNMATCHED_ROUTE = "unmatched"

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5),
)
HTTP_IN_PROGRESS = Gauge(
    "http_requests_in_progress", "HTTP requests being answered.", multiprocess_mode="livesum"
)
BUILD_INFO = Gauge(
    "tagwatch_build_info",
    "Always 1; the version label says which build runs.",
    ["version"],
    multiprocess_mode="max",
)


_COLLECTOR_METRICS: dict[str, Callable[[], Any]] = {
    "POSTS_COLLECTED": lambda: Counter(
        "tagwatch_posts_collected_total", "New posts stored.", ["tag", "source"]
    ),
    "POSTS_READ": lambda: Counter(
        "tagwatch_posts_read_total", "Posts read from the source (what X bills).", ["tag", "source"]
    ),
    "SOURCE_REQUESTS": lambda: Counter(
        "tagwatch_source_requests_total",
        "HTTP attempts to the post source by outcome (every retry counts).",
        ["source", "status"],
    ),
    "SOURCE_DURATION": lambda: Histogram(
        "tagwatch_source_request_duration_seconds",
        "Time for one request to the post source.",
        ["source"],
        buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    ),
    "SOURCE_RATE_LIMIT_REMAINING": lambda: Gauge(
        "tagwatch_source_rate_limit_remaining",
        "Requests left in the source's rate-limit window (x-rate-limit-remaining).",
        ["source"],
        multiprocess_mode="mostrecent",
    ),
    "SOURCE_PARTIAL_ERRORS": lambda: Counter(
        "tagwatch_source_partial_errors_total",
        "Incomplete data in 200 responses: errors[] entries, posts whose author or place was missing"
        " from includes.",
        ["source", "reason"],
    ),
    "COLLECTION_RUNS": lambda: Counter(
        "tagwatch_collection_runs_total", "Collection runs by outcome.", ["outcome"]
    ),
    "SOURCE_RUNS": lambda: Counter(
        "tagwatch_source_runs_total",
        "Each source's part of a collection run, by how it ended (success, partial, failed, interrupted).",
        ["source", "outcome"],
    ),
    "COLLECTION_DURATION": lambda: Histogram(
        "tagwatch_collection_duration_seconds",
        "Duration of one collection run over all tags.",
        buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800),
    ),
    "LAST_SUCCESS": lambda: Gauge(
        "tagwatch_last_successful_collection_timestamp_seconds",
        "Unix time of the last successful collection of a tag from a source (0 = never).",
        ["tag", "source"],
        multiprocess_mode="max",
    ),
    "STORED_POSTS": lambda: Gauge(
        "tagwatch_stored_posts",
        "Posts stored per tag and source.",
        ["tag", "source"],
        multiprocess_mode="mostrecent",
    ),
}


_CREATING = threading.Lock()


def __getattr__(name: str) -> Any:
    """Create a collector metric on first use and keep it as a module constant from then on."""
    if name not in _COLLECTOR_METRICS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _collector(name)


def _collector(name: str) -> Any:
    with _CREATING:
        if name not in globals():
            globals()[name] = _COLLECTOR_METRICS[name]()
        return globals()[name]


def precreate_collector(tags: Iterable[str], sources: Iterable[str]) -> None:
    """Create the collector's bounded label combinations, for every configured source, so that its
    series exist at 0 before the first run (the rate-limit gauge is left out: 0 would mean "used up")."""
    tags = tuple(tags)
    BUILD_INFO.labels(version=__version__).set(1)
    for outcome in RUN_OUTCOMES:
        _collector("COLLECTION_RUNS").labels(outcome=outcome)
    for source in sources:
        _precreate_source(source, tags)


def _precreate_source(source: str, tags: tuple[str, ...]) -> None:
    _collector("SOURCE_DURATION").labels(source=source)
    for outcome in RUN_OUTCOMES:
        _collector("SOURCE_RUNS").labels(source=source, outcome=outcome)
    for status in WATCHED_STATUSES:
        _collector("SOURCE_REQUESTS").labels(source=source, status=status)
    for reason in PARTIAL_REASONS:
        _collector("SOURCE_PARTIAL_ERRORS").labels(source=source, reason=reason)
    for tag in tags:
        _collector("POSTS_COLLECTED").labels(tag=tag, source=source)
        _collector("POSTS_READ").labels(tag=tag, source=source)
        _collector("LAST_SUCCESS").labels(tag=tag, source=source)


def precreate_http(routes: Iterable[tuple[str, str]]) -> None:
    """Create the API's latency series per (method, route) so they exist at 0 before traffic."""
    BUILD_INFO.labels(version=__version__).set(1)
    for method, route in routes:
        HTTP_DURATION.labels(method=method, route=route)


# Text format 0.0.4, not CONTENT_TYPE_LATEST (1.0.0 since prometheus-client 0.26): every scraper
# parses 0.0.4, while Metricbeat before 8.19.6 fetches nothing for a version it does not know
# (elastic/beats#47272). The body is the same for tagwatch's names either way.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def render() -> tuple[bytes, str]:
    """The exposition text for this process, or for all gunicorn workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE
    return generate_latest(REGISTRY), CONTENT_TYPE
