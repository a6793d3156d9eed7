"""POST /api/v1/collect: start a collection run now, for operators holding the admin token.

The run happens in a separate `tagwatch collect --once` process (the collector is the only writer),
so no gunicorn worker is blocked for its length; the lease in the database keeps runs exclusive.
"""

from __future__ import annotations

import hmac
import json
import os
import select
import subprocess
import sys
import threading

from flask import current_app, request, url_for

from tagwatch import queries
from tagwatch.api import schemas
from tagwatch.api.contract import Blueprint
from tagwatch.api.db import query
from tagwatch.api.envelope import envelope
from tagwatch.api.errors import ApiError
from tagwatch.config import Settings, settings_env

bp = Blueprint(
    "admin", __name__, url_prefix="/api/v1", description="Operator actions; need the admin bearer token."
)
LOCATION = {"Location": {"description": "/api/v1/runs/{run_id} of the run.", "schema": {"type": "string"}}}
ANNOUNCE_TIMEOUT_SECONDS = 30


@bp.post("/collect")
@bp.doc(security=[{"adminToken": []}])
@bp.response(202, schemas.CollectAnswer, headers=LOCATION)
@bp.errors(401, 403, 409, 503)
def collect():
    """Start a run; 202 with its id, or 409 naming the run already going."""
    settings: Settings = current_app.config["SETTINGS"]
    authorize(settings.admin_token)
    running = query(queries.active_run)
    if running is not None:
        raise already_running(running)
    run_id, started = start_collection(settings)
    if not started:
        raise already_running(run_id)
    location = url_for("posts.get_run", run_id=run_id)
    body = envelope({"run_id": run_id, "status": "running", "location": location})
    return body, 202, {"Location": location}


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


def start_collection(settings: Settings) -> tuple[int, bool]:
    """Spawn `tagwatch collect --once` and wait only until it says which run it started (or found)."""
    read_fd, write_fd = os.pipe()
    command = [sys.executable, "-m", "tagwatch", "collect", "--once", "--trigger", "api"]
    try:
        child = subprocess.Popen(
            [*command, "--announce-fd", str(write_fd)],
            pass_fds=(write_fd,),
            env={**os.environ, **settings_env(settings)},
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        os.close(write_fd)
    threading.Thread(target=child.wait, name="collect-reaper", daemon=True).start()
    with os.fdopen(read_fd) as pipe:
        ready, _, _ = select.select([pipe], [], [], ANNOUNCE_TIMEOUT_SECONDS)
        line = pipe.readline() if ready else ""
    try:
        announced = json.loads(line)
        return int(announced["run_id"]), bool(announced["started"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(
            503, "Collector did not start", "The collection process exited before starting a run; see logs."
        ) from None
