"""Prometheus metric objects, defined once as module constants.

Names follow Prometheus conventions (base units, `_total`, `_seconds`); labels are bounded:
HTTP metrics use the route template, and tags come from configuration.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

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

SOURCES = ("x", "sample")
RUN_STATUSES = ("success", "failed")
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
POSTS_COLLECTED = Counter("tagwatch_posts_collected_total", "New posts stored.", ["tag", "source"])
POSTS_READ = Counter(
    "tagwatch_posts_read_total", "Posts read from the source (what X bills).", ["tag", "source"]
)
SOURCE_REQUESTS = Counter(
    "tagwatch_source_requests_total", "Requests to the post source by outcome.", ["source", "status"]
)
SOURCE_DURATION = Histogram(
    "tagwatch_source_request_duration_seconds",
    "Time for one request to the post source.",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
SOURCE_RATE_LIMIT_REMAINING = Gauge(
    "tagwatch_source_rate_limit_remaining",
    "Requests left in the source's rate-limit window (x-rate-limit-remaining).",
    ["source"],
    multiprocess_mode="mostrecent",
)
COLLECTION_RUNS = Counter("tagwatch_collection_runs_total", "Collection runs by outcome.", ["status"])
COLLECTION_DURATION = Histogram(
    "tagwatch_collection_duration_seconds",
    "Duration of one collection run over all tags.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800),
)
LAST_SUCCESS = Gauge(
    "tagwatch_last_successful_collection_timestamp_seconds",
    "Unix time of the last successful collection of a tag (0 = never).",
    ["tag"],
    multiprocess_mode="max",
)
STORED_POSTS = Gauge(
    "tagwatch_stored_posts", "Posts stored per tag.", ["tag"], multiprocess_mode="mostrecent"
)
BUILD_INFO = Gauge(
    "tagwatch_build_info",
    "Always 1; the version label says which build runs.",
    ["version"],
    multiprocess_mode="max",
)


def precreate_collector(tags: Iterable[str]) -> None:
    """Create the collector's bounded label combinations so its series exist at 0 before the first run."""
    tags = tuple(tags)
    BUILD_INFO.labels(version=__version__).set(1)
    for status in RUN_STATUSES:
        COLLECTION_RUNS.labels(status=status)
    for source in SOURCES:
        SOURCE_DURATION.labels(source=source)
        for tag in tags:
            POSTS_COLLECTED.labels(tag=tag, source=source)
            POSTS_READ.labels(tag=tag, source=source)
    for tag in tags:
        LAST_SUCCESS.labels(tag=tag)


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
