"""Schemathesis against the app in-process: generated requests for every documented operation on a
seeded database; no answer may be a 5xx or differ from the document (status, content type, headers,
body schema). The admin token is a random secret schemathesis cannot guess, so POST /api/v1/collect is
exercised but only ever answers 401/403 and never spawns a collector."""

from __future__ import annotations

import secrets
from dataclasses import replace

import dataset
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tagwatch import store
from tagwatch.app import create_app
from tagwatch.config import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# Loaded eagerly: schemathesis' lazy `from_fixture` breaks on pytest 9 (it sets Node._nodeid). The document
# needs no database, so the app starts on a placeholder path and the fixture points it at the seeded one.
APP = create_app(Settings(db_path="/nonexistent/tagwatch.db", admin_token=secrets.token_hex(32)))
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def seeded_database(tmp_path_factory):
    """Point the app at a database holding tests/dataset.py."""
    path = tmp_path_factory.mktemp("schemathesis") / "tagwatch.db"
    store.init_db(path)
    conn = store.connect(path)
    dataset.seed(conn)
    conn.close()
    APP.config["SETTINGS"] = replace(APP.config["SETTINGS"], db_path=str(path))


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_document(case):
    case.call_and_validate(checks=CHECKS)
