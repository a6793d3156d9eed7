"""The contract declared with flask-smorest answers bad input exactly as the hand-written parsing did:
tests/contract/error_bodies.json holds the bodies captured before the change (byte for byte)."""

from __future__ import annotations

import json
from pathlib import Path

import dataset
import pytest

from tagwatch import store
from tagwatch.app import create_app
from tagwatch.config import Settings

CAPTURED = json.loads((Path(__file__).parent / "contract" / "error_bodies.json").read_text())


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The app on tests/dataset.py, as when the bodies were captured."""
    path = tmp_path_factory.mktemp("contract") / "tagwatch.db"
    store.init_db(path)
    conn = store.connect(path)
    dataset.seed(conn)
    conn.close()
    return create_app(Settings(db_path=str(path), admin_token="test-admin-token")).test_client()


@pytest.mark.parametrize("case", CAPTURED, ids=lambda c: f"{c['method']} {c['url']}")
def test_error_body_is_byte_for_byte_what_it_was(client, case):
    response = client.open(case["url"], method=case["method"], headers=case.get("headers", {}))
    assert (response.status_code, response.content_type) == (case["status"], case["content_type"])
    assert response.get_data(as_text=True) == case["body"]
