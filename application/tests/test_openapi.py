"""The OpenAPI document is valid and covers the whole app.

Parameters and response shapes are declared once (tagwatch.api.schemas) and the document is generated
from them by flask-smorest, so a view cannot read a parameter the document lacks: views receive exactly
the declared parameters. What can still drift is checked here: routes outside the blueprints, the
configuration-dependent schemas (tags, time zones) and the problem types docs/api.md explains.
schemathesis (tests/test_schemathesis.py) checks behaviour against the document in both directions.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import dataset
import pytest
from openapi_spec_validator import validate

import tagwatch.api
from tagwatch.api.errors import PROBLEM_TYPE_BASE

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # Flask adds these to every rule
API_DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BEARER = {"Authorization": "Bearer test-admin-token"}


@pytest.fixture
def document(client) -> dict[str, Any]:
    """The served document."""
    return client.get("/api/openapi.json").get_json()


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """{(path, METHOD): operation} of the document."""
    return {
        (path, method.upper()): op
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }


def openapi_path(rule: str) -> str:
    """A Flask rule in OpenAPI form: /runs/<int:run_id> → /runs/{run_id}."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_document_is_valid_openapi_31(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_document_paths_and_methods_equal_the_url_map(app, document):
    routed = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[-1] == "static":
            continue
        for method in rule.methods - IGNORED_METHODS:
            routed[(openapi_path(rule.rule), method)] = sorted(rule.arguments)
    documented = operations(document)
    assert sorted(documented) == sorted(routed)
    for key, op in documented.items():
        declared = [*document["paths"][key[0]].get("parameters", []), *op.get("parameters", [])]
        path_params = sorted(p["name"] for p in declared if p["in"] == "path")
        assert path_params == routed[key], key


def test_every_query_parameter_is_optional_may_be_empty_and_has_an_example(document):
    for key, op in operations(document).items():
        for param in op.get("parameters", []):
            if param["in"] == "query":
                assert (param["required"], param["allowEmptyValue"]) == (False, True), (key, param["name"])
                assert "example" in param or param["name"] == "cursor", (key, param["name"])


def test_documented_examples_are_accepted(client, conn, document):
    dataset.seed(conn)
    for (path, method), op in operations(document).items():
        query = {p["name"]: p["example"] for p in op.get("parameters", []) if "example" in p}
        if method == "GET" and query:
            response = client.get(path, query_string=query)
            assert response.status_code == 200, (path, query, response.get_json())


@pytest.mark.parametrize("given", ["devops", "#devops", "DevOps", "#OBSERVABILITY", "sre"])
def test_tag_pattern_accepts_what_the_api_accepts(client, document, given):
    pattern = operations(document)[("/api/v1/users/top", "GET")]["parameters"][0]["schema"]["pattern"]
    assert re.search(pattern, given)
    assert client.get("/api/v1/users/top", query_string={"tag": given}).status_code == 200


@pytest.mark.parametrize("given", ["dev ops", "devopsx", "#", "xdevops", "devops,sre"])
def test_tag_pattern_rejects_what_the_api_rejects(client, document, given):
    pattern = operations(document)[("/api/v1/users/top", "GET")]["parameters"][0]["schema"]["pattern"]
    assert not re.search(pattern, given)
    assert client.get("/api/v1/users/top", query_string={"tag": given}).status_code == 400


def test_tag_values_follow_the_configured_tags(db_path):
    from tagwatch.app import create_app
    from tagwatch.config import Settings

    client = create_app(Settings(db_path=str(db_path), tags=("python", "rust_lang"))).test_client()
    document = client.get("/api/openapi.json").get_json()
    assert document["components"]["schemas"]["TagName"]["enum"] == ["python", "rust_lang"]
    default = create_app(Settings(db_path=str(db_path))).test_client().get("/api/openapi.json").get_json()
    assert "rust_lang" not in json.dumps(default)
    pattern = operations(document)[("/api/v1/posts", "GET")]["parameters"][0]["schema"]["pattern"]
    assert re.search(pattern, "#Rust_Lang") and not re.search(pattern, "devops")


def test_time_zone_enum_is_what_tz_accepts(client, document):
    zones = document["components"]["schemas"]["TimeZone"]["enum"]
    for zone in ("UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York", zones[0], zones[-1]):
        assert zone in zones
        assert client.get("/api/v1/posts/by-hour-of-day", query_string={"tz": zone}).status_code == 200


def test_error_responses_are_problem_json(document):
    for key, op in operations(document).items():
        assert "default" in op["responses"], key  # 404, 405, 500 can happen anywhere
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")) or status == "default":
                name = response["$ref"].rsplit("/", 1)[-1]
                assert "application/problem+json" in document["components"]["responses"][name]["content"]


def problem_kinds() -> set[str]:
    """Every problem `type` kind the API can answer with, read from tagwatch/api/*.py.

    `kind="…"` keywords, ApiError titles without a kind (the kind is derived from the title), the
    literal kind passed to errors.problem(), and the werkzeug errors the app raises itself (404, 405).
    """
    kinds = {"not-found", "method-not-allowed"}
    for source in Path(tagwatch.api.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if isinstance(keywords.get("kind"), ast.Constant):
                kinds.add(keywords["kind"].value)
            elif name == "ApiError" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                kinds.add(node.args[1].value.lower().replace(" ", "-"))
            elif name == "problem" and len(node.args) > 3 and isinstance(node.args[3], ast.Constant):
                kinds.add(node.args[3].value)
    return kinds


def test_docs_explain_every_problem_type():
    assert PROBLEM_TYPE_BASE.endswith("docs/api.md#")
    headings = set(re.findall(r"^### (\S+)$", API_DOCS.read_text(), re.MULTILINE))
    kinds = problem_kinds()
    assert {"invalid-parameter", "not-ready", "database-not-ready", "internal", "conflict"} <= kinds
    assert kinds <= headings, f"docs/api.md lacks: {sorted(kinds - headings)}"
