"""metricbeat/metricbeat.yml: documented keys only, the Prometheus targets, and the fields it makes.

Metricbeat scrapes the api and the collector directly with `use_types` (see the file's header
for why not /federate). The typed layout is reproduced from the Beats sources
(x-pack/metricbeat/module/prometheus/collector/data.go): counters become
prometheus.<name>.counter/.rate, gauges prometheus.<name>.value, histograms
prometheus.<name>.histogram, labels prometheus.labels.<label>.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from capture import capture_metric_names

REPO = Path(__file__).resolve().parents[3]
CONFIG = yaml.safe_load((REPO / "metricbeat" / "metricbeat.yml").read_text())
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
PROMETHEUS = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
ENV_EXAMPLE = REPO / ".env.example"

# The contract's metric families (common.md); histograms by their base name.
CONTRACT_COUNTERS = {
    "http_requests_total",
    "tagwatch_posts_collected_total",
    "tagwatch_posts_read_total",
    "tagwatch_source_requests_total",
    "tagwatch_collection_runs_total",
}
CONTRACT_GAUGES = {
    "http_requests_in_progress",
    "tagwatch_source_rate_limit_remaining",
    "tagwatch_last_successful_collection_timestamp_seconds",
    "tagwatch_stored_posts",
    "tagwatch_build_info",
}
CONTRACT_HISTOGRAMS = {
    "http_request_duration_seconds",
    "tagwatch_source_request_duration_seconds",
    "tagwatch_collection_duration_seconds",
}

# metricbeat-metricset-prometheus-collector.md and elasticsearch-output.md.
DOCUMENTED_KEYS = {
    "metricbeat.modules[].module",
    "metricbeat.modules[].metricsets",
    "metricbeat.modules[].period",
    "metricbeat.modules[].hosts",
    "metricbeat.modules[].metrics_path",
    "metricbeat.modules[].use_types",
    "metricbeat.modules[].rate_counters",
    "metricbeat.modules[].metrics_filters.include",
    "metricbeat.modules[].metrics_filters.exclude",
    "metricbeat.modules[].query",
    "metricbeat.modules[].username",
    "metricbeat.modules[].password",
    "output.elasticsearch.hosts",
    "output.elasticsearch.username",
    "output.elasticsearch.password",
}
LIST_VALUED = {"metricsets", "hosts", "include", "exclude"}


def flatten_keys(node, prefix: str = "") -> set[str]:
    """Dotted key paths of a YAML tree; list items add "[]", lists of scalars are one leaf."""
    if isinstance(node, dict):
        keys: set[str] = set()
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            keys |= {path} if key in LIST_VALUED else flatten_keys(value, path)
        return keys
    if isinstance(node, list):
        return set().union(*(flatten_keys(item, prefix + "[]") for item in node))
    return {prefix}


def module() -> dict:
    (prometheus,) = CONFIG["metricbeat.modules"]
    assert prometheus["module"] == "prometheus"
    return prometheus


def env_example() -> dict[str, str]:
    pairs = re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M)
    return dict(pairs)


def compose_interpolate(value: str, env: dict[str, str]) -> str:
    """${VAR}, ${VAR:-default} and ${VAR:?message} as docker compose resolves them."""

    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        return arg if op == ":-" else ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-|:\?)?([^}]*)\}", one, value)


def beats_interpolate(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env[m.group(1)], value)


def resolved_targets() -> list[str]:
    env = env_example()
    container_env = {
        key: compose_interpolate(str(value), env)
        for key, value in COMPOSE["services"]["metricbeat"]["environment"].items()
    }
    return [beats_interpolate(host, container_env) for host in module()["hosts"]]


def kept(family: str) -> bool:
    """metrics_filters: keep when some include regexp matches and no exclude regexp does."""
    filters = module().get("metrics_filters", {})
    include = filters.get("include") or [""]
    exclude = filters.get("exclude") or []
    return any(re.search(r, family) for r in include) and not any(re.search(r, family) for r in exclude)


def families(sample_names: set[str]) -> dict[str, str]:
    """Metric families of /metrics sample names (text format 0.0.4) with their type."""
    histograms = {n.removesuffix("_bucket") for n in sample_names if n.endswith("_bucket")}
    out: dict[str, str] = {h: "histogram" for h in histograms}
    for name in sample_names:
        if any(name == h + suffix for h in histograms for suffix in ("_bucket", "_sum", "_count")):
            continue
        out[name] = "counter" if name.endswith("_total") else "gauge"
    return out


def typed_fields(sample_names: set[str]) -> set[str]:
    """The Elasticsearch fields Metricbeat's typed layout writes for these metrics."""
    rate = bool(module().get("rate_counters"))
    fields = set()
    for family, kind in families(sample_names).items():
        if not kept(family):
            continue
        if kind == "counter":
            fields |= {f"prometheus.{family}.counter"} | ({f"prometheus.{family}.rate"} if rate else set())
        elif kind == "histogram":
            fields.add(f"prometheus.{family}.histogram")
        else:
            fields.add(f"prometheus.{family}.value")
    return fields


def test_metricbeat_yml_uses_only_documented_keys() -> None:
    undocumented = sorted(flatten_keys(CONFIG) - DOCUMENTED_KEYS)
    assert not undocumented, f"keys not in the Metricbeat docs: {undocumented}"


def test_typed_layout_with_counter_rates_is_on() -> None:
    # The dashboard needs .rate for request and post rates and .histogram for p95.
    assert module()["use_types"] is True
    assert module()["rate_counters"] is True
    assert module()["metricsets"] == ["collector"]
    assert module()["metrics_path"] == "/metrics"


def test_scrapes_the_same_targets_as_prometheus() -> None:
    prometheus_targets = [
        target
        for job in PROMETHEUS["scrape_configs"]
        if job["job_name"] in ("tagwatch-api", "tagwatch-collector")
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert resolved_targets() == prometheus_targets == ["api:8000", "collector:9108"]


def test_targets_are_the_ports_the_containers_listen_on() -> None:
    env = env_example()
    api, collector = resolved_targets()
    api_ports = [compose_interpolate(p, env) for p in COMPOSE["services"]["api"]["ports"]]
    assert api_ports[0].endswith(":" + api.split(":")[1])
    collector_expose = [compose_interpolate(p, env) for p in COMPOSE["services"]["collector"]["expose"]]
    assert collector_expose == [collector.split(":")[1]]
    assert "ports" not in COMPOSE["services"]["collector"]


def test_filters_keep_every_contract_metric_and_drop_created() -> None:
    found = families(capture_metric_names())
    for family in CONTRACT_COUNTERS | CONTRACT_GAUGES | CONTRACT_HISTOGRAMS:
        assert family in found, f"{family} not exported on /metrics"
        assert kept(family), f"metrics_filters drop {family}"
    assert not any(kept(f) for f in found if f.endswith("_created"))


def test_typed_fields_cover_the_contract() -> None:
    fields = typed_fields(capture_metric_names())
    for counter in CONTRACT_COUNTERS:
        assert {f"prometheus.{counter}.counter", f"prometheus.{counter}.rate"} <= fields
    for gauge in CONTRACT_GAUGES:
        assert f"prometheus.{gauge}.value" in fields
    for histogram in CONTRACT_HISTOGRAMS:
        assert f"prometheus.{histogram}.histogram" in fields


def test_output_uses_the_metricbeat_writer_from_setup() -> None:
    output = CONFIG["output.elasticsearch"]
    assert output["username"] == "metricbeat_internal"
    assert output["password"] == "${METRICBEAT_INTERNAL_PASSWORD}"
    assert "METRICBEAT_INTERNAL_PASSWORD" in COMPOSE["services"]["metricbeat"]["environment"]
    assert "metricbeat_internal" in (REPO / "setup" / "setup.sh").read_text()
