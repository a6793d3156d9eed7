"""Problem details (RFC 9457) for every 4xx/5xx; bad input never becomes a 500."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

log = logging.getLogger("tagwatch.api")
PROBLEM_TYPE_BASE = "https://github.com/tagwatch/tagwatch/blob/main/docs/api.md#"
PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    """An error a view raises on purpose; the handler renders it as problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str | None = None,
        invalid_params: list[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.invalid_params = invalid_params
        self.extra = extra or {}
        self.headers = headers or {}


class BadParam(ApiError):
    """A query parameter is malformed or out of range; names the parameter."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(
            400,
            "Invalid parameter",
            f"{name}: {reason}",
            kind="invalid-parameter",
            invalid_params=[{"name": name, "reason": reason}],
        )


def problem(status: int, title: str, detail: str, kind: str, extra: dict[str, Any] | None = None) -> Response:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update(extra or {})
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)


def register(app: Flask) -> None:
    """Install handlers for ApiError, HTTP errors (404, 405, …) and anything unexpected."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        extra = dict(error.extra)
        if error.invalid_params:
            extra["invalid_params"] = error.invalid_params
        response = problem(error.status, error.title, error.detail, error.kind, extra)
        response.headers.update(error.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        kind = (error.name or "error").lower().replace(" ", "-")
        response = problem(status, error.name or "Error", error.description or "", kind)
        if status == 405 and error.get_response().headers.get("Allow"):
            response.headers["Allow"] = error.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error while answering a request")
        return problem(500, "Internal Server Error", "The server failed to answer; see its logs.", "internal")
