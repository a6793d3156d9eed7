"""kibana/*.ndjson: parseable, self-consistent saved objects whose fields really exist.

Checks what the saved-objects import would trip over (references, panel wiring, Lens column ids)
and what would leave a panel empty: every field must be one that tagwatch logs (after the Filebeat
pipeline emulated in test_filebeat.py) or that Metricbeat makes of tagwatch's /metrics (the typed
layout reproduced in test_metricbeat.py).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from capture import capture_log_lines, capture_metric_labels, capture_metric_names
from test_filebeat import flat, ship_line
from test_metricbeat import families, kept

REPO = Path(__file__).resolve().parents[3]
NDJSON_FILES = sorted((REPO / "kibana").glob("*.ndjson"))
OBSERVABILITY_DOC = REPO / "docs" / "observability.md"

LOGS_DV = "tagwatch-logs-dv"
METRICS_DV = "tagwatch-metrics-dv"
GRID_COLUMNS = 48
# Added by libbeat to every event, outside the configured processors.
LIBBEAT_FIELDS = {"agent.name", "agent.type", "agent.version", "agent.id", "host.name", "ecs.version"}
# The collector change that ships with issue 11 renames the runs label status -> outcome
# (tagwatch_collection_runs_total{outcome="success|partial|failed|interrupted"}), and the dashboard
# reads `outcome`. Until that change is merged, the capture still shows `status`; this stands in for
# the rename then, and is unused once the capture shows `outcome` (delete it after the merge).
EXPECTED_LABEL_RENAMES = {"tagwatch_collection_runs_total": ("status", "outcome")}
NUMERIC_OPERATIONS = {"sum", "average", "min", "max", "median", "percentile", "standard_deviation"}

EXPECTED_PANELS = {
    "tagwatch-dashboard-logs": {
        "Requests over time by status class",
        "5xx and ERROR lines",
        "Request latency percentiles (event.duration)",
        "Top routes",
        "Collector events per tag",
        "Collector events per source",
        "Rate-limit waits",
        "Log lines by level",
    },
    "tagwatch-dashboard-metrics": {
        "Request rate by status class (req/s)",
        "5xx ratio (share of requests)",
        "p95 latency per route",
        "New posts per tag",
        "Source rate-limit remaining",
        "Time since the last successful run",
        "Collection runs by outcome",
        "Request rate per API container (req/s)",
        "New posts per source",
        "Runs per source by outcome",
    },
}
# Metadata Metricbeat's Docker autodiscover adds to every event of a discovered container
# (libbeat/autodiscover/providers/docker: container.id, .name, .image.name, .labels).
AUTODISCOVER_FIELDS = {
    "container.id": "keyword",
    "container.name": "keyword",
    "container.image.name": "keyword",
}


def load_objects() -> list[dict]:
    objects = []
    for path in NDJSON_FILES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert line.strip(), f"{path.name}:{number} is empty"
            obj = json.loads(line)
            assert isinstance(obj, dict), f"{path.name}:{number} is not an object"
            objects.append(obj)
    return objects


OBJECTS = load_objects()
BY_KEY = {(obj["type"], obj["id"]): obj for obj in OBJECTS}
DASHBOARDS = [obj for obj in OBJECTS if obj["type"] == "dashboard"]


def panels(dashboard: dict) -> list[dict]:
    return json.loads(dashboard["attributes"]["panelsJSON"])


def lens_panels() -> list[tuple[dict, dict]]:
    return [(d, p) for d in DASHBOARDS for p in panels(d) if p["type"] == "lens"]


def layers(attributes: dict) -> dict[str, dict]:
    return attributes["state"]["datasourceStates"]["formBased"]["layers"]


def layer_data_view(attributes: dict, layer_id: str) -> str:
    (ref,) = [r for r in attributes["references"] if r["name"] == f"indexpattern-datasource-layer-{layer_id}"]
    return ref["id"]


_QUOTED = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*(?::|<=|>=|<|>)")


def kql_fields(query: str) -> set[str]:
    """Field names in a KQL query (the names before ':' or a range operator)."""
    return set(_KQL_FIELD.findall(_QUOTED.sub('""', query)))


def lens_field_uses(attributes: dict) -> list[tuple[str, str, str | None]]:
    """(data view id, field, operation) for every field a Lens panel reads."""
    uses = []
    state = attributes["state"]
    for layer_id, layer in layers(attributes).items():
        dv = layer_data_view(attributes, layer_id)
        uses += [(dv, field, None) for field in kql_fields(state["query"]["query"])]
        for column in layer["columns"].values():
            field = column.get("sourceField")
            if field and field != "___records___":
                uses.append((dv, field, column["operationType"]))
            if column.get("filter"):
                uses += [(dv, f, None) for f in kql_fields(column["filter"]["query"])]
            for item in column.get("params", {}).get("filters", []):
                uses += [(dv, f, None) for f in kql_fields(item["input"]["query"])]
            sort_field = column.get("params", {}).get("sortField")
            if sort_field:
                uses.append((dv, sort_field, None))
    return uses


def search_field_uses(search: dict) -> list[tuple[str, str, str | None]]:
    attributes = search["attributes"]
    source = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
    (ref,) = [r for r in search["references"] if r["name"] == source["indexRefName"]]
    fields = set(attributes["columns"]) | {sort[0] for sort in attributes["sort"]}
    fields |= kql_fields(source["query"]["query"])
    return [(ref["id"], field, None) for field in sorted(fields)]


def all_field_uses() -> list[tuple[str, str, str | None]]:
    uses = [
        use for _, panel in lens_panels() for use in lens_field_uses(panel["embeddableConfig"]["attributes"])
    ]
    for obj in OBJECTS:
        if obj["type"] == "search":
            uses += search_field_uses(obj)
    return uses


@cache
def log_fields() -> dict[str, Any]:
    """Field name -> a sample value, as Filebeat publishes tagwatch's captured lines."""
    fields: dict[str, Any] = {}
    for line in capture_log_lines():
        fields.update(flat(ship_line(line)))
    fields["@timestamp"] = "2026-11-23T12:00:00.000Z"
    return fields


@cache
def metric_labels() -> dict[str, frozenset[str]]:
    """Metric family -> the label names tagwatch exports it with (from the captured /metrics)."""
    samples = capture_metric_labels()
    labels = {}
    for family, kind in families(set(samples)).items():
        names = (
            [family + suffix for suffix in ("_bucket", "_sum", "_count")] if kind == "histogram" else [family]
        )
        found = set().union(*(samples.get(name, set()) for name in names))
        old, new = EXPECTED_LABEL_RENAMES.get(family, (None, None))
        if old in found and new not in found:
            found = found - {old} | {new}
        labels[family] = frozenset(found)
    return labels


@cache
def metric_fields() -> dict[str, str]:
    """Field name -> kind ("number", "histogram", "keyword") as Metricbeat's typed layout writes them."""
    fields = {"@timestamp": "date", "service.address": "keyword"} | AUTODISCOVER_FIELDS
    fields |= {
        f"prometheus.labels.{label}": "keyword" for names in metric_labels().values() for label in names
    }
    for family, kind in families(capture_metric_names()).items():
        if not kept(family):
            continue
        if kind == "counter":
            fields[f"prometheus.{family}.counter"] = fields[f"prometheus.{family}.rate"] = "number"
        elif kind == "histogram":
            fields[f"prometheus.{family}.histogram"] = "histogram"
        else:
            fields[f"prometheus.{family}.value"] = "number"
    return fields


# ---- the file ----------------------------------------------------------------------------------


def test_the_objects_the_issue_asks_for_exist() -> None:
    kinds = {(obj["type"], obj["id"]) for obj in OBJECTS}
    assert {("index-pattern", LOGS_DV), ("index-pattern", METRICS_DV)} <= kinds
    assert {("dashboard", d) for d in EXPECTED_PANELS} <= kinds
    assert BY_KEY["index-pattern", LOGS_DV]["attributes"]["title"] == "filebeat-*"
    assert BY_KEY["index-pattern", METRICS_DV]["attributes"]["title"] == "metricbeat-*"
    titles = {obj["attributes"]["title"] for obj in DASHBOARDS}
    assert titles == {"tagwatch — service logs", "tagwatch — metrics"}


def test_ids_are_stable_and_unique() -> None:
    keys = [(obj["type"], obj["id"]) for obj in OBJECTS]
    assert len(keys) == len(set(keys))
    for obj in OBJECTS:
        assert re.fullmatch(r"tagwatch-[a-z0-9-]+", obj["id"]), obj["id"]
        assert obj["coreMigrationVersion"] == "8.8.0"
        assert re.fullmatch(r"\d+\.\d+\.\d+", obj["typeMigrationVersion"])


def test_every_reference_resolves() -> None:
    for obj in OBJECTS:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in BY_KEY, f"{obj['id']} -> missing {ref}"
    for _, panel in lens_panels():
        for ref in panel["embeddableConfig"]["attributes"]["references"]:
            assert (ref["type"], ref["id"]) in BY_KEY, f"panel {panel['panelIndex']} -> missing {ref}"


def test_dashboard_references_match_their_panels() -> None:
    for dashboard in DASHBOARDS:
        refs = {ref["name"]: ref for ref in dashboard["references"]}
        expected = set()
        for panel in panels(dashboard):
            index = panel["panelIndex"]
            assert panel["gridData"]["i"] == index
            if "panelRefName" in panel:
                name = f"{index}:{panel['panelRefName']}"
                assert refs[name]["type"] == panel["type"], name
                expected.add(name)
                continue
            attributes = panel["embeddableConfig"]["attributes"]
            for layer_id in layers(attributes):
                name = f"{index}:indexpattern-datasource-layer-{layer_id}"
                assert refs[name]["id"] == layer_data_view(attributes, layer_id), name
                expected.add(name)
        assert set(refs) == expected, f"{dashboard['id']}: unused references {set(refs) - expected}"
        indices = [p["panelIndex"] for p in panels(dashboard)]
        assert len(indices) == len(set(indices))


def test_panels_fit_the_grid_without_overlapping() -> None:
    for dashboard in DASHBOARDS:
        taken: set[tuple[int, int]] = set()
        for panel in panels(dashboard):
            grid = panel["gridData"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_COLUMNS, panel["panelIndex"]
            cells = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & taken, f"{panel['panelIndex']} overlaps another panel"
            taken |= cells


def test_lens_columns_and_accessors_are_wired() -> None:
    for _, panel in lens_panels():
        attributes = panel["embeddableConfig"]["attributes"]
        assert panel["title"] == attributes["title"]
        state = attributes["state"]
        for layer in layers(attributes).values():
            columns = layer["columns"]
            assert sorted(layer["columnOrder"]) == sorted(columns)
            for column in columns.values():
                for ref in column.get("references", []):
                    assert ref in columns
                order = column.get("params", {}).get("orderBy", {})
                if order.get("type") == "column":
                    assert order["columnId"] in columns
        visualization = state["visualization"]
        vis_layers = visualization.get("layers", [visualization])
        for vis_layer in vis_layers:
            columns = layers(attributes)[vis_layer["layerId"]]["columns"]
            accessors = [vis_layer.get("xAccessor"), vis_layer.get("splitAccessor")]
            accessors += vis_layer.get("accessors", []) + [
                c["columnId"] for c in vis_layer.get("columns", [])
            ]
            accessors += [c["forAccessor"] for c in vis_layer.get("yConfig", [])]
            for accessor in filter(None, accessors):
                assert accessor in columns, f"{panel['panelIndex']}: {accessor} is not a column"


def test_dashboards_have_the_panels_the_issue_asks_for() -> None:
    for dashboard in DASHBOARDS:
        titles = {panel["title"] for panel in panels(dashboard)}
        assert titles == EXPECTED_PANELS[dashboard["id"]]


def test_errors_table_shows_the_request_id() -> None:
    search = BY_KEY["search", "tagwatch-search-errors"]
    assert "http.request.id" in search["attributes"]["columns"]
    query = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]
    assert {"http.response.status_code", "log.level"} <= kql_fields(query)


# ---- the fields --------------------------------------------------------------------------------


def test_kql_field_extraction() -> None:
    query = 'service.name : "a: b" and (http.response.status_code >= 500 or not log.level : ("error"))'
    assert kql_fields(query) == {"service.name", "http.response.status_code", "log.level"}


@pytest.mark.parametrize("dv", [LOGS_DV, METRICS_DV])
def test_every_data_view_is_used(dv: str) -> None:
    assert any(use[0] == dv for use in all_field_uses())


def test_every_log_field_is_one_tagwatch_logs() -> None:
    available = set(log_fields()) | LIBBEAT_FIELDS
    missing = sorted({field for dv, field, _ in all_field_uses() if dv == LOGS_DV} - available)
    assert not missing, f"dashboard fields that no captured line produces: {missing}"


def test_numeric_operations_on_logs_read_numbers() -> None:
    for dv, field, operation in all_field_uses():
        if dv == LOGS_DV and operation in NUMERIC_OPERATIONS:
            value = log_fields()[field]
            assert isinstance(value, int | float) and not isinstance(value, bool), (field, value)


def test_every_metric_field_is_one_metricbeat_writes() -> None:
    missing = sorted({field for dv, field, _ in all_field_uses() if dv == METRICS_DV} - set(metric_fields()))
    assert not missing, f"dashboard fields Metricbeat does not produce from /metrics: {missing}"


def test_metric_operations_fit_the_field_kind() -> None:
    for dv, field, operation in all_field_uses():
        if dv != METRICS_DV or operation is None:
            continue
        kind = metric_fields()[field]
        if kind == "histogram":
            assert operation == "percentile", (field, operation)
        elif operation in NUMERIC_OPERATIONS | {"last_value"}:
            assert kind == "number", (field, operation)


def metric_panels() -> list[tuple[str, dict]]:
    """(title, Lens attributes) of every panel on the metrics data view."""
    return [
        (panel["title"], panel["embeddableConfig"]["attributes"])
        for _, panel in lens_panels()
        if {use[0] for use in lens_field_uses(panel["embeddableConfig"]["attributes"])} == {METRICS_DV}
    ]


def aggregated_metric_fields(attributes: dict) -> set[str]:
    """The metric fields a panel's metric columns read (not labels, not buckets)."""
    return {
        column["sourceField"]
        for layer in layers(attributes).values()
        for column in layer["columns"].values()
        if not column["isBucketed"]
        and column.get("sourceField", "").startswith("prometheus.")
        and not column["sourceField"].startswith("prometheus.labels.")
    }


def top_level_exists(query: str) -> set[str]:
    """Fields of the `field : *` clauses ANDed at the top level of a KQL query."""
    clauses, depth, start, masked = [], 0, 0, _QUOTED.sub(lambda m: "_" * len(m.group()), query)
    for index, char in enumerate(masked):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and masked.startswith(" and ", index):
            clauses.append(query[start:index])
            start = index + len(" and ")
    clauses.append(query[start:])
    if any(re.search(r"\bor\b", re.sub(r"\([^)]*\)", "", _QUOTED.sub('""', c))) for c in clauses):
        return set()
    return {m.group(1) for c in clauses if (m := re.fullmatch(r"\s*([\w.@]+)\s*:\s*\*\s*", c))}


def test_top_level_exists_extraction() -> None:
    assert top_level_exists('a.b : * and not c : ("x and y" or z) and d : *') == {"a.b", "d"}
    assert top_level_exists("a : * or b : *") == set()
    assert top_level_exists("not a : *") == set()


@pytest.mark.parametrize(("title", "attributes"), metric_panels(), ids=[t for t, _ in metric_panels()])
def test_metric_panels_keep_only_documents_that_carry_their_metric(title: str, attributes: dict) -> None:
    # Metricbeat writes one document per label set; a label such as `status` or `source` also sits
    # on documents of other metrics. Without the exists filter those split the panel into empty
    # legend entries or, tied at zero, push real series (a `failed` run) out of the top N.
    fields = aggregated_metric_fields(attributes)
    assert fields, title
    assert fields <= top_level_exists(attributes["state"]["query"]["query"]), title


@pytest.mark.parametrize(("title", "attributes"), metric_panels(), ids=[t for t, _ in metric_panels()])
def test_metric_panels_split_only_by_labels_of_their_metric(title: str, attributes: dict) -> None:
    used = {field.removeprefix("prometheus.labels.") for _, field, _ in lens_field_uses(attributes)}
    used = {name for name in used if "." not in name and name not in ("@timestamp",)}
    allowed = set().union(
        *(metric_labels()[field.split(".")[1]] for field in aggregated_metric_fields(attributes))
    )
    assert used <= allowed, f"{title}: labels {used - allowed} are not labels of its metric"


def test_runs_panel_splits_by_the_outcome_label() -> None:
    (attributes,) = [a for title, a in metric_panels() if title == "Collection runs by outcome"]
    terms = [c for layer in layers(attributes).values() for c in layer["columns"].values() if c["isBucketed"]]
    assert {c["sourceField"] for c in terms} == {"@timestamp", "prometheus.labels.outcome"}
    (outcome,) = [c for c in terms if c["sourceField"] == "prometheus.labels.outcome"]
    assert outcome["params"]["size"] >= 4  # success, partial, failed, interrupted
    assert "outcome" in metric_labels()["tagwatch_collection_runs_total"]


def test_replica_panel_splits_the_api_request_rate_by_container() -> None:
    # One series per api-pg replica in the postgres profile; the sqlite profile's single api.
    (attributes,) = [a for title, a in metric_panels() if title == "Request rate per API container (req/s)"]
    columns = [c for layer in layers(attributes).values() for c in layer["columns"].values()]
    split = [c for c in columns if c["isBucketed"] and c["sourceField"] != "@timestamp"]
    assert [(c["operationType"], c["sourceField"]) for c in split] == [("terms", "container.name")]
    assert split[0]["params"]["size"] >= 3
    assert aggregated_metric_fields(attributes) == {"prometheus.http_requests_total.rate"}
    assert "metricbeat.autodiscover" in (REPO / "metricbeat" / "metricbeat.yml").read_text()


def test_observability_doc_explains_every_panel() -> None:
    text = OBSERVABILITY_DOC.read_text(encoding="utf-8")
    for titles in EXPECTED_PANELS.values():
        for title in titles:
            assert title in text, f"docs/observability.md does not describe {title!r}"


# Collection panels that tell the sources apart (issue 13), by the field that carries the source.
SOURCE_SPLITS = {
    "New posts per source": "prometheus.labels.source",
    "Runs per source by outcome": "prometheus.labels.source",
    "Time since the last successful run": "prometheus.labels.source",
    "Collector events per source": "tagwatch.source",
}


@pytest.mark.parametrize(("title", "field"), SOURCE_SPLITS.items())
def test_collection_panels_break_down_by_source(title: str, field: str) -> None:
    (attributes,) = [p["embeddableConfig"]["attributes"] for _, p in lens_panels() if p["title"] == title]
    terms = [
        c
        for layer in layers(attributes).values()
        for c in layer["columns"].values()
        if c["isBucketed"] and c["operationType"] == "terms"
    ]
    (source,) = [c for c in terms if c["sourceField"] == field]
    assert source["params"]["size"] >= 4  # x, mastodon, bluesky, sample
    if field == "tagwatch.source":
        assert isinstance(log_fields()[field], str)  # the collector's lines carry it
    else:
        for metric in aggregated_metric_fields(attributes):
            assert "source" in metric_labels()[metric.split(".")[1]], metric
