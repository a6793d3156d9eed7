"""The Postman collection covers the whole API and is a well-formed v2.1 collection.

scripts/newman.sh runs postman_collection.json against a real tagwatch; these tests keep it complete without a
server: every (path, method) of the OpenAPI document has a request (templated paths such as
/api/v1/runs/{run_id} match a `{{runId}}` segment) and nothing else is called, and every request has a
description, `pm.test` assertions and an example response.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

COLLECTION_PATH = Path(__file__).resolve().parents[2] / "postman_collection.json"
SCHEMA_URL = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
FOLDERS = ["Summaries", "Posts", "Collection", "Operations"]
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
VARIABLE = re.compile(r"\{\{(\w+)\}\}")


def load_collection() -> dict[str, Any]:
    """postman_collection.json at the repository root."""
    return json.loads(COLLECTION_PATH.read_text(encoding="utf-8"))


def requests_of(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every request item, folders flattened, in collection order."""
    found = []
    for item in items:
        found.extend(requests_of(item["item"]) if "item" in item else [item])
    return found


REQUESTS = requests_of(load_collection()["item"])


@pytest.fixture(scope="module")
def collection() -> dict[str, Any]:
    """The parsed collection."""
    return load_collection()


def url_path(url: dict[str, Any]) -> str:
    """The request's path, e.g. /api/v1/runs/{{runId}}."""
    return "/" + "/".join(url["path"])


def path_pattern(openapi_path: str) -> re.Pattern[str]:
    """An OpenAPI path as a regex: each {param} matches one segment (a value or a {{variable}})."""
    parts = re.split(r"\{[^/{}]+\}", openapi_path)
    return re.compile("[^/]+".join(re.escape(part) for part in parts))


def script_text(item: dict[str, Any], listen: str = "test") -> str:
    """The item's script for `listen` as one string."""
    return "\n".join(
        line
        for event in item.get("event", [])
        if event["listen"] == listen
        for line in event["script"]["exec"]
    )


def header_value(headers: list[dict[str, str]], name: str) -> str | None:
    """A header's value from a Postman header list (case-insensitive name)."""
    return next((h["value"] for h in headers if h["key"].lower() == name.lower()), None)


def request_id(item: dict[str, Any]) -> str:
    return item["name"]


def test_postman_collection_has_a_request_for_every_openapi_operation(client, collection):
    document = client.get("/api/openapi.json").get_json()
    called = [
        (r["request"]["method"], url_path(r["request"]["url"])) for r in requests_of(collection["item"])
    ]
    missing = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
        if method in HTTP_METHODS
        and not any(m == method.upper() and path_pattern(path).fullmatch(p) for m, p in called)
    ]
    assert missing == [], "operations without a request in postman_collection.json"


def test_postman_collection_calls_only_documented_operations(client, collection):
    document = client.get("/api/openapi.json").get_json()
    documented = [
        (method.upper(), path_pattern(path)) for path, ops in document["paths"].items() for method in ops
    ]
    stray = [
        f"{r['name']}: {r['request']['method']} {url_path(r['request']['url'])}"
        for r in requests_of(collection["item"])
        if not any(
            m == r["request"]["method"] and p.fullmatch(url_path(r["request"]["url"])) for m, p in documented
        )
    ]
    assert stray == []


def test_postman_collection_is_v21_with_the_four_folders(collection):
    assert collection["info"]["schema"] == SCHEMA_URL
    assert collection["info"]["name"]
    assert collection["info"]["description"]
    assert [folder["name"] for folder in collection["item"]] == FOLDERS
    for folder in collection["item"]:
        assert folder["description"].strip(), folder["name"]
        assert folder["item"], folder["name"]
    names = [item["name"] for item in REQUESTS]
    assert len(names) == len(set(names)), "request names are unique"


def test_postman_collection_variables_have_safe_defaults(collection):
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables["baseUrl"] == "http://localhost:8000"
    assert variables["adminToken"] == "", "no token is committed; CI passes --env-var adminToken=…"
    assert "runId" in variables
    used = {
        name
        for item in REQUESTS
        for text in (
            item["request"]["url"]["raw"],
            *(h["value"] for h in item["request"]["header"]),
            *(q["value"] for q in item["request"]["url"].get("query", [])),
        )
        for name in VARIABLE.findall(text)
    }
    assert used <= set(variables), "every {{variable}} a request uses is a collection variable"


@pytest.mark.parametrize("item", REQUESTS, ids=request_id)
def test_postman_request_is_well_formed(item):
    request = item["request"]
    assert request["method"].lower() in HTTP_METHODS
    url = request["url"]
    assert url["host"] == ["{{baseUrl}}"]
    assert all(isinstance(segment, str) for segment in url["path"])
    enabled = [f"{q['key']}={q['value']}" for q in url.get("query", []) if not q.get("disabled")]
    assert url["raw"] == "{{baseUrl}}" + url_path(url) + ("?" + "&".join(enabled) if enabled else "")
    assert all(set(h) >= {"key", "value"} for h in request["header"])
    assert request["description"].strip()


@pytest.mark.parametrize("item", REQUESTS, ids=request_id)
def test_postman_request_asserts_status_content_type_and_body(item):
    tests = script_text(item)
    assert tests.count("pm.test(") >= 3
    assert "pm.response.to.have.status(" in tests or "pm.response.code" in tests
    assert 'headers.get("Content-Type")' in tests
    assert "pm.response.json()" in tests or "pm.response.text()" in tests


@pytest.mark.parametrize("item", REQUESTS, ids=request_id)
def test_postman_request_has_an_example_response_its_tests_accept(item):
    tests = script_text(item)
    assert item["response"], "an example response"
    for example in item["response"]:
        assert example["name"] and example["originalRequest"]["method"] == item["request"]["method"]
        assert str(example["code"]) in tests, f"the tests accept status {example['code']}"
        media = header_value(example["header"], "Content-Type")
        assert media and media.split(";")[0] in tests, "the tests check the example's Content-Type"
        assert example["body"].strip()
        if "json" in media:
            json.loads(example["body"])


def test_postman_collection_chains_the_admin_run_and_the_cursor():
    by_name = {item["name"]: item for item in REQUESTS}
    collect = next(
        i for i in REQUESTS if i["request"]["method"] == "POST" and not i["name"].startswith("Error")
    )
    assert header_value(collect["request"]["header"], "Authorization") == "Bearer {{adminToken}}"
    assert 'pm.collectionVariables.set("runId"' in script_text(collect)
    assert {202, 409} <= {int(code) for code in re.findall(r"\b(20\d|409)\b", script_text(collect))}
    assert any(url_path(i["request"]["url"]) == "/api/v1/runs/{{runId}}" for i in REQUESTS)
    assert 'pm.collectionVariables.set("nextCursor"' in script_text(by_name["List posts"])
    follow = [i for i in REQUESTS if "{{nextCursor}}" in i["request"]["url"]["raw"]]
    assert [url_path(i["request"]["url"]) for i in follow] == ["/api/v1/posts"]


@pytest.mark.parametrize(("status", "param"), [(400, "tag"), (400, "tz"), (403, None)])
def test_postman_collection_shows_the_error_examples(status, param):
    examples = [example for item in REQUESTS for example in item["response"] if example["code"] == status]
    bodies = [json.loads(example["body"]) for example in examples]
    if param:
        bodies = [b for b in bodies if param in [p["name"] for p in b.get("invalid_params", [])]]
    assert bodies, f"an example answering {status}" + (f" naming {param}" if param else "")
