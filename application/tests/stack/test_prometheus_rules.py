"""Checks for prometheus/ and docs/runbook.md: promtool (config, rules, rule unit tests) and the
contracts promtool cannot see (alert annotations, runbook anchors, metric and label names)."""

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from compose_model import prometheus_targets, rendered_configs

REPO = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = REPO / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULES_TEST = PROMETHEUS_DIR / "tests" / "tagwatch_test.yml"
RUNBOOK = REPO / "docs" / "runbook.md"

COMPOSE_RULE_GLOB = "/etc/prometheus/rules/*.yml"
RUNBOOK_URL_PREFIX = "https://github.com/tagwatch/tagwatch/blob/main/docs/runbook.md#"
SEVERITIES = frozenset({"critical", "warning"})
SCRAPE_JOBS = {"tagwatch-api": ["api:8000"], "tagwatch-collector": ["collector:9108"]}

# The metrics contract, as exposed on /metrics (histograms as _bucket/_count/_sum); checked against
# the names a real run exports in test_contract_metrics_are_exported.
CONTRACT_METRICS = frozenset(
    {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "http_request_duration_seconds_count",
        "http_request_duration_seconds_sum",
        "http_requests_in_progress",
        "tagwatch_posts_collected_total",
        "tagwatch_posts_read_total",
        "tagwatch_source_requests_total",
        "tagwatch_source_request_duration_seconds_bucket",
        "tagwatch_source_request_duration_seconds_count",
        "tagwatch_source_request_duration_seconds_sum",
        "tagwatch_source_rate_limit_remaining",
        "tagwatch_source_partial_errors_total",
        "tagwatch_collection_runs_total",
        "tagwatch_source_runs_total",
        "tagwatch_collection_duration_seconds_bucket",
        "tagwatch_collection_duration_seconds_count",
        "tagwatch_collection_duration_seconds_sum",
        "tagwatch_last_successful_collection_timestamp_seconds",
        "tagwatch_stored_posts",
        "tagwatch_build_info",
    }
)
PROMETHEUS_METRICS = frozenset({"up"})  # written by Prometheus for every target
CONTRACT_LABELS = frozenset(
    {"method", "route", "status", "tag", "source", "version", "le", "outcome", "reason"}
)
TARGET_LABELS = frozenset({"job", "instance"})

_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`")
_MATCHERS = re.compile(r"\{([^}]*)\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_NAME = re.compile(r"(?<![\w:.])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"offset", "bool", "atan2", "inf", "nan"}
)
_RECORD_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")


def _load_rules() -> list[dict]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


RULES = _load_rules()
ALERTS = [rule for rule in RULES if "alert" in rule]
RECORDS = [rule for rule in RULES if "record" in rule]


def referenced_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression (not functions, keywords, label names or numbers)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("{}", text)
    text = _RANGE.sub("[]", text)
    text = _LABEL_LIST.sub(" ", text)
    return {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}


def referenced_labels(expr: str) -> set[str]:
    """Label names used in matchers and in by/without/on/ignoring/group_* lists."""
    text = _STRING.sub('""', expr)
    labels = {name for body in _MATCHERS.findall(text) for name in _MATCHER_LABEL.findall(body)}
    for _, names in _LABEL_LIST.findall(text):
        labels.update(name.strip() for name in names.split(",") if name.strip())
    return labels


def github_anchor(heading: str) -> str:
    """GitHub's heading anchor: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_headings() -> list[str]:
    """Heading texts of docs/runbook.md, skipping fenced code blocks."""
    headings, in_fence = [], False
    for line in RUNBOOK.read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif not in_fence and (match := re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)):
            headings.append(match.group(1))
    return headings


def runbook_anchors() -> set[str]:
    """Anchors GitHub generates for the runbook, with -1, -2 … for repeated headings."""
    anchors, seen = set(), Counter()
    for heading in runbook_headings():
        anchor = github_anchor(heading)
        anchors.add(f"{anchor}-{seen[anchor]}" if seen[anchor] else anchor)
        seen[anchor] += 1
    return anchors


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not on PATH; CI must install it: apt-get install -y prometheus")
        pytest.skip("promtool is not on PATH (apt-get install -y prometheus)")
    return path


def run_promtool(promtool: str, *args: str) -> str:
    result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, check=False)
    output = f"$ promtool {' '.join(args)}\n{result.stdout}{result.stderr}"
    assert result.returncode == 0, output
    return output


def test_promtool_check_config_accepts_config_and_rules(
    promtool: str, tmp_path: Path, resolved: dict
) -> None:
    # The committed paths are those inside the compose container; point them at the repo's rules
    # and at the target files exactly as compose renders them (its `configs:`).
    config = yaml.safe_load(CONFIG.read_text())
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    rendered = {mount["target"]: mount["source"] for mount in resolved["services"]["prometheus"]["configs"]}
    for job in config["scrape_configs"]:
        for sd in job["file_sd_configs"]:
            local = [tmp_path / Path(path).name for path in sd["files"]]
            for path, target in zip(local, sd["files"], strict=True):
                path.write_text(resolved["configs"][rendered[target]]["content"])
            sd["files"] = [str(path) for path in local]
    assert_promtool_accepts(promtool, tmp_path, config)


def assert_promtool_accepts(promtool: str, tmp_path: Path, config: dict) -> None:
    """`promtool check config` passes on `config` and loads every rule file of the repository."""
    local_config = tmp_path / "prometheus.yml"
    local_config.write_text(yaml.safe_dump(config, sort_keys=False))

    output = run_promtool(promtool, "check", "config", str(local_config))

    for path in RULE_FILES:
        assert str(path) in output, f"rule file not picked up by the config:\n{output}"
    assert "WARNING" not in output, output


def postgres_profile_config(model: dict) -> dict:
    """prometheus-pg's configuration file as compose renders it (its `configs:`)."""
    return yaml.safe_load(rendered_configs(model, "prometheus-pg")["/etc/prometheus/prometheus.yml"])


def test_promtool_check_config_accepts_the_postgres_profile_config(
    promtool: str, tmp_path: Path, resolved_postgres: dict
) -> None:
    config = postgres_profile_config(resolved_postgres)
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    assert_promtool_accepts(promtool, tmp_path, config)


def test_postgres_profile_config_differs_only_in_how_it_finds_the_targets(resolved_postgres: dict) -> None:
    # Same jobs, rules and intervals, so every rule and alert reads the same series on both profiles.
    default, postgres = yaml.safe_load(CONFIG.read_text()), postgres_profile_config(resolved_postgres)
    assert postgres["global"] == default["global"]
    assert postgres["rule_files"] == default["rule_files"]
    strip = ("file_sd_configs", "dns_sd_configs", "static_configs")
    assert [{k: v for k, v in job.items() if k not in strip} for job in postgres["scrape_configs"]] == [
        {k: v for k, v in job.items() if k not in strip} for job in default["scrape_configs"]
    ]
    api = next(job for job in postgres["scrape_configs"] if job["job_name"] == "tagwatch-api")
    # Docker's DNS answers one A record per replica: each replica becomes a target of its own.
    assert api["dns_sd_configs"] == [
        {"names": ["api-pg"], "type": "A", "port": 8000, "refresh_interval": "15s"}
    ]
    mounts = {v["target"]: v["source"] for v in resolved_postgres["services"]["prometheus-pg"]["volumes"]}
    assert mounts["/etc/prometheus/rules"] == str(RULES_DIR)


def test_config_matches_compose_and_scrape_contract(resolved: dict) -> None:
    config = yaml.safe_load(CONFIG.read_text())

    assert config["global"] == {"scrape_interval": "15s", "evaluation_interval": "15s"}
    assert config["rule_files"] == [COMPOSE_RULE_GLOB]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {name: job["metrics_path"] for name, job in jobs.items()} == dict.fromkeys(SCRAPE_JOBS, "/metrics")
    # Targets come from compose (PORT, TAGWATCH_METRICS_PORT), never from this file.
    assert all("static_configs" not in job for job in jobs.values())
    assert prometheus_targets(resolved) == SCRAPE_JOBS


@pytest.mark.parametrize("alert", ALERTS, ids=lambda rule: rule["alert"])
def test_alert_has_severity_and_annotations(alert: dict) -> None:
    assert re.fullmatch(r"Tagwatch[A-Z][A-Za-z]+", alert["alert"])
    assert alert.get("labels", {}).get("severity") in SEVERITIES
    annotations = alert.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{alert['alert']} lacks annotations.{key}"


@pytest.mark.parametrize("alert", ALERTS, ids=lambda rule: rule["alert"])
def test_alert_runbook_url_points_at_its_runbook_section(alert: dict) -> None:
    url = alert["annotations"]["runbook_url"]
    assert url.startswith(RUNBOOK_URL_PREFIX), url
    anchor = url.removeprefix(RUNBOOK_URL_PREFIX)

    assert anchor in runbook_anchors(), f"#{anchor} is not a heading in {RUNBOOK}"
    assert alert["alert"] in runbook_headings(), f"no runbook heading named {alert['alert']}"
    assert anchor == github_anchor(alert["alert"])


@pytest.mark.parametrize("record", RECORDS, ids=lambda rule: rule["record"])
def test_recording_rule_name_is_level_metric_operations(record: dict) -> None:
    name = record["record"]
    assert _RECORD_NAME.match(name), f"{name} is not level:metric:operations"
    assert not name.split(":")[1].endswith("_total"), f"{name}: strip _total after rate()"


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.get("alert") or rule["record"])
def test_rule_uses_only_contract_metrics_and_labels(rule: dict) -> None:
    known_metrics = CONTRACT_METRICS | PROMETHEUS_METRICS | {r["record"] for r in RECORDS}
    known_labels = CONTRACT_LABELS | TARGET_LABELS

    assert referenced_metrics(rule["expr"]) - known_metrics == set()
    assert referenced_labels(rule["expr"]) - known_labels == set()


def test_referenced_metrics_and_labels_parse_promql() -> None:
    expr = (
        'sum without (instance, le) (rate(foo_total{job="a", status=~"5.."}[5m]))'
        " / on (job) group_left bar:baz:ratio > 1e3"
        ' and time() - quux offset 15m or absent(up{job="x{y}"})'
    )

    assert referenced_metrics(expr) == {"foo_total", "bar:baz:ratio", "quux", "up"}
    assert referenced_labels(expr) == {"instance", "le", "job", "status"}


def test_rule_unit_tests_cover_every_rule() -> None:
    doc = yaml.safe_load(RULES_TEST.read_text())
    assert {(RULES_TEST.parent / path).resolve() for path in doc["rule_files"]} == set(RULE_FILES)
    firing, quiet, sampled = set(), set(), set()
    for group in doc["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
        for case in group.get("promql_expr_test", []):
            if case.get("exp_samples"):
                sampled |= referenced_metrics(case["expr"])

    alerts = {rule["alert"] for rule in ALERTS}
    assert alerts - firing == set(), "alerts without a firing test case"
    assert alerts - quiet == set(), "alerts without a not-firing test case"
    assert {rule["record"] for rule in RECORDS} - sampled == set(), "records without a value test"


def test_contract_metrics_are_exported() -> None:
    """Every collector metric the rules may use is really exported by a collector run."""
    from capture import capture_metric_names

    exported = capture_metric_names()
    missing = {name for name in CONTRACT_METRICS if name.startswith("tagwatch_")} - exported
    assert missing == set()
