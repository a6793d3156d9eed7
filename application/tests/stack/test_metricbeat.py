"""metricbeat/metricbeat.yml: documented keys only, the containers it scrapes, and the fields it makes.

Metricbeat scrapes the app containers of either profile directly, found by Docker autodiscover
on their `tagwatch_metrics_port` label, with `use_types` (see the file's header for why not
/federate). The typed layout is reproduced from the Beats sources
(x-pack/metricbeat/module/prometheus/collector/data.go): counters become
prometheus.<name>.counter/.rate, gauges prometheus.<name>.value, histograms
prometheus.<name>.histogram, labels prometheus.labels.<label>.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from capture import capture_metric_names
from compose_model import prometheus_targets, rendered_configs

REPO = Path(__file__).resolve().parents[3]
CONFIG = yaml.safe_load((REPO / "metricbeat" / "metricbeat.yml").read_text())

# The contract's metric families (common.md); histograms by their base name.
CONTRACT_COUNTERS = {
    "http_requests_total",
    "tagwatch_posts_collected_total",
    "tagwatch_posts_read_total",
    "tagwatch_source_requests_total",
    "tagwatch_collection_runs_total",
    "tagwatch_source_runs_total",
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

# configuration-autodiscover.md (Docker provider, templates, conditions),
# metricbeat-metricset-prometheus-collector.md and elasticsearch-output.md.
TEMPLATE = "metricbeat.autodiscover.providers[].templates[]"
MODULE = f"{TEMPLATE}.config[]"
DOCUMENTED_KEYS = {
    "metricbeat.autodiscover.providers[].type",
    f"{TEMPLATE}.condition.has_fields",
    f"{MODULE}.module",
    f"{MODULE}.metricsets",
    f"{MODULE}.period",
    f"{MODULE}.hosts",
    f"{MODULE}.metrics_path",
    f"{MODULE}.use_types",
    f"{MODULE}.rate_counters",
    f"{MODULE}.metrics_filters.include",
    f"{MODULE}.metrics_filters.exclude",
    "output.elasticsearch.hosts",
    "output.elasticsearch.username",
    "output.elasticsearch.password",
}
LIST_VALUED = {"metricsets", "hosts", "include", "exclude", "has_fields"}
LABEL = "tagwatch_metrics_port"


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


def template() -> dict:
    (provider,) = CONFIG["metricbeat.autodiscover"]["providers"]
    assert provider["type"] == "docker"
    (only,) = provider["templates"]
    return only


def module() -> dict:
    (prometheus,) = template()["config"]
    assert prometheus["module"] == "prometheus"
    return prometheus


def autodiscover_event(service: dict, host: str) -> dict:
    """The Docker provider's event for a container of this compose service (providers/docker/docker.go)."""
    labels = {key: str(value) for key, value in service.get("labels", {}).items()}
    return {"host": host, "docker": {"container": {"labels": labels}}}


def lookup(event: dict, dotted: str):
    node = event
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def matches(event: dict) -> bool:
    """The template's condition (has_fields: every field present) for this event."""
    return all(lookup(event, field) is not None for field in template()["condition"]["has_fields"])


def scrape_target(event: dict) -> str:
    """The module's single host with the event's ${data.*} variables substituted."""
    (host,) = module()["hosts"]
    return re.sub(r"\$\{data\.([\w.]+)\}", lambda m: str(lookup(event, m.group(1))), host)


def metricbeat_targets(model: dict) -> dict[str, str]:
    """Compose service -> the host:port Metricbeat scrapes in its container (service name as host)."""
    targets = {}
    for name, service in model["services"].items():
        event = autodiscover_event(service, host=name)
        if matches(event):
            targets[name] = scrape_target(event)
    return targets


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


def test_scrapes_the_same_processes_as_prometheus(resolved: dict) -> None:
    # Other port values are checked in test_compose.py (test_scrape_targets_follow_the_port_variables).
    jobs = prometheus_targets(resolved)
    assert sorted(metricbeat_targets(resolved).values()) == jobs["tagwatch-api"] + jobs["tagwatch-collector"]
    assert metricbeat_targets(resolved) == {"api": "api:8000", "collector": "collector:9108"}


def test_scrapes_every_replica_of_the_postgres_profile_on_its_port(resolved_postgres: dict) -> None:
    # One scrape per container: each api-pg replica is a container of its own carrying the label.
    assert metricbeat_targets(resolved_postgres) == {
        "api-pg": "api-pg:8000",
        "collector-pg": "collector-pg:9108",
    }
    config = yaml.safe_load(
        rendered_configs(resolved_postgres, "prometheus-pg")["/etc/prometheus/prometheus.yml"]
    )
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (dns,) = jobs["tagwatch-api"]["dns_sd_configs"]
    assert f"{dns['names'][0]}:{dns['port']}" == "api-pg:8000"
    assert jobs["tagwatch-collector"]["static_configs"][0]["targets"] == ["collector-pg:9108"]


def test_a_container_without_the_label_is_not_scraped() -> None:
    assert not matches(autodiscover_event({"labels": {"tagwatch_log_format": "ecs-json"}}, host="x"))
    assert matches(autodiscover_event({"labels": {LABEL: "8000"}}, host="x"))
    assert (
        scrape_target(autodiscover_event({"labels": {LABEL: "8123"}}, host="172.18.0.5")) == "172.18.0.5:8123"
    )


def test_metricbeat_reads_the_docker_socket_read_only(resolved: dict) -> None:
    service = resolved["services"]["metricbeat"]
    mounts = {v["target"]: v for v in service["volumes"]}
    assert mounts["/var/run/docker.sock"]["read_only"] is True
    assert service["user"] == "root"


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


def test_output_writes_as_the_metricbeat_writer_unless_setup_says_otherwise() -> None:
    # The running Beat gets no ES_USERNAME (test_compose.py), so it is the writer created by setup.
    output = CONFIG["output.elasticsearch"]
    assert output["username"] == "${ES_USERNAME:metricbeat_internal}"
    assert output["password"] == "${ES_PASSWORD}"
    assert "metricbeat_internal" in (REPO / "setup" / "elasticsearch.sh").read_text()
