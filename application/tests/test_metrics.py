"""Prometheus metrics: names, pre-created series, and exact counts under gunicorn with several workers."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from processes import free_port, get, gunicorn_args, metric_total, running, tagwatch_env, wait_for

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
    metrics.precreate_collector(("devops", "opentracing"))  # what `tagwatch collect` does at start
    response = client.get("/metrics")
    assert response.status_code == 200
    # 0.0.4, the text format every scraper parses (Metricbeat < 8.19.6 drops 1.0.0, beats#47272).
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.get_data(as_text=True)
    for tag in ("devops", "opentracing"):
        assert f'tagwatch_posts_collected_total{{source="sample",tag="{tag}"}} 0.0' in text
        assert f'tagwatch_last_successful_collection_timestamp_seconds{{tag="{tag}"}}' in text
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
        wait_for(base + "/healthz")
        _, before = get(base + "/metrics")
        sent = 0
        for _ in range(12):
            for path in ROUTES:
                get(base + path)
                sent += 1
        _, after = get(base + "/metrics")
    counted = metric_total(after.decode(), "http_requests_total") - metric_total(
        before.decode(), "http_requests_total"
    )
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
