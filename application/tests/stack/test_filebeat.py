"""filebeat/filebeat.yml: documented keys only, and tagwatch's real log lines decoded into ECS fields.

No Filebeat binary runs here, so the steps the config declares are emulated in Python, driven by
the parsed YAML (autodiscover conditions, the container parser, decode_json_fields options,
add_docker_metadata). The emulation follows the Beats sources it names; real lines come from
capture.capture_log_lines() and are wrapped the way Docker's json-file driver writes them.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from capture import capture_log_lines

REPO = Path(__file__).resolve().parents[3]
FILEBEAT_YML = REPO / "filebeat" / "filebeat.yml"
COMPOSE_YML = REPO / "docker-compose.yml"
CONFIG = yaml.safe_load(FILEBEAT_YML.read_text())
COMPOSE = yaml.safe_load(COMPOSE_YML.read_text())

DOCKER_ROOT = "/var/lib/docker/containers"
DOCKER_PARTIAL_BYTES = 16 * 1024  # json-file splits longer lines into partial entries

# Option names as documented (docs/reference/filebeat/*.md in elastic/beats, 8.x/9.x pages) and,
# for decode_json_fields, its AllowedFields list in libbeat/processors/actions/decode_json_fields.go.
# "[]" marks a list item, "*" any suffix (condition fields, template variables).
_INPUT = "filebeat.autodiscover.providers[].templates[].config[]"
DOCUMENTED_KEYS = {
    # configuration-autodiscover.md (Docker provider)
    "filebeat.autodiscover.providers[].type",
    "filebeat.autodiscover.providers[].host",
    "filebeat.autodiscover.providers[].labels.dedot",
    "filebeat.autodiscover.providers[].cleanup_timeout",
    "filebeat.autodiscover.providers[].hints.enabled",
    "filebeat.autodiscover.providers[].templates[].condition.equals.*",
    "filebeat.autodiscover.providers[].templates[].condition.contains.*",
    "filebeat.autodiscover.providers[].templates[].condition.not.equals.*",
    "filebeat.autodiscover.providers[].templates[].condition.not.contains.*",
    # filebeat-input-filestream.md / the autodiscover template example
    f"{_INPUT}.type",
    f"{_INPUT}.id",
    f"{_INPUT}.paths",
    f"{_INPUT}.prospector.scanner.symlinks",
    f"{_INPUT}.close.on_state_change.removed",
    f"{_INPUT}.exclude_lines",
    f"{_INPUT}.include_lines",
    f"{_INPUT}.parsers[].container.stream",
    f"{_INPUT}.parsers[].container.format",
    # decode-json-fields.md
    *(
        f"{_INPUT}.processors[].decode_json_fields.{option}"
        for option in (
            "fields",
            "max_depth",
            "overwrite_keys",
            "add_error_key",
            "process_array",
            "target",
            "document_id",
            "expand_keys",
        )
    ),
    # add-docker-metadata.md
    "processors[].add_docker_metadata",
    *(
        f"processors[].add_docker_metadata.{option}"
        for option in (
            "host",
            "match_fields",
            "match_pids",
            "match_source",
            "match_source_index",
            "match_short_id",
            "cleanup_timeout",
            "labels.dedot",
        )
    ),
    # elasticsearch-output.md
    "output.elasticsearch.hosts",
    "output.elasticsearch.username",
    "output.elasticsearch.password",
    # configuration-template.md
    "setup.template.overwrite",
    "setup.template.append_fields[].name",
    "setup.template.append_fields[].type",
}
LIST_VALUED = {"paths", "fields", "hosts", "exclude_lines", "include_lines", "match_fields", "match_pids"}


def flatten_keys(node: Any, prefix: str = "") -> set[str]:
    """Dotted key paths of a YAML tree; list items add "[]", lists of scalars are one leaf."""
    if isinstance(node, dict):
        if not node:
            return {prefix}
        keys: set[str] = set()
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key in LIST_VALUED and isinstance(value, list):
                keys.add(path)
            else:
                keys |= flatten_keys(value, path)
        return keys
    if isinstance(node, list):
        return set().union(*(flatten_keys(item, prefix + "[]") for item in node)) if node else {prefix}
    return {prefix}


def is_documented(path: str) -> bool:
    for pattern in DOCUMENTED_KEYS:
        regex = re.escape(pattern).replace(r"\*", ".+")
        if re.fullmatch(regex, path):
            return True
    return False


# ---- values and maps, the way libbeat's mapstr handles them --------------------------------------


def get_value(event: dict, dotted: str) -> Any:
    """mapstr.GetValue: walk nested maps along the dotted key; None when a step is missing."""
    node: Any = event
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def put_value(target: dict, dotted: str, value: Any) -> Any:
    """mapstr.Put: create intermediate maps, return the replaced value; error on a non-map step."""
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"cannot put {dotted!r}: {part!r} is not an object")
        node = child
    old = node.get(parts[-1])
    node[parts[-1]] = value
    return old


def safemap_put(target: dict, dotted: str, value: Any) -> None:
    """safemapstr.Put: like Put, but a scalar in the way moves to "<key>.value"."""
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            child = node[part] = {"value": child}
        node = child
    if isinstance(node.get(parts[-1]), dict):
        node[parts[-1]]["value"] = value
    else:
        node[parts[-1]] = value


def deep_update(target: dict, source: dict) -> None:
    """mapstr.DeepUpdate with overwrite: merge maps recursively, otherwise replace."""
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def merge_objects(lhs: dict, rhs: dict) -> None:
    """jsontransform.mergeObjects: deep merge rhs into lhs; two non-objects under one key fail."""
    for key, rhs_value in rhs.items():
        if key not in lhs:
            lhs[key] = rhs_value
            continue
        if not isinstance(lhs[key], dict) or not isinstance(rhs_value, dict):
            raise ValueError(f"cannot merge {key!r}")
        merge_objects(lhs[key], rhs_value)


def expand_fields(m: dict) -> None:
    """jsontransform.expandFields: de-dot keys in place into nested objects, failing on conflicts."""
    for key in list(m):
        value = m[key]
        if isinstance(value, dict):
            expand_fields(value)
        if "." not in key:
            continue
        del m[key]
        try:
            old = put_value(m, key, value)
        except ValueError:
            raise ValueError(f"cannot expand {key!r}: found conflicting key") from None
        if old is None:
            continue
        if not isinstance(value, dict) or not isinstance(old, dict):
            raise ValueError(f"cannot expand {key!r}: found conflicting key")
        merge_objects(value, old)


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
_ISO8601 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})")


def parse_beats_timestamp(value: str) -> datetime:
    """jsonhelper.parseTimestamp: time.RFC3339 (fraction allowed) or 2006-01-02T15:04:05.000Z0700."""
    if not (_RFC3339.fullmatch(value) or _ISO8601.fullmatch(value)):
        raise ValueError(f"failed to parse @timestamp, unknown format: {value!r}")
    text = value.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    date, _, rest = text.partition(".")
    if rest:  # Python parses at most 6 fraction digits; Go keeps nanoseconds
        digits = re.match(r"\d+", rest).group(0)
        text = f"{date}.{digits[:6].ljust(6, '0')}{rest[len(digits) :]}"
    return datetime.fromisoformat(text).astimezone(UTC)


# ---- the pipeline --------------------------------------------------------------------------------


class Event(dict):
    """An event's fields plus what Filebeat keeps beside them (timestamp, pipeline errors)."""

    def __init__(self, fields: dict, timestamp: datetime) -> None:
        super().__init__(fields)
        self.timestamp = timestamp
        self.pipeline_errors: list[str] = []

    def fail(self, error: dict, add_error_key: bool) -> None:
        """beat.Event.SetErrorWithOption, and remember the failure for the test."""
        self.pipeline_errors.append(error["message"])
        if add_error_key:
            self["error"] = error


def condition_matches(condition: dict, event: dict) -> bool:
    """The subset of libbeat conditions this config may use: equals, contains, not, and, or."""
    ((kind, arg),) = condition.items()
    if kind == "equals":
        return all(get_value(event, field) == value for field, value in arg.items())
    if kind == "contains":
        return all(str(value) in str(get_value(event, field) or "") for field, value in arg.items())
    if kind == "not":
        return not condition_matches(arg, event)
    if kind == "and":
        return all(condition_matches(c, event) for c in arg)
    if kind == "or":
        return any(condition_matches(c, event) for c in arg)
    raise AssertionError(f"condition {kind!r} is not emulated; extend test_filebeat.py")


def substitute(node: Any, event: dict) -> Any:
    """Autodiscover templating: ${data.<field>} from the autodiscover event."""
    if isinstance(node, str):
        return re.sub(r"\$\{data\.([^}]+)\}", lambda m: str(get_value(event, m.group(1))), node)
    if isinstance(node, list):
        return [substitute(item, event) for item in node]
    if isinstance(node, dict):
        return {key: substitute(value, event) for key, value in node.items()}
    return node


def docker_provider() -> dict:
    (provider,) = CONFIG["filebeat.autodiscover"]["providers"]
    assert provider["type"] == "docker"
    return provider


def autodiscover_event(container: dict) -> dict:
    """The docker provider's event: docker.container.* with labels nested the safemapstr way."""
    labels: dict = {}
    for key, value in container["labels"].items():
        safemap_put(labels, key, value)
    return {
        "host": "172.18.0.5",
        "docker": {
            "container": {
                "id": container["id"],
                "name": container["name"],
                "image": container["image"],
                "labels": labels,
            }
        },
    }


def inputs_for(container: dict) -> list[dict]:
    """The input configs every matching template launches for this container."""
    event = autodiscover_event(container)
    launched = []
    for template in docker_provider()["templates"]:
        if condition_matches(template["condition"], event):
            launched.extend(substitute(template["config"], event))
    return launched


def container_parser(lines: list[str], options: dict) -> list[tuple[str, str, datetime]]:
    """readjson.DockerJSONReader: unwrap json-file lines, join partial lines, filter the stream."""
    assert options.get("format", "auto") in ("auto", "docker"), "only the docker format is emulated"
    stream = options.get("stream", "all")
    messages = []
    pending: tuple[str, str, datetime] | None = None
    for raw in lines:
        entry = json.loads(raw)
        text = entry["log"]
        timestamp = parse_beats_timestamp(entry["time"])
        if pending is not None:
            text = pending[0] + text
            timestamp = pending[2]
        if not text.endswith("\n"):  # partial: Docker split the line
            pending = (text, entry["stream"], timestamp)
            continue
        pending = None
        if stream in ("all", entry["stream"]):
            messages.append((text, entry["stream"], timestamp))
    assert pending is None, "the file ended inside a partial line"
    return messages


DECODE_JSON_OPTIONS = {"fields", "target", "max_depth", "overwrite_keys", "expand_keys", "add_error_key"} | {
    "process_array",
    "when",
}
_STRUCTURED = re.compile(r"\s*(\{.*\}|\[.*\])\s*", re.S)


def decode_json_fields(event: Event, options: dict) -> None:
    """actions.decodeJSONFields.Run with jsontransform.WriteJSONKeys for target ""."""
    unknown = set(options) - DECODE_JSON_OPTIONS
    assert not unknown, f"decode_json_fields options not emulated: {unknown}"
    if "when" in options and not condition_matches(options["when"], event):
        return
    add_error_key = options.get("add_error_key", False)
    for field in options["fields"]:
        text = get_value(event, field)
        if not isinstance(text, str):
            continue
        try:
            output = json.loads(text)  # one value, whitespace allowed around it, like decodeJSON
        except json.JSONDecodeError as exc:
            event.fail(
                {"message": f"parsing input as JSON: {exc}", "data": text, "field": field}, add_error_key
            )
            continue
        output = _decode_nested(output, options.get("max_depth", 1) - 1, options.get("process_array"))
        target = options.get("target", field)
        if target != "":
            put_value(event, target, output)
        elif isinstance(output, dict):
            write_json_keys(event, output, options)
        else:
            event.pipeline_errors.append("failed to add target to root")


def _decode_nested(value: Any, depth: int, process_array: bool) -> Any:
    """decode_json_fields' max_depth: decode strings that look like JSON, level by level."""
    if depth <= 0:
        return value
    if isinstance(value, dict):
        keys: Any = list(value)
    elif isinstance(value, list) and process_array:
        keys = range(len(value))
    else:
        return value
    for key in keys:
        item = value[key]
        if isinstance(item, str) and _STRUCTURED.fullmatch(item):
            with contextlib.suppress(json.JSONDecodeError):
                value[key] = _decode_nested(json.loads(item), depth - 1, process_array)
    return value


def write_json_keys(event: Event, keys: dict, options: dict) -> None:
    add_error_key = options.get("add_error_key", False)
    if options.get("expand_keys"):
        try:
            expand_fields(keys)
        except ValueError as exc:
            event.fail({"message": str(exc), "type": "json"}, add_error_key)
            return
    if not options.get("overwrite_keys"):
        keys = {k: v for k, v in keys.items() if k not in ("@timestamp", "@metadata")}
        for key, value in keys.items():  # DeepUpdateNoOverwrite
            if key not in event:
                event[key] = value
        return
    if "@timestamp" in keys:
        value = keys.pop("@timestamp")
        try:
            if not isinstance(value, str):
                raise ValueError("not string")
            event.timestamp = parse_beats_timestamp(value)
        except ValueError:
            event.fail({"message": f"@timestamp not overwritten ({value!r})", "type": "json"}, add_error_key)
    keys.pop("@metadata", None)
    if "type" in keys:
        event["type"] = keys.pop("type")
    deep_update(event, keys)


def add_docker_metadata(event: Event, options: dict, containers: dict[str, dict]) -> None:
    """add_docker_metadata with match_source: the id is path element 4 (empty parts dropped)."""
    assert options.get("match_source", True), "only match_source is emulated"
    index = options.get("match_source_index", 4)
    path = get_value(event, "log.file.path")
    parts = [part for part in str(path).split("/") if part]
    container = containers.get(parts[index]) if len(parts) > index else None
    if container is None:
        return
    dedot = options.get("labels.dedot", True)
    labels: dict = {}
    for key, value in container["labels"].items():
        if dedot:
            labels[key.replace(".", "_")] = value
        else:
            safemap_put(labels, key, value)
    deep_update(
        event,
        {
            "container": {
                "id": container["id"],
                "name": container["name"],
                "image": {"name": container["image"]},
                **({"labels": labels} if labels else {}),
            }
        },
    )


def run_processors(event: Event, processors: list[dict], containers: dict[str, dict]) -> None:
    for processor in processors or []:
        ((name, options),) = processor.items()
        options = options or {}
        if name == "decode_json_fields":
            decode_json_fields(event, options)
        elif name == "add_docker_metadata":
            add_docker_metadata(event, options, containers)
        else:
            raise AssertionError(f"processor {name!r} is not emulated; extend test_filebeat.py")


def ship(container: dict, docker_lines: list[str]) -> list[Event]:
    """Everything Filebeat would publish for these json-file lines of this container."""
    (input_config,) = inputs_for(container)
    assert input_config["type"] == "filestream"
    path = f"{DOCKER_ROOT}/{container['id']}/{container['id']}-json.log"
    assert any(re.fullmatch(glob.replace("*", "[^/]*"), path) for glob in input_config["paths"])
    messages = [(line, "", None) for line in docker_lines]
    for parser in input_config.get("parsers", []):
        ((name, options),) = parser.items()
        assert name == "container", f"parser {name!r} is not emulated; extend test_filebeat.py"
        messages = container_parser([m[0] for m in messages], options or {})
    events = []
    offset = 0
    for text, stream, timestamp in messages:
        event = Event(
            {
                "message": text,
                "stream": stream,
                "log": {"offset": offset, "file": {"path": path}},
                "input": {"type": "filestream"},
            },
            timestamp,
        )
        offset += len(text)
        run_processors(event, input_config.get("processors"), {container["id"]: container})
        run_processors(event, CONFIG.get("processors"), {container["id"]: container})
        events.append(event)
    return events


def docker_json_file(line: str, stream: str = "stdout", chunk: int = DOCKER_PARTIAL_BYTES) -> list[str]:
    """How Docker's json-file driver stores one output line: {"log","stream","time"}, split at 16 KiB."""
    text = line + "\n"
    pieces = [text[i : i + chunk] for i in range(0, len(text), chunk)]
    return [
        json.dumps({"log": piece, "stream": stream, "time": "2026-11-23T12:00:00.123456789Z"})
        for piece in pieces
    ]


def flat(event: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in event.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flat(value, path))
        else:
            out[path] = value
    return out


# ---- containers as compose defines them ------------------------------------------------------


def compose_container(service: str) -> dict:
    spec = COMPOSE["services"][service]
    labels = dict(spec.get("labels") or {})
    labels["com.docker.compose.service"] = service
    labels["com.docker.compose.project"] = COMPOSE["name"]
    cid = hashlib.sha256(service.encode()).hexdigest()
    return {
        "id": cid,
        "name": f"{COMPOSE['name']}-{service}-1",
        "image": str(spec["image"]),
        "labels": labels,
    }


# Every container of the tagwatch image, in both profiles: their JSON lines must be decoded.
TAGWATCH_SERVICES = ("api", "collector", "api-pg", "collector-pg", "db-init", "migrate-data")
OTHER_SERVICES = tuple(sorted(set(COMPOSE["services"]) - set(TAGWATCH_SERVICES)))


@pytest.fixture(scope="module")
def log_lines() -> list[dict]:
    lines = capture_log_lines()
    assert lines, "capture_log_lines() returned nothing"
    return lines


def ship_line(line: dict, service: str = "api") -> Event:
    (event,) = ship(compose_container(service), docker_json_file(json.dumps(line)))
    return event


# ---- tests -----------------------------------------------------------------------------------


def test_filebeat_yml_uses_only_documented_keys() -> None:
    undocumented = sorted(path for path in flatten_keys(CONFIG) if not is_documented(path))
    assert not undocumented, f"keys not in the Filebeat docs: {undocumented}"


def test_every_container_of_the_tagwatch_image_is_one_whose_lines_are_decoded() -> None:
    image = {name for name, spec in COMPOSE["services"].items() if spec.get("image") == "tagwatch:local"}
    assert image == set(TAGWATCH_SERVICES)


@pytest.mark.parametrize("service", TAGWATCH_SERVICES)
def test_tagwatch_containers_get_exactly_the_decoding_input(service: str) -> None:
    inputs = inputs_for(compose_container(service))
    assert len(inputs) == 1
    names = [next(iter(p)) for p in inputs[0]["processors"]]
    assert names == ["decode_json_fields"]


@pytest.mark.parametrize("service", OTHER_SERVICES)
def test_other_containers_get_one_plain_text_input(service: str) -> None:
    (config,) = inputs_for(compose_container(service))
    assert "processors" not in config
    assert config["parsers"] == [{"container": {"stream": "all", "format": "docker"}}]


def test_each_container_gets_a_unique_input_id() -> None:
    services = TAGWATCH_SERVICES + OTHER_SERVICES
    ids = [inputs_for(compose_container(s))[0]["id"] for s in services]
    assert len(set(ids)) == len(ids)
    assert all(compose_container(s)["id"] in i for s, i in zip(services, ids, strict=True))


def test_every_captured_line_decodes_without_pipeline_errors(log_lines: list[dict]) -> None:
    for line in log_lines:
        event = ship_line(line)
        assert event.pipeline_errors == [], (line, event.pipeline_errors)


def test_dotted_keys_become_the_same_nested_ecs_fields(log_lines: list[dict]) -> None:
    for line in log_lines:
        fields = flat(ship_line(line))
        for key, value in line.items():
            if key == "@timestamp":
                continue
            assert fields.get(key) == value, f"{key}: {fields.get(key)!r} != {value!r} in {line}"


def test_event_time_is_the_line_timestamp_not_the_docker_time(log_lines: list[dict]) -> None:
    for line in log_lines:
        event = ship_line(line)
        assert event.timestamp == parse_beats_timestamp(line["@timestamp"])
        assert "@timestamp" not in event


def test_access_line_fields_are_nested_with_their_types(log_lines: list[dict]) -> None:
    line = next(
        line
        for line in log_lines
        if line.get("event.dataset") == "tagwatch.access" and line.get("http.response.status_code") == 404
    )
    event = ship_line(line)
    assert event["http"]["response"]["status_code"] == 404
    assert event["http"]["request"]["method"] == "GET"
    assert event["http"]["request"]["id"] == line["http.request.id"]
    assert event["http"]["route"] == "unmatched"
    assert isinstance(event["event"]["duration"], int)
    assert event["event"]["dataset"] == "tagwatch.access"
    assert event["log"]["level"] == "info"
    assert event["message"] == line["message"]


def test_beats_fields_survive_the_merge(log_lines: list[dict]) -> None:
    container = compose_container("collector")
    event = ship_line(log_lines[0], "collector")
    assert event["log"]["file"]["path"].startswith(f"{DOCKER_ROOT}/{container['id']}/")
    assert event["log"]["offset"] == 0
    assert event["stream"] == "stdout"
    assert event["container"]["name"] == container["name"]
    assert event["container"]["labels"]["com_docker_compose_service"] == "collector"
    assert event["container"]["image"]["name"] == "tagwatch:local"


def test_collector_lines_keep_tag_and_numbers(log_lines: list[dict]) -> None:
    wait = next(line for line in log_lines if line.get("event.action") == "rate_limit_wait")
    event = ship_line(wait, "collector")
    assert event["labels"]["tag"] == wait["labels.tag"]
    assert event["log"]["level"] == "warning"
    assert isinstance(event["tagwatch"]["wait_seconds"], float)
    page = next(line for line in log_lines if line.get("event.action") == "page_stored")
    event = ship_line(page, "collector")
    assert event["tagwatch"]["posts_new"] == page["tagwatch.posts_new"]
    assert event["event"]["action"] == "page_stored"


def test_partial_docker_lines_are_joined_before_decoding(log_lines: list[dict]) -> None:
    line = dict(log_lines[0], message="x" * 40_000)
    docker_lines = docker_json_file(json.dumps(line))
    assert len(docker_lines) == 3
    (event,) = ship(compose_container("api"), docker_lines)
    assert event.pipeline_errors == []
    assert event["message"] == "x" * 40_000


def test_non_json_output_of_a_tagwatch_container_is_kept_as_text() -> None:
    (event,) = ship(compose_container("api"), docker_json_file("Traceback (most recent call last):"))
    assert event["message"] == "Traceback (most recent call last):\n"
    assert event["error"]["message"].startswith("parsing input as JSON")


def test_other_containers_json_is_not_decoded() -> None:
    es_line = json.dumps(
        {"@timestamp": "2026-11-23T12:00:00.000Z", "log.level": "INFO", "message": "started"}
    )
    (event,) = ship(compose_container("elasticsearch"), docker_json_file(es_line))
    assert event["message"] == es_line + "\n"
    assert "level" not in event["log"]


def test_emulation_reports_key_conflicts() -> None:
    (event,) = ship(compose_container("api"), docker_json_file('{"error": "x", "error.type": "y"}'))
    assert event.pipeline_errors and "conflicting" in event.pipeline_errors[0]


def test_append_fields_type_every_tagwatch_field(log_lines: list[dict]) -> None:
    declared = {f["name"]: f["type"] for f in CONFIG["setup.template.append_fields"]}
    seen: dict[str, set[str]] = {}
    for line in log_lines:
        for key, value in line.items():
            if key.startswith("tagwatch.") and value is not None:
                kind = (
                    "keyword" if isinstance(value, str) else "double" if isinstance(value, float) else "long"
                )
                seen.setdefault(key, set()).add(kind)
    assert set(seen) <= set(declared), f"tagwatch fields without a template type: {set(seen) - set(declared)}"
    for key, kinds in seen.items():
        allowed = {"long", "double"} if declared[key] == "double" else {declared[key]}
        assert kinds <= allowed, f"{key}: values of type {kinds} but the template says {declared[key]}"


def test_compose_gives_filebeat_the_docker_logs_and_socket_read_only() -> None:
    spec = COMPOSE["services"]["filebeat"]
    volumes = set(spec["volumes"])
    assert "./filebeat/filebeat.yml:/usr/share/filebeat/filebeat.yml:ro" in volumes
    assert f"{DOCKER_ROOT}:{DOCKER_ROOT}:ro" in volumes
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in volumes
    assert spec["user"] == "root"


def test_output_writes_as_the_filebeat_writer_unless_setup_says_otherwise() -> None:
    # The running Beat gets no ES_USERNAME (test_compose.py), so it is the writer created by setup.
    output = CONFIG["output.elasticsearch"]
    assert output["username"] == "${ES_USERNAME:filebeat_internal}"
    assert output["password"] == "${ES_PASSWORD}"
    assert "filebeat_internal" in (REPO / "setup" / "elasticsearch.sh").read_text()
