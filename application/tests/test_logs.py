"""JSON logs: ECS fields on every line, access lines with request ids, collector events, no secrets."""

from __future__ import annotations

import io
import json
import logging

from capture import capture_log_lines

from tagwatch.logs import EcsJsonFormatter, configure_logging, dataset_for, event
from tagwatch.timestamps import utc

REQUIRED = (
    "@timestamp",
    "log.level",
    "log.logger",
    "message",
    "service.name",
    "service.version",
    "event.dataset",
)


def test_every_captured_line_has_the_ecs_base_fields():
    lines = capture_log_lines()
    assert len(lines) > 20
    for line in lines:
        for field in REQUIRED:
            assert line.get(field) not in (None, ""), (field, line)
        assert line["service.name"] == "tagwatch"
        assert line["@timestamp"].endswith("Z") and len(line["@timestamp"]) == 24


def test_access_lines_carry_route_status_duration_and_request_id():
    access = [line for line in capture_log_lines() if line["event.dataset"] == "tagwatch.access"]
    by_path = {line["url.path"]: line for line in access}
    top = by_path["/api/v1/users/top"]
    assert top["http.route"] == "/api/v1/users/top" and top["http.response.status_code"] == 200
    assert top["http.request.method"] == "GET" and top["http.request.id"] == "capture-req-1"
    assert isinstance(top["event.duration"], int) and top["event.duration"] > 0
    assert (
        by_path["/nope"]["http.route"] == "unmatched" and by_path["/nope"]["http.response.status_code"] == 404
    )
    assert by_path["/api/v1/tags"]["url.query"] == "x=1"
    assert by_path["/healthz"]["log.level"] == "debug"
    for field in ("client.ip", "user_agent.original"):
        assert field in top


def test_collector_lines_describe_pages_waits_and_failures():
    collector = [line for line in capture_log_lines() if line["event.dataset"] == "tagwatch.collector"]
    actions = {line["event.action"] for line in collector}
    assert {
        "run_started",
        "page_stored",
        "rate_limit_wait",
        "source_retry",
        "run_finished",
        "run_failed",
    } <= actions
    page = next(
        line for line in collector if line["event.action"] == "page_stored" and line["labels.tag"] == "devops"
    )
    assert (
        page["labels.tag"] == "devops"
        and page["tagwatch.posts_read"] == 30
        and page["tagwatch.posts_new"] == 30
    )
    assert page["tagwatch.rate_limit_remaining"] == 449
    wait = next(line for line in collector if line["event.action"] == "rate_limit_wait")
    assert wait["log.level"] == "warning" and wait["tagwatch.wait_seconds"] == 31.0
    failed = next(line for line in collector if line["event.action"] == "run_failed")
    assert failed["log.level"] == "error" and failed["error.type"] == "invalid_token"
    assert "401" in failed["error.message"]
    finished = [line for line in collector if line["event.action"] == "run_finished"]
    assert [f["event.outcome"] for f in finished] == ["success", "failure"]


def test_no_secret_in_any_captured_line():
    text = json.dumps(capture_log_lines())
    assert "capture-token" not in text and "Bearer" not in text


def test_exceptions_become_ecs_error_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EcsJsonFormatter())
    logger = logging.getLogger("tagwatch.test.errors")
    logger.addHandler(handler)
    try:
        raise ValueError("bad thing")
    except ValueError:
        logger.exception("it failed")
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert (line["error.type"], line["error.message"]) == ("ValueError", "bad thing")
    assert "Traceback" in line["error.stack_trace"] and "exc_info" not in line


def test_log_level_is_respected():
    stream = io.StringIO()
    configure_logging("WARNING", stream)
    try:
        logging.getLogger("tagwatch.x").info("hidden")
        logging.getLogger("tagwatch.x").warning("shown")
    finally:
        configure_logging("INFO")
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["shown"]


def test_dataset_and_timestamp_helpers():
    assert dataset_for("tagwatch.collector.source") == "tagwatch.collector"
    assert dataset_for("tagwatch.access") == "tagwatch.access"
    assert dataset_for("gunicorn.error") == "tagwatch.app"
    assert utc(0.5, millis=True) == "1970-01-01T00:00:00.500Z"


def test_event_names_fields_the_ecs_way_and_drops_none():
    extra = event("page_stored", tag="sre", outcome="success", run_id=7, duration_seconds=0.25, skip=None)
    assert extra == {
        "event.action": "page_stored",
        "labels.tag": "sre",
        "event.outcome": "success",
        "tagwatch.run_id": 7,
        "event.duration": 250_000_000,
    }
