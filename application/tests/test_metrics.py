"""Prometheus metrics: names, pre-created series, and exact counts under gunicorn with several workers."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
from processes import free_port, get, gunicorn_args, metric_total, running, tagwatch_env, wait_for
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tagwatch import metrics

ROUTES = [
    "/healthz",
    "/api/v1/users/top",
    "/api/v1/posts/by-hour",
    "/api/v1/posts/by-hour-of-day?tz=Asia/Kolkata",
    "/api/v1/tags/breakdown",
    "/api/v1/tags",
    "/api/v1/posts",
    "/api/v1/runs",
    "/api/v1/users/top?tag=nope",
    "/no/such/path",
]


def test_metrics_endpoint_content_type_and_precreated_series(client):
    # Tags no other test collects: the registry is per process, and an earlier test in the same
    # xdist worker may have counted posts for the default tags (CI once saw devops above 0).
    tags = ("precreated-only-a", "precreated-only-b")
    metrics.precreate_collector(tags, ("sample",))  # what `tagwatch collect` does
    response = client.get("/metrics")
    assert response.status_code == 200
    # 0.0.4, the text format every scraper parses (Metricbeat < 8.19.6 drops 1.0.0, beats#47272).
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.get_data(as_text=True)
    for tag in tags:
        assert f'tagwatch_posts_collected_total{{source="sample",tag="{tag}"}} 0.0' in text
        assert f'tagwatch_last_successful_collection_timestamp_seconds{{source="sample",tag="{tag}"}}' in text
    for outcome in ("success", "partial", "failed", "interrupted"):
        assert f'tagwatch_collection_runs_total{{outcome="{outcome}"}}' in text
    assert re.search(r'tagwatch_build_info\{version="[0-9.]+"\} 1\.0', text)
    assert 'http_request_duration_seconds_count{method="POST",route="/api/v1/collect"}' in text


def test_metrics_route_label_is_the_url_rule_never_the_raw_path(client):
    client.get("/api/v1/runs/12345")
    client.get("/definitely/not/here")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'route="/api/v1/runs/<int:run_id>"' in text
    assert 'route="unmatched"' in text
    assert "12345" not in text and "definitely" not in text


@pytest.mark.slow
def test_metrics_gunicorn_three_workers_count_every_request_exactly(db_path, tmp_path):
    port = free_port()
    env = tagwatch_env(db_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    with running(gunicorn_args(port, workers=3), env, tmp_path / "gunicorn.log"):
        base = f"http://127.0.0.1:{port}"
        # Readiness is polled on a route outside ROUTES and left out of the count: a poll that timed
        # out on a loaded machine is still answered (and counted) later by the worker that accepted it.
        wait_for(base + "/readyz")
        _, before = get(base + "/metrics")
        sent = 0
        for _ in range(12):
            for path in ROUTES:
                get(base + path)
                sent += 1
        _, after = get(base + "/metrics")
    counted = _requests_outside(after, "/readyz") - _requests_outside(before, "/readyz")
    scrapes = 1  # the first /metrics call was counted after its own exposition was rendered
    assert counted == sent + scrapes
    assert metric_total(after.decode(), "http_requests_total", route="unmatched", status="404") == 12
    assert metric_total(after.decode(), "http_requests_total", route="/api/v1/users/top", status="400") == 12
    pids = {line for line in (tmp_path / "prom").iterdir()}
    assert len(pids) >= 3  # one file set per worker: the counts above really were summed across processes


COLLECTOR_ONLY = (
    "tagwatch_collection_duration_seconds",
    "tagwatch_collection_runs_total",
    "tagwatch_source_requests_total",
    "tagwatch_posts_collected_total",
    "tagwatch_last_successful_collection_timestamp_seconds",
)


def test_api_metrics_never_expose_collector_series(tmp_path, db_path):
    """A fresh API process (multiprocess mode, as under gunicorn) shows no collector-only series."""
    script = (
        "from tagwatch.app import create_app\n"
        "from tagwatch.config import Settings\n"
        f"app = create_app(Settings(db_path={str(db_path)!r}))\n"
        "print(app.test_client().get('/metrics').get_data(as_text=True))\n"
    )
    (tmp_path / "prom").mkdir()
    env = tagwatch_env(db_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    text = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "http_request_duration_seconds_count" in text and "tagwatch_build_info" in text
    for name in COLLECTOR_ONLY:
        assert name not in text, name
    assert metrics.COLLECTION_DURATION is metrics.COLLECTION_DURATION  # created once, on first use


# Every collector series pre-created for one source: (metric sample name, label names besides source).
PER_SOURCE_SERIES = {
    "tagwatch_posts_collected_total": {"tag"},
    "tagwatch_posts_read_total": {"tag"},
    "tagwatch_last_successful_collection_timestamp_seconds": {"tag"},
    "tagwatch_source_runs_total": {"outcome"},
    "tagwatch_source_requests_total": {"status"},
    "tagwatch_source_partial_errors_total": {"reason"},
    "tagwatch_source_request_duration_seconds_count": set(),
}


def test_metrics_precreate_every_collector_series_per_configured_source(db_path):
    """In a fresh process: every per-source series exists at 0 for each configured source, and only them."""
    script = (
        "from tagwatch import metrics\n"
        "metrics.precreate_collector(('devops', 'sre'), ('mastodon', 'bluesky'))\n"
        "print(metrics.render()[0].decode())\n"
    )
    env = tagwatch_env(db_path)
    text = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    found: dict[str, set[tuple]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in PER_SOURCE_SERIES:
                assert sample.value == 0, sample
                found.setdefault(sample.name, set()).add(tuple(sorted(sample.labels.items())))
    expected_values = {
        "tag": ("devops", "sre"),
        "outcome": metrics.RUN_OUTCOMES,
        "status": metrics.WATCHED_STATUSES,
        "reason": metrics.PARTIAL_REASONS,
    }
    for name, labels in PER_SOURCE_SERIES.items():
        (other,) = labels or {None}
        values = expected_values[other] if other else (None,)
        expected = {
            tuple(sorted({"source": source, **({other: value} if other else {})}.items()))
            for source in ("mastodon", "bluesky")
            for value in values
        }
        assert found.get(name) == expected, name
    assert "tagwatch_source_rate_limit_remaining{" not in text  # 0 would read as "window used up"


def test_metrics_a_run_sets_last_success_and_run_outcome_per_source(db_path):
    from fakes import FAKE_BASE_URL, FakeXApi, RecordedSleep, fake_session, make_post, make_user

    from tagwatch.collector import Collector
    from tagwatch.config import Settings
    from tagwatch.sources.x import XClient

    def runs(outcome: str) -> float:
        value = REGISTRY.get_sample_value("tagwatch_source_runs_total", {"source": "x", "outcome": outcome})
        return value or 0.0

    api = FakeXApi([make_post(101, ["metricstag"])], [make_user("u1", "alice", 5)])
    settings = Settings(db_path=str(db_path), tags=("metricstag",), sources=("x",), x_bearer_token="t")
    client = XClient(FAKE_BASE_URL, "t", session=fake_session(api), sleep=RecordedSleep(), clock=lambda: 0.0)
    collected = {"tag": "metricstag", "source": "x"}
    before = runs("success")
    collected_before = REGISTRY.get_sample_value("tagwatch_posts_collected_total", collected) or 0.0
    started = time.time()
    assert Collector(settings, client).run_once().status == "success"
    last = REGISTRY.get_sample_value(
        "tagwatch_last_successful_collection_timestamp_seconds", {"tag": "metricstag", "source": "x"}
    )
    assert started <= last <= time.time()
    assert runs("success") == before + 1
    assert REGISTRY.get_sample_value("tagwatch_posts_collected_total", collected) == collected_before + 1


def _requests_outside(exposition: bytes, route: str) -> float:
    """http_requests_total summed over every route but `route`."""
    text = exposition.decode()
    return metric_total(text, "http_requests_total") - metric_total(text, "http_requests_total", route=route)
