"""Per-request observability: request id, RED metrics by route template, one access log line."""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import parse_qsl, urlencode

from flask import Flask, Response, g, request

from tagwatch import metrics
from tagwatch.logs import request_id_var

access_log = logging.getLogger("tagwatch.access")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
SECRET_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "key", "password", "secret"})


def register_observability(app: Flask) -> None:
    """Hook request timing, ids, metrics and access logs into the app."""
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_teardown)


def request_id() -> str:
    """The caller's X-Request-ID when sane (length and charset limited), else a new one."""
    given = request.headers.get("X-Request-ID", "")
    return given if REQUEST_ID_RE.match(given) else uuid.uuid4().hex


def route() -> str:
    """The URL rule that matched (bounded cardinality), never the raw path."""
    return request.url_rule.rule if request.url_rule is not None else metrics.UNMATCHED_ROUTE


def _start() -> None:
    g.started = time.perf_counter()
    g.request_id = request_id()
    g.request_id_token = request_id_var.set(g.request_id)
    g.in_progress = True
    metrics.HTTP_IN_PROGRESS.inc()


def _finish(response: Response) -> Response:
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    response.headers["X-Request-ID"] = g.get("request_id") or request_id()
    rule = route()
    metrics.HTTP_REQUESTS.labels(method=request.method, route=rule, status=str(response.status_code)).inc()
    metrics.HTTP_DURATION.labels(method=request.method, route=rule).observe(elapsed)
    level = logging.DEBUG if rule in QUIET_ROUTES else logging.INFO
    if not access_log.isEnabledFor(level):  # skip building the fields of a line nobody writes
        return response
    access_log.log(
        level,
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "http.request.method": request.method,
            "url.path": request.path,
            "http.route": rule,
            "url.query": safe_query(),
            "http.response.status_code": response.status_code,
            "event.duration": int(elapsed * 1e9),
            "client.ip": request.remote_addr,
            "user_agent.original": request.user_agent.string,
            "http.request.id": response.headers["X-Request-ID"],
        },
    )
    return response


def _teardown(_error: BaseException | None) -> None:
    if g.pop("in_progress", False):
        metrics.HTTP_IN_PROGRESS.dec()
    token = g.pop("request_id_token", None)
    if token is not None:
        request_id_var.reset(token)


def safe_query() -> str:
    """The query string with secret-looking parameters masked."""
    pairs = parse_qsl(request.query_string.decode("utf-8", "replace"), keep_blank_values=True)
    return urlencode([(k, "[REDACTED]" if k.lower() in SECRET_PARAMS else v) for k, v in pairs])
