"""pytest plugin (loaded from pyproject's addopts): keep measuring coverage in child processes.

coverage.py measures a child Python process when COVERAGE_PROCESS_CONFIG is in its environment.
Tests that start `tagwatch` or gunicorn with an environment of their own would drop it, so Popen
adds it back; without coverage running (`--no-cov`) nothing changes.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

_popen_init = subprocess.Popen.__init__
VARIABLE = "COVERAGE_PROCESS_CONFIG"


def _popen_init_with_coverage(self: subprocess.Popen, *args: Any, **kwargs: Any) -> None:
    env = kwargs.get("env")
    if env is not None and VARIABLE in os.environ and VARIABLE not in env:
        kwargs["env"] = {**env, VARIABLE: os.environ[VARIABLE]}
    _popen_init(self, *args, **kwargs)


def pytest_configure(config: Any) -> None:
    subprocess.Popen.__init__ = _popen_init_with_coverage  # type: ignore[method-assign]


def pytest_unconfigure(config: Any) -> None:
    subprocess.Popen.__init__ = _popen_init  # type: ignore[method-assign]
