"""generate.py: the generated copies are current, and each carries its source faithfully."""

from __future__ import annotations

import sys

import pytest
import yaml
from manifests import K8S, REPO, one, render

sys.path.insert(0, str(K8S))
import generate


def test_generated_files_are_up_to_date() -> None:
    assert generate.stale(generate.outputs()) == [], "run `make k8s-generate` and commit the result"


def test_prometheus_rule_carries_the_rule_file_unchanged() -> None:
    source = yaml.safe_load((REPO / "prometheus" / "rules" / "tagwatch.yml").read_text())
    rule = one(render("sqlite"), "PrometheusRule", "tagwatch")
    assert rule["spec"]["groups"] == source["groups"]


def test_saved_objects_configmap_holds_every_ndjson_byte_for_byte() -> None:
    [configmap] = [
        o for o in render("sqlite") if o["metadata"]["name"].startswith("tagwatch-kibana-saved-objects")
    ]
    sources = {p.name: p.read_text() for p in (REPO / "kibana").glob("*.ndjson")}
    assert configmap["data"] == sources


def test_filebeat_keeps_the_compose_templates_processors_and_fields() -> None:
    source = yaml.safe_load((REPO / "filebeat" / "filebeat.yml").read_text())
    config = generate.filebeat_config(source)
    src_templates = source["filebeat.autodiscover"]["providers"][0]["templates"]
    templates = config["filebeat.autodiscover"]["providers"][0]["templates"]
    assert len(templates) == len(src_templates)
    for ours, theirs in zip(templates, src_templates, strict=True):
        for got, want in zip(ours["config"], theirs["config"], strict=True):
            assert got.get("processors") == want.get("processors")
            assert got["paths"] == [generate.K8S_CONTAINER_LOG]
    assert config["setup.template.append_fields"] == source["setup.template.append_fields"]
    assert not any(k.startswith("output") for k in config)


def test_metricbeat_keeps_the_templates_and_reads_pod_labels_for_container_labels() -> None:
    source = yaml.safe_load((REPO / "metricbeat" / "metricbeat.yml").read_text())
    [theirs] = source["metricbeat.autodiscover"]["providers"][0]["templates"]
    [provider] = generate.metricbeat_config(source)["metricbeat.autodiscover"]["providers"]
    # One Metricbeat pod watches every node's pods, of its own namespace only.
    assert provider["type"] == "kubernetes" and provider["scope"] == "cluster"
    assert provider["namespace"] == "${POD_NAMESPACE}" and "node" not in provider
    [ours] = provider["templates"]
    # The template is the source's, module settings (use_types, rate_counters, filters...) included,
    # with each container label read as the pod label of the same name.
    as_pod_labels = yaml.safe_dump(theirs).replace("docker.container.labels.", "kubernetes.labels.")
    assert "docker" not in as_pod_labels
    assert ours == yaml.safe_load(as_pod_labels)


@pytest.mark.parametrize(
    ("function", "source"),
    [
        (generate.prometheus_rule, {"groups": [], "extra": 1}),
        (
            generate.filebeat_config,
            {"filebeat.autodiscover": {"providers": [{"type": "docker", "hints.enabled": True}]}},
        ),
        (
            generate.filebeat_config,
            {
                "filebeat.inputs": [{"type": "container", "paths": ["/var/lib/docker/x"]}],
                "filebeat.autodiscover": {"providers": [{"type": "docker", "templates": []}]},
            },
        ),
        (generate.metricbeat_config, {"metricbeat.modules": [{"module": "system"}]}),
        (
            generate.metricbeat_config,
            {
                "metricbeat.autodiscover": {
                    "providers": [
                        {
                            "type": "docker",
                            "templates": [{"condition": {}, "config": [{"hosts": ["api:8000"]}]}],
                        }
                    ]
                }
            },
        ),
    ],
)
def test_a_source_shape_the_script_does_not_know_stops_it(function, source: dict) -> None:
    with pytest.raises(generate.GenerateError):
        function(source)


def test_check_mode_reports_a_stale_copy(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate, "PROMETHEUS_OUT", tmp_path / "prometheus")
    monkeypatch.setattr(generate, "ELASTIC_OUT", tmp_path / "elastic")
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0
    (tmp_path / "elastic" / "filebeat.yml").write_text("# edited by hand\n")
    (tmp_path / "elastic" / "kibana" / "old.ndjson").write_text("{}\n")
    stale = [p.relative_to(tmp_path).as_posix() for p in generate.stale(generate.outputs())]
    assert stale == ["elastic/filebeat.yml", "elastic/kibana/old.ndjson"]
    assert generate.main(["--check"]) == 1
