"""Fixtures: each overlay rendered once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from manifests import OVERLAYS, render


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    """Each overlay's name in turn."""
    return request.param


@pytest.fixture
def objects(overlay: str) -> list[dict]:
    """The objects the overlay renders to."""
    return render(overlay)
