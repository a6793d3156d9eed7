"""Whole processes: `tagwatch run` logs, and a real Prometheus scraping gunicorn and the collector."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

import pytest
from fakes import FakeXApi, make_post, make_user, serve_fake_x
from processes import free_port, get, gunicorn_args, running, tagwatch_env, wait_for

X_TOKEN = "x-bearer-SECRET-0f9e8d7c6b5a"
ADMIN_TOKEN = "admin-SECRET-1a2b3c4d5e6f"
REQUIRED = ("@timestamp", "log.level", "message", "service.name")


def fake_x() -> FakeXApi:
    return FakeXApi(
        [make_post(900 + i, ["devops"], author="u1") for i in range(15)], [make_user("u1", "alice", 3)]
    )


@pytest.mark.slow
def test_run_session_logs_are_json_with_ecs_fields_and_no_secrets(tmp_path):
    base_x, stop_x = serve_fake_x(fake_x())
    port, metrics_port = free_port(), free_port()
    env = tagwatch_env(
        tmp_path / "run.db",
        TAGWATCH_SOURCE="x",
        X_BEARER_TOKEN=X_TOKEN,
        X_API_BASE_URL=base_x,
        TAGWATCH_ADMIN_TOKEN=ADMIN_TOKEN,
        PORT=str(port),
        TAGWATCH_METRICS_PORT=str(metrics_port),
        LOG_LEVEL="DEBUG",
    )
    log_path = tmp_path / "run.log"
    try:
        with running([sys.executable, "-m", "tagwatch", "run"], env, log_path):
            base = f"http://127.0.0.1:{port}"
            wait_for(base + "/readyz", timeout=40)
            for path in (
                "/api/v1/users/top",
                "/api/v1/tags?token=abc",
                "/api/v1/posts/by-hour?tz=bad",
                "/nope",
            ):
                get(base + path)
            assert get(base + "/api/v1/collect", {"Authorization": "Bearer wrong"}, "POST")[0] == 403
            status, _ = get(base + "/api/v1/collect", {"Authorization": f"Bearer {ADMIN_TOKEN}"}, "POST")
            assert status in (202, 409)
            time.sleep(2)
    finally:
        stop_x()
    text = log_path.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) > 15
    loggers = set()
    for line in lines:
        record = json.loads(line)
        assert all(record.get(field) for field in REQUIRED), line
        loggers.add(record["log.logger"])
    assert {"gunicorn.error", "tagwatch.access", "tagwatch.collector"} <= loggers
    for secret in (X_TOKEN, ADMIN_TOKEN, "Bearer wrong", "token=abc"):
        assert secret not in text


def prometheus_query(base: str, query: str) -> list[dict]:
    status, body = get(f"{base}/api/v1/query?query={urllib.parse.quote(query)}")
    assert status == 200, body
    return json.loads(body)["data"]["result"]


@pytest.mark.slow
def test_real_prometheus_scrapes_api_and_collector_and_counts_every_request(tmp_path):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus is not installed (apt-get install -y prometheus); CI must have it")
        pytest.skip("prometheus binary not installed")
    api_port, collector_port, prom_port = free_port(), free_port(), free_port()
    db = tmp_path / "p.db"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: tagwatch-api\n    static_configs: [{{targets: ['127.0.0.1:{api_port}']}}]\n"
        "  - job_name: tagwatch-collector\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{collector_port}']}}]\n"
    )
    api_env = tagwatch_env(db, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "mp"))
    collector_env = tagwatch_env(
        db, TAGWATCH_METRICS_PORT=str(collector_port), TAGWATCH_COLLECT_INTERVAL="3600"
    )
    prom_args = [
        prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]  # fmt: skip
    with (
        running([sys.executable, "-m", "tagwatch", "collect"], collector_env, tmp_path / "collector.log"),
        running(gunicorn_args(api_port, workers=2), api_env, tmp_path / "api.log"),
        running(prom_args, {"PATH": os.environ["PATH"]}, tmp_path / "prometheus.log"),
    ):
        api = f"http://127.0.0.1:{api_port}"
        prom = f"http://127.0.0.1:{prom_port}"
        wait_for(api + "/healthz")  # answered once with 200: one counted request
        wait_for(prom + "/-/ready")
        sent = 1
        for _ in range(10):
            for path in (
                "/api/v1/tags",
                "/api/v1/users/top",
                "/api/v1/posts/by-hour-of-day",
                "/nope",
                "/healthz",
            ):
                get(api + path)
                sent += 1
        query = 'sum(http_requests_total{job="tagwatch-api", route!="/metrics"})'
        deadline = time.monotonic() + 40
        seen = up = None
        while time.monotonic() < deadline:
            result = prometheus_query(prom, query)
            seen = float(result[0]["value"][1]) if result else None
            # each target's first scrape comes at its own offset within the interval: wait for both
            up = {r["metric"]["job"]: r["value"][1] for r in prometheus_query(prom, "up")}
            if seen == sent and len(up) == 2:
                break
            time.sleep(0.5)
        assert seen == sent
        assert up == {"tagwatch-api": "1", "tagwatch-collector": "1"}
        collector_series = prometheus_query(prom, 'tagwatch_build_info{job="tagwatch-collector"}')
        assert collector_series and collector_series[0]["value"][1] == "1"


@pytest.mark.slow
def test_collect_loop_stops_promptly_on_sigterm(tmp_path):
    env = tagwatch_env(tmp_path / "c.db", TAGWATCH_COLLECT_INTERVAL="3600", TAGWATCH_METRICS_PORT="0")
    log_path = tmp_path / "collect.log"
    with running([sys.executable, "-m", "tagwatch", "collect"], env, log_path) as process:
        deadline = time.monotonic() + 60
        while '"run_finished"' not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert '"run_finished"' in log_path.read_text()
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(10) == 0
        except subprocess.TimeoutExpired:
            pytest.fail("the collector did not stop within 10 s of SIGTERM")
    assert json.loads(log_path.read_text().splitlines()[-1])["message"] == "collector stopped"
