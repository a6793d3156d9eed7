"""Capture what tagwatch really emits: log lines of a real run and the metric names it exports.

The stack tests check Kibana fields and the Filebeat decoding against these, so dashboards
cannot drift from the code.
"""

from __future__ import annotations

import io
import json
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from fakes import (
    FAKE_BASE_URL,
    NOW,
    FakeXApi,
    FixedClock,
    RecordedSleep,
    Scripted,
    fake_session,
    make_post,
    make_user,
)
from fakes_mastodon import Author, FakeMastodon, serve_mastodon, toot
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tagwatch import store
from tagwatch.app import create_app
from tagwatch.collector import Collector
from tagwatch.config import Settings
from tagwatch.logs import configure_logging
from tagwatch.sources.mastodon import MastodonClient, MastodonServer
from tagwatch.sources.x import XClient


@cache
def _run() -> tuple[str, str]:
    """One collection run (with a rate-limit wait and a failing tag) plus API traffic; (logs, metrics)."""
    stream = io.StringIO()
    configure_logging("DEBUG", stream)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "capture.db"
            store.init_db(path)
            settings = Settings(
                db_path=str(path), sources=("x",), x_bearer_token="capture-token", admin_token="adm"
            )
            api = FakeXApi(
                [make_post(500 + i, ["devops", "sre"], author="u1") for i in range(30)],
                [make_user("u1", "alice", 9)],
            )
            api.script.append(Scripted(429, {"title": "Too Many Requests"}, {"x-rate-limit-reset": "30"}))
            api.script.append(Scripted(503, "Service Unavailable"))
            client = XClient(
                FAKE_BASE_URL,
                "capture-token",
                session=fake_session(api),
                sleep=RecordedSleep(),
                clock=lambda: 0.0,
            )
            Collector(settings, client).run_once()
            api.script.append(Scripted(401, {"title": "Unauthorized", "status": 401}))
            Collector(settings, client).run_once()
            _read_mastodon()
            http = create_app(settings).test_client()
            for url in (
                "/api/v1/users/top",
                "/api/v1/tags?x=1",
                "/api/v1/posts/by-hour?tz=Nowhere/Land",
                "/nope",
                "/healthz",
            ):
                http.get(url, headers={"X-Request-ID": "capture-req-1"})
            metrics_text = http.get("/metrics").get_data(as_text=True)
    finally:
        configure_logging("INFO")
    return stream.getvalue(), metrics_text + generate_latest(REGISTRY).decode()


def _read_mastodon() -> None:
    """A Mastodon walk where one server demands a token: its origin_out line names the server."""
    clock = FixedClock(NOW)
    open_server, closed_server = FakeMastodon("127.0.0.1", clock), FakeMastodon("127.0.0.2", clock, token="t")
    open_server.receive(toot(1, Author("alice", "127.0.0.1", "Alice", 3), ["devops"]))
    stops = [serve_mastodon(open_server), serve_mastodon(closed_server)]
    try:
        servers = [MastodonServer(open_server.base_url), MastodonServer(closed_server.base_url)]
        sleep = RecordedSleep(clock)
        list(MastodonClient(servers, sleep=sleep, clock=clock, monotonic=clock).pages("devops", None, 100))
    finally:
        for stop in stops:
            stop()


def capture_log_lines() -> list[dict[str, Any]]:
    """Every JSON log line of the captured run, parsed."""
    return [json.loads(line) for line in _run()[0].splitlines() if line.strip()]


def capture_metric_names() -> set[str]:
    """Sample names exported (histograms with their _bucket/_sum/_count suffixes)."""
    names = set()
    for family in text_string_to_metric_families(_run()[1]):
        names.update(sample.name for sample in family.samples)
    return names


def capture_metric_labels() -> dict[str, set[str]]:
    """Label names per exported sample name (histogram buckets without their `le`)."""
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(_run()[1]):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(set(sample.labels) - {"le"})
    return labels
