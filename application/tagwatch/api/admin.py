"""POST /api/v1/collect: ask the running collector for a run now (operators holding the admin token).

The API starts no process and collects nothing: it records a run request, its only write, and the
collector loop claims it within a tick (store.TICK_SECONDS) and starts the run with trigger `api`. The
answer waits for that, at most CLAIM_WAIT_SECONDS, so its Location is the run itself.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import current_app, request, url_for

from tagwatch import database, queries, store
from tagwatch.api import schemas
from tagwatch.api.contract import Blueprint
from tagwatch.api.envelope import envelope
from tagwatch.api.errors import ApiError
from tagwatch.config import Settings
from tagwatch.database import DB_ERRORS
from tagwatch.logs import event

bp = Blueprint(
    "admin", __name__, url_prefix="/api/v1", description="Operator actions; need the admin bearer token."
)
LOCATION = {"Location": {"description": "/api/v1/runs/{run_id} of the run.", "schema": {"type": "string"}}}
log = logging.getLogger("tagwatch.api")
CLAIM_WAIT_SECONDS = 5.0  # a live collector claims within a tick (1 s); far below gunicorn's 30 s timeout
POLL_SECONDS = 0.05


@bp.post("/collect")
@bp.doc(security=[{"adminToken": []}])
@bp.response(202, schemas.CollectAnswer, headers=LOCATION)
@bp.errors(401, 403, 409, 503)
def collect():
    """202 with the run the collector started for it; 409 if a run is going or requested; 503 if none can."""
    settings: Settings = current_app.config["SETTINGS"]
    authorize(settings.admin_token)
    with writer(settings.db_url) as conn:
        outcome = store.request_run(conn)
        if outcome.kind == "running":
            raise already_running(outcome.run_id)
        if outcome.kind == "requested":
            raise already_requested(outcome.request_id)
        if outcome.kind == "no-collector":
            raise no_collector(
                f"No collector has written a heartbeat in the last {store.COLLECTOR_ALIVE_SECONDS:.0f} s; "
                "start `tagwatch collect` (or `tagwatch run`)."
            )
        log.info(
            "run request %d recorded",
            outcome.request_id,
            extra=event("run_requested", request_id=outcome.request_id),
        )
        run_id = wait_for_run(conn, outcome.request_id)
        status = queries.get_run(conn, run_id)["status"]
    location = url_for("posts.get_run", run_id=run_id)
    body = envelope({"run_id": run_id, "status": status, "location": location})
    return body, 202, {"Location": location}


def wait_for_run(conn: store.Connection, request_id: int) -> int:
    """The id of the run the collector started for the request; 409 or 503 (request withdrawn) otherwise."""
    deadline = time.monotonic() + CLAIM_WAIT_SECONDS
    while True:
        found = store.get_run_request(conn, request_id)
        status = found.status if found else "missing"
        if status == "started" and found.run_id is not None:
            return found.run_id
        if status == "rejected":
            raise already_running(found.run_id)
        if status == "pending":
            running = store.live_run_id(conn)
            if running is not None and store.withdraw_run_request(conn, request_id):
                raise already_running(running)  # a scheduled run began first
            if time.monotonic() >= deadline and store.withdraw_run_request(conn, request_id):
                _log_unserved(request_id, "withdrawn: not claimed in time")
                raise no_collector(f"No collector claimed the run request within {CLAIM_WAIT_SECONDS:.0f} s.")
        elif status != "claimed" or time.monotonic() >= deadline + CLAIM_WAIT_SECONDS:
            _log_unserved(request_id, f"{status}: no run started")
            raise no_collector("The collector claimed the run request but started no run; see its log.")
        time.sleep(POLL_SECONDS)


def authorize(admin_token: str | None) -> None:
    """401 without a bearer token, 403 with a wrong one, 503 when none is configured."""
    if not admin_token:
        raise ApiError(
            503, "Admin endpoint disabled", "Set TAGWATCH_ADMIN_TOKEN to enable it.", kind="admin-disabled"
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(
            401,
            "Unauthorized",
            "Send Authorization: Bearer <TAGWATCH_ADMIN_TOKEN>.",
            kind="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="tagwatch"'},
        )
    if not hmac.compare_digest(given.strip().encode(), admin_token.encode()):
        raise ApiError(403, "Forbidden", "The admin token is not valid.", kind="forbidden")


def already_running(run_id: int) -> ApiError:
    """409 naming the run that holds the lease."""
    return ApiError(
        409,
        "Collection already running",
        f"Run {run_id} is in progress; try again when it has finished.",
        kind="conflict",
        extra={"run_id": run_id},
        headers={"Location": url_for("posts.get_run", run_id=run_id)},
    )


def already_requested(request_id: int) -> ApiError:
    """409 while another request waits for the collector (it starts within about a second)."""
    return ApiError(
        409,
        "Collection already requested",
        f"Run request {request_id} is waiting for the collector; its run starts within seconds.",
        kind="conflict",
        extra={"request_id": request_id},
        headers={"Retry-After": "1"},
    )


def no_collector(detail: str) -> ApiError:
    """503: nothing would serve the request."""
    return ApiError(503, "Collector unavailable", detail, kind="collector-unavailable")


@contextmanager
def writer(url: str) -> Iterator[store.Connection]:
    """A short-lived writable connection for the run request; database faults are a 503, never a 500."""
    path = database.sqlite_path(url)
    if path is not None and not Path(path).is_file():
        detail = "The database has not been created yet (run `tagwatch init-db`)."
        raise ApiError(503, "Database not ready", detail)
    conn = None
    try:
        conn = store.connect(url)
        yield conn
    except DB_ERRORS as exc:
        raise ApiError(503, "Database not ready", f"The database cannot be used right now: {exc}") from exc
    finally:
        if conn is not None:
            conn.close()


def _log_unserved(request_id: int, why: str) -> None:
    log.warning(
        "run request %d %s", request_id, why, extra=event("run_request_unserved", request_id=request_id)
    )
