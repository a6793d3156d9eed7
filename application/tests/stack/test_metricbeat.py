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
from compose_model import prometheus_targets

REPO = Path(__file__).resolve().parents[3]
CONFIG = yaml.safe_load((REPO / "metricbeat" / "metricbeat.yml").read_text())

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


def beats_interpolate(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env[m.group(1)], value)


def metricbeat_targets(model: dict) -> list[str]:
    """The module's hosts with the metricbeat container's environment as compose resolves it."""
    return [
        beats_interpolate(host, model["services"]["metricbeat"]["environment"]) for host in module()["hosts"]
    ]


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


def test_scrapes_the_same_targets_as_prometheus(resolved: dict) -> None:
    # Other port values are checked in test_compose.py (test_scrape_targets_follow_the_port_variables).
    jobs = prometheus_targets(resolved)
    assert metricbeat_targets(resolved) == jobs["tagwatch-api"] + jobs["tagwatch-collector"]
    assert metricbeat_targets(resolved) == ["api:8000", "collector:9108"]


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
