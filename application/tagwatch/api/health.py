"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

from flask import Response

from tagwatch import metrics, queries
from tagwatch.api import schemas
from tagwatch.api.contract import Blueprint
from tagwatch.api.db import query
from tagwatch.api.errors import ApiError

bp = Blueprint("health", __name__, description="Probes and metrics.")


@bp.get("/healthz")
@bp.response(200, schemas.Health)
def healthz():
    """The process answers; touches nothing else."""
    return {"status": "ok"}


@bp.get("/readyz")
@bp.response(200, schemas.Readiness)
@bp.errors(503)
def readyz():
    """Ready when the database answers and its schema is current; 503 with the reason otherwise."""
    try:
        facts = query(queries.readiness)
    except ApiError as exc:  # missing, replaced by garbage, locked: db.query maps every fault to a 503
        raise ApiError(503, "Not ready", exc.detail, kind="not-ready") from exc
    if facts["schema_version"] != facts["expected_schema_version"]:
        raise ApiError(
            503,
            "Not ready",
            f"Database schema is at version {facts['schema_version']}, expected "
            f"{facts['expected_schema_version']} (run `tagwatch init-db`).",
            kind="not-ready",
            extra=facts,
        )
    return {"status": "ready", **facts}


@bp.get("/metrics")
@bp.response(200, {"type": "string"}, content_type="text/plain")
def prometheus_metrics():
    """Prometheus exposition for this process, or all workers under gunicorn."""
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
