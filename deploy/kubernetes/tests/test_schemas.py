"""Every rendered object against its schema: Kubernetes' own OpenAPI schemas (kubernetes-validate,
strict) for built-in kinds, the vendored CRD schemas for the operators' kinds (made strict the way
the API server's strict field validation is), and ECK's free-form pod templates as PodTemplateSpecs."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from manifests import K8S, NAMESPACE, SECRET_TEMPLATE, render

KUBERNETES_VERSION = "1.37"
SCHEMAS = K8S / "schemas"
CRD_SCHEMAS = {
    ("beat.k8s.elastic.co/v1beta1", "Beat"): "beat.k8s.elastic.co_beat_v1beta1.json",
    (
        "elasticsearch.k8s.elastic.co/v1",
        "Elasticsearch",
    ): "elasticsearch.k8s.elastic.co_elasticsearch_v1.json",
    ("kibana.k8s.elastic.co/v1", "Kibana"): "kibana.k8s.elastic.co_kibana_v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrule_v1.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "postgresql.cnpg.io_cluster_v1.json",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
_LEADING_FLAGS = re.compile(r"^\^\(\?([aiLmsux]+)\)")


def python_pattern(pattern: str) -> str:
    """Go's `^(?i)...` as Python accepts it (`(?i)^...`): inline flags must lead (SOURCES.md)."""
    return _LEADING_FLAGS.sub(r"(?\1)^", pattern)


def strict(schema: Any) -> Any:
    """The schema with unknown fields rejected wherever the CRD does not preserve them, and its
    regular expressions made Python-compatible."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {
        k: strict(v) if k not in ("properties",) else {n: strict(s) for n, s in v.items()}
        for k, v in schema.items()
    }
    if isinstance(result.get("pattern"), str):
        result["pattern"] = python_pattern(result["pattern"])
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """A strict validator for one custom kind, from the vendored schema."""
    schema = strict(json.loads((SCHEMAS / CRD_SCHEMAS[(api_version, kind)]).read_text()))
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    cls.check_schema(schema)
    return cls(schema)


def crd_errors(obj: dict) -> list[str]:
    """Schema violations of a custom resource, one line each."""
    validator = crd_validator(obj["apiVersion"], obj["kind"])
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def k8s_errors(obj: dict) -> list[str]:
    """kubernetes-validate's verdict on a built-in kind (strict: unknown fields are errors)."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.path))}: {exc.message}"]
    return []


def eck_pod_templates(obj: dict) -> list[dict]:
    """ECK's podTemplate fields (free-form in its CRDs) as v1 PodTemplate objects."""
    spec = obj["spec"]
    templates = [s.get("podTemplate") for s in spec.get("nodeSets", [])]
    templates += [spec.get("podTemplate"), spec.get("daemonSet", {}).get("podTemplate")]
    templates.append(spec.get("deployment", {}).get("podTemplate"))
    return [
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": t}
        for t in templates
        if t is not None
    ]


def test_every_object_matches_its_schema(objects: list[dict]) -> None:
    problems = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS:
            errors = crd_errors(obj)
            for template in eck_pod_templates(obj) if "k8s.elastic.co" in obj["apiVersion"] else []:
                errors += [f"podTemplate: {e}" for e in k8s_errors(template)]
        else:
            errors = k8s_errors(obj)  # an unknown kind raises SchemaNotFoundError: fails too
        problems += [f"{name}: {e}" for e in errors]
    assert problems == []


def test_every_object_is_in_the_tagwatch_namespace(objects: list[dict]) -> None:
    misplaced = [
        f"{o['kind']}/{o['metadata']['name']}: {o['metadata'].get('namespace')}"
        for o in objects
        if o["kind"] not in CLUSTER_SCOPED and o["metadata"].get("namespace") != NAMESPACE
    ]
    assert misplaced == []


def test_every_custom_kind_the_overlays_use_has_a_vendored_schema_and_licence() -> None:
    used = {(o["apiVersion"], o["kind"]) for overlay in ("sqlite", "postgres-cnpg") for o in render(overlay)}
    assert set(CRD_SCHEMAS) <= used, "a vendored schema is no longer used: drop it and its SOURCES.md row"
    sources = (SCHEMAS / "SOURCES.md").read_text()
    for file in CRD_SCHEMAS.values():
        assert f"`{file}`" in sources
    for licence in (
        "LICENSE-ECK.txt",
        "LICENSE-prometheus-operator.txt",
        "NOTICE-prometheus-operator.txt",
        "LICENSE-cloudnative-pg.txt",
    ):
        assert (SCHEMAS / licence).stat().st_size > 100


def test_secret_template_is_a_valid_secret_without_values() -> None:
    secret = yaml.safe_load(SECRET_TEMPLATE.read_text())
    assert k8s_errors(secret) == []
    assert secret["metadata"] == {"name": "tagwatch-secrets", "namespace": NAMESPACE}
    assert set(secret["stringData"].values()) == {""}, "no secret value may be committed"


def test_strict_crd_validation_rejects_an_unknown_field_and_a_wrong_type() -> None:
    monitor = next(o for o in render("sqlite") if o["kind"] == "ServiceMonitor")
    assert crd_errors(monitor) == []
    broken = copy.deepcopy(monitor)
    broken["spec"]["endpoints"][0]["intervall"] = "30s"
    broken["spec"]["selector"]["matchLabels"] = "tagwatch"
    errors = crd_errors(broken)
    assert any("intervall" in e for e in errors) and any("matchLabels" in e for e in errors)


def test_prometheus_rule_regex_caveat_is_handled() -> None:
    assert python_pattern("^(?i)(abort|warn)?$") == "(?i)^(abort|warn)?$"
    rule = next(o for o in render("sqlite") if o["kind"] == "PrometheusRule")
    rule = copy.deepcopy(rule)
    rule["spec"]["groups"][0]["partial_response_strategy"] = "WARN"
    assert crd_errors(rule) == []
    rule["spec"]["groups"][0]["partial_response_strategy"] = "sometimes"
    assert crd_errors(rule) != []


@pytest.mark.parametrize(
    "field", [("spec", "replicas", "two"), ("spec", "template", "spec", "containerz", [])]
)
def test_kubernetes_validate_is_strict(field: tuple) -> None:
    deployment = copy.deepcopy(next(o for o in render("sqlite") if o["kind"] == "Deployment"))
    *path, key, value = field
    node = deployment
    for part in path:
        node = node[part]
    node[key] = value
    assert k8s_errors(deployment) != []
