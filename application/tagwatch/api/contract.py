"""The API contract, declared once with flask-smorest: views take their query through the schemas in
tagwatch.api.schemas, and GET /api/openapi.json (OpenAPI 3.1) is generated from the same declarations.

This module adapts the library to tagwatch's conventions: a bad parameter is the same 400 problem+json
as always (the first failing parameter, in the order the schema declares them), errors are documented
as problem+json, query parameters are optional with empty values counting as absent, and the schemas
that depend on configuration (the tracked tags) are filled in per app.
"""

from __future__ import annotations

import http
from typing import Any

import flask_smorest
from flask import Flask
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import MultiDict

from tagwatch import __version__
from tagwatch.api import params
from tagwatch.api.errors import PROBLEM_JSON, PROBLEM_TYPE_BASE, BadParam

DESCRIPTION = f"""Summaries of the posts tagwatch collects for its tracked hashtags.

Every JSON answer is `{{"data": …, "meta": {{…}}}}`; `meta` echoes the applied filters and `generated_at`
(when the data was read). Every 4xx/5xx answer is `{PROBLEM_JSON}` (RFC 9457) whose `type` is
`{PROBLEM_TYPE_BASE}<kind>`; a 400 names the parameter in `invalid_params`. Query parameters are optional
and an empty value counts as absent; unknown ones are ignored. Any other path answers 404 and any other
method 405 (with `Allow`), both as problem+json. Any endpoint reading the database answers 503 while it
cannot be read."""
STRING = {"type": "string"}
COUNT = {"type": "integer", "minimum": 0}
# status → (description, headers): the error answers operations refer to by status name
ERRORS: dict[int, tuple[str, dict[str, str]]] = {
    400: ("A query parameter is malformed or out of range (invalid-parameter); invalid_params names it.", {}),
    401: ("No bearer token (unauthorized).", {"WWW-Authenticate": 'Bearer realm="tagwatch".'}),
    403: ("The bearer token is wrong (forbidden).", {}),
    404: ("No such resource or path (not-found).", {}),
    409: (
        "A collection run is already going or requested (conflict); run_id and Location name it.",
        {"Location": "/api/v1/runs/{run_id} of that run."},
    ),
    503: (
        "The database cannot be read (database-not-ready, not-ready), the admin endpoint is disabled"
        " (admin-disabled) or no collector can take the run.",
        {},
    ),
}


class Parser(FlaskParser):
    """webargs for tagwatch: empty query values are absent; a failure is a BadParam (400 problem+json)."""

    DEFAULT_VALIDATION_STATUS = 400

    def load_querystring(self, req, schema):
        """The query string without empty values (`?tag=` means no tag)."""
        args = MultiDict([(k, v) for k, v in req.args.items(multi=True) if v != ""])
        return self._makeproxy(args, schema)

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        """The first failing parameter in declaration order (the order tagwatch always reported)."""
        messages = error.messages.get("query", error.messages)
        name = next((n for n in schema.fields if n in messages), None) or next(iter(messages))
        reasons = messages[name]
        raise BadParam(name, reasons[0] if isinstance(reasons, list) else str(reasons))


class Blueprint(flask_smorest.Blueprint):
    """A smorest blueprint whose parser is tagwatch's."""

    ARGUMENTS_PARSER = Parser()

    def query(self, schema) -> Any:
        """Load the query string through `schema`; the view receives the values as keyword arguments."""
        instance = schema() if isinstance(schema, type) else schema  # one instance, not one per request
        return self.arguments(instance, location="query", as_kwargs=True)

    def errors(self, *statuses: int) -> Any:
        """Document the problem+json answers an operation can give besides the default."""

        def decorate(view):
            for status in statuses:
                view = self.alt_response(status, response=http.HTTPStatus(status).name)(view)
            return view

        return decorate


class Api(flask_smorest.Api):
    """flask-smorest's Api with problem+json error responses."""

    def _register_responses(self) -> None:
        self.spec.components.schema("Problem", problem_schema())
        for status, (description, headers) in ERRORS.items():
            self.spec.components.response(
                http.HTTPStatus(status).name, problem_response(description, headers)
            )
        self.spec.components.response(
            "DEFAULT_ERROR",
            problem_response("Any other error: 404 for an unknown path, 405 (with Allow), 500.", {}),
        )


def problem_response(description: str, headers: dict[str, str]) -> dict[str, Any]:
    """A problem+json response object."""
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = {k: {"description": v, "schema": STRING} for k, v in headers.items()}
    return response


def problem_schema() -> dict[str, Any]:
    """RFC 9457 problem details with tagwatch's extension members."""
    nullable_count = {"type": ["integer", "null"], "minimum": 0}
    return {
        "type": "object",
        "properties": {
            "type": {"type": "string", "format": "uri", "description": f"{PROBLEM_TYPE_BASE}<kind>"},
            "title": STRING,
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": STRING,
            "invalid_params": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"name": STRING, "reason": STRING},
                    "required": ["name", "reason"],
                    "additionalProperties": False,
                },
            },
            "run_id": COUNT,
            "schema_version": COUNT,
            "expected_schema_version": COUNT,
            "last_successful_run_at": {"type": ["string", "null"], "format": "date-time"},
            "last_successful_run_age_seconds": nullable_count,
        },
        "required": ["type", "title", "status", "detail"],
        "additionalProperties": False,
    }


def param_schema(converter, field, ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A tagwatch parameter's schema is exactly what its field says it accepts."""
    if isinstance(field, params.Param):
        description = ret.get("description")
        ret.clear()
        return {**field.json_schema(), **({"description": description} if description else {})}
    if field.metadata.get("tag_name"):
        ref = {"$ref": "#/components/schemas/TagName"}
        ret.pop("type", None)
        return {"anyOf": [ref, {"type": "null"}]} if field.allow_none else ref
    return {}


def param_extras(converter, field, ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Query parameters are optional, may be sent empty (= absent), and show their example."""
    extras: dict[str, Any] = {"required": False, "allowEmptyValue": True}
    if field.metadata.get("example") is not None:
        extras["example"] = field.metadata["example"]
    return extras


def register(app: Flask, blueprints: list[flask_smorest.Blueprint]) -> Api:
    """Generate the document for this app's configuration and mount the blueprints."""
    settings = app.config["SETTINGS"]
    app.config.update(
        API_TITLE="tagwatch",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"info": {"description": DESCRIPTION}},
    )
    api = Api(app)
    api.ma_plugin.converter.add_attribute_function(param_schema)
    api.ma_plugin.converter.add_parameter_attribute_function(param_extras)
    api.spec.components.schema(
        "TagName",
        {"type": "string", "enum": list(settings.tags), "description": "A tracked tag, lower case."},
    )
    api.spec.components.schema(
        "TimeZone", {"type": "string", "enum": list(params.time_zones()), "description": "An IANA time zone."}
    )
    api.spec.components.security_scheme(
        "adminToken",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "TAGWATCH_ADMIN_TOKEN; unset, the endpoint answers 503.",
        },
    )
    with app.app_context():
        for blueprint in blueprints:
            api.register_blueprint(blueprint)
    document_plain_routes(app, api)
    return api


def document_plain_routes(app: Flask, api: Api) -> None:
    """The routes outside the blueprints: this document and the page (registered before)."""

    def plain(summary: str, media: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "get": {
                "summary": summary,
                "tags": ["operations"],
                "responses": {
                    "200": {"description": summary, "content": {media: {"schema": schema}}},
                    "default": {"$ref": "#/components/responses/DEFAULT_ERROR"},
                },
            }
        }

    document = {"type": "object", "required": ["openapi", "info", "paths"]}
    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    page = plain("The page for people: the summaries as charts.", "text/html", STRING)
    api.spec.path(
        rule=rules["/api/openapi.json"], operations=plain("This document.", "application/json", document)
    )
    api.spec.path(rule=rules["/"], operations=page)
