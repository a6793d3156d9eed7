"""The manifests against the application they deploy: routes and ports, environment variables,
pinned images, one collector, and the observability wiring."""

from __future__ import annotations

import ast
import base64
import copy
import ipaddress
import re
from collections.abc import Iterator

import pytest
import yaml
from manifests import (
    K8S,
    REPO,
    container,
    container_env,
    find,
    one,
    port_number,
    render,
    secret_template_keys,
    workloads,
)
from tagwatch.app import create_app
from tagwatch.config import Settings

PACKAGE = REPO / "application" / "tagwatch"
# Set by the manifests before the application reads them (none today). Drop a name here once the app reads it.
AHEAD_OF_THE_APP: set[str] = set()
# The postgres overlays take TAGWATCH_DATABASE_URL from a Secret the tests only see as a placeholder;
# the application's own validation checks them with this sample URL instead.
SAMPLE_DATABASE_URL = "postgresql://tagwatch:sample-password@tagwatch-db:5432/tagwatch"
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
ENVIRON_NAMES = {"env", "environ", "os.environ"}


def _is_environ(node: ast.AST) -> bool:
    return ast.unparse(node) in ENVIRON_NAMES


def _names_in_call(call: ast.Call) -> Iterator[str]:
    func = call.func
    # os.environ.get("X") / env.get("X") / os.environ.setdefault("X", ...) / os.getenv("X")
    on_environ = isinstance(func, ast.Attribute) and _is_environ(func.value)
    if on_environ or ast.unparse(func) == "os.getenv":
        args = call.args[:1]
    # helpers called with the mapping, then the name, as config.py does: _int(env, "PORT", 8000, ...)
    else:
        args = [b for a, b in zip(call.args, call.args[1:], strict=False) if _is_environ(a)]
    for arg in args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and ENV_NAME.match(arg.value):
            yield arg.value


def app_env_vars() -> set[str]:
    """Every environment variable the tagwatch package reads, found in its source (so variables
    added later by anyone are picked up): lookups on os.environ or an `env` mapping, and names
    passed to helpers together with that mapping."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                names.update(_names_in_call(node))
            elif (
                isinstance(node, ast.Subscript)
                and _is_environ(node.value)
                and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str)
            ):
                names.add(node.slice.value)
    return names


class _RecordingEnv(dict):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)


def documented_not_set() -> set[str]:
    """Variables README.md lists under "Variables the manifests leave unset"."""
    readme = (K8S / "README.md").read_text()
    section = readme.split("### Variables the manifests leave unset", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.M))


def tagwatch_containers(objects: list[dict]) -> dict[str, dict]:
    """The api and collector containers of an overlay."""
    return {
        "api": container(one(objects, "Deployment", "tagwatch-api")["spec"]["template"], "api"),
        "collector": container(
            one(objects, "Deployment", "tagwatch-collector")["spec"]["template"], "collector"
        ),
    }


def test_source_scan_finds_every_variable_config_reads() -> None:
    recorder = _RecordingEnv()
    Settings.from_env(recorder)
    found = app_env_vars()
    assert recorder.asked <= found, f"the scan missed {recorder.asked - found}"
    assert {"PORT", "TAGWATCH_METRICS_PORT", "PROMETHEUS_MULTIPROC_DIR"} <= found


def test_every_variable_the_app_reads_is_set_or_documented(objects: list[dict]) -> None:
    set_here = set().union(*(container_env(objects, c) for c in tagwatch_containers(objects).values()))
    missing = app_env_vars() - set_here - documented_not_set()
    assert missing == set(), (
        f"{sorted(missing)}: set them in base/configmap.yaml (or secret.example.yaml for secrets), or list "
        "them in README.md under 'Variables the manifests leave unset' with the reason"
    )


def test_documented_unset_variables_are_really_read_by_the_app() -> None:
    assert documented_not_set() <= app_env_vars()


def test_every_variable_the_manifests_set_is_read_by_the_app(objects: list[dict]) -> None:
    set_here = set().union(*(container_env(objects, c) for c in tagwatch_containers(objects).values()))
    unread = set_here - app_env_vars() - AHEAD_OF_THE_APP
    assert unread == set(), f"{sorted(unread)}: the app never reads them (misspelt, or no longer a setting)"


def app_env(objects: list[dict], spec: dict) -> dict[str, str]:
    """The container's environment as the app sees it: on the postgres overlays (no TAGWATCH_DB), the
    Secret's TAGWATCH_DATABASE_URL placeholder becomes SAMPLE_DATABASE_URL."""
    env = container_env(objects, spec)
    if "TAGWATCH_DB" not in env:
        assert "TAGWATCH_DATABASE_URL" in env, "a postgres overlay must set TAGWATCH_DATABASE_URL"
        env["TAGWATCH_DATABASE_URL"] = SAMPLE_DATABASE_URL
    return env


def test_container_environment_passes_the_apps_own_validation(objects: list[dict]) -> None:
    containers = tagwatch_containers(objects)
    api = Settings.from_env(app_env(objects, containers["api"]))
    collector = Settings.from_env(app_env(objects, containers["collector"]))
    for settings in (api, collector):  # SQLite on the PVC, or the PostgreSQL URL from the Secret
        assert (settings.database_url is None) == ("TAGWATCH_DB" in container_env(objects, containers["api"]))
    assert api.port == port_number(containers["api"], "http")
    assert collector.metrics_port == port_number(containers["collector"], "metrics")
    # The kubelet's probes, Prometheus and Metricbeat connect to the pod's address, not loopback.
    for settings in (api, collector):
        assert ipaddress.ip_address(settings.host).is_unspecified, settings.host


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (512Mi, 1Gi, 500M, 1048576) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity.removesuffix(suffix)) * factor)
    return int(quantity)


def test_the_api_workers_caches_take_at_most_half_its_memory_limit(objects: list[dict]) -> None:
    containers = tagwatch_containers(objects)
    api = Settings.from_env(app_env(objects, containers["api"]))
    limit = memory_bytes(containers["api"]["resources"]["limits"]["memory"])
    assert api.web_concurrency * api.api_cache_bytes <= limit / 2
    assert "TAGWATCH_API_CACHE_BYTES" not in container_env(objects, containers["collector"])


def _app_routes() -> dict[str, set[str]]:
    app = create_app(Settings())
    return {rule.rule: set(rule.methods) for rule in app.url_map.iter_rules()}


def test_api_probes_hit_real_get_routes_on_the_port_the_app_listens_on(objects: list[dict]) -> None:
    api = tagwatch_containers(objects)["api"]
    port = Settings.from_env(app_env(objects, api)).port
    routes = _app_routes()
    probes = {kind: api[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert "GET" in routes.get(probe["path"], set()), f"{probe['path']} is not a GET route of the app"
        assert port_number(api, probe["port"]) == port


def ingress_backends(ingress: dict, host: str, path: str) -> list[dict]:
    """The backends an Ingress may send `path` on `host` to, by the Ingress API's matching rules:
    Exact compares the whole path, Prefix whole path elements (/api matches /api/v1, not /apix)."""
    found = []
    for rule in ingress["spec"]["rules"]:
        if rule.get("host", host) != host:
            continue
        for item in rule["http"]["paths"]:
            kind, elements = item["pathType"], [e for e in item["path"].split("/") if e]
            if kind == "Exact":
                hit = path == item["path"]
            elif kind == "Prefix":
                hit = [e for e in path.split("/") if e][: len(elements)] == elements
            else:
                raise AssertionError(f"{kind} paths mean what the controller decides; use Exact or Prefix")
            if hit:
                found.append(item["backend"])
    if not found and "defaultBackend" in ingress["spec"]:
        return [ingress["spec"]["defaultBackend"]]  # what no rule matches
    return found


def sample_path(rule: str) -> str:
    """A request path for a Flask URL rule: /api/v1/runs/<int:run_id> -> /api/v1/runs/1."""
    return re.sub(r"<(?:(\w+):)?\w+>", lambda m: "1" if m.group(1) in ("int", "float") else "x", rule)


def test_the_ingress_routes_every_route_but_the_probes_and_metrics(objects: list[dict]) -> None:
    ingress = one(objects, "Ingress", "tagwatch-api")
    api = tagwatch_containers(objects)["api"]
    monitor = one(objects, "ServiceMonitor", "tagwatch-api")
    internal = {api[kind]["httpGet"]["path"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    internal |= {endpoint["path"] for endpoint in monitor["spec"]["endpoints"]}
    assert {"/metrics", "/healthz", "/readyz"} <= internal
    to_api = {"service": {"name": "tagwatch-api", "port": {"name": "http"}}}
    [host] = [rule["host"] for rule in ingress["spec"]["rules"]]
    for rule in _app_routes():
        path = sample_path(rule)
        backends = ingress_backends(ingress, host, path)
        if rule in internal:
            assert backends == [], f"the Ingress exposes {rule}"
            assert ingress_backends(ingress, host, rule + "/") == [], f"the Ingress exposes {rule}/"
        else:
            assert backends and all(b == to_api for b in backends), f"{path} is not routed to the API"


@pytest.mark.parametrize(
    ("path", "ingress_path", "kind", "hit"),
    [
        ("/", "/", "Exact", True),
        ("/metrics", "/", "Exact", False),
        ("/metrics", "/", "Prefix", True),
        ("/api/v1/tags", "/api", "Prefix", True),
        ("/api", "/api/", "Prefix", True),
        ("/apix", "/api", "Prefix", False),
        ("/static/app.js", "/static", "Prefix", True),
    ],
)
def test_ingress_matching_follows_the_ingress_api(path: str, ingress_path: str, kind: str, hit: bool) -> None:
    backend = {"service": {"name": "s", "port": {"number": 1}}}
    ingress = {
        "spec": {
            "rules": [{"http": {"paths": [{"path": ingress_path, "pathType": kind, "backend": backend}]}}]
        }
    }
    assert (ingress_backends(ingress, "h", path) == [backend]) is hit


def test_the_api_runs_the_images_own_command(objects: list[dict]) -> None:
    # The image's CMD is gunicorn with tagwatch.gunicorn_conf (bind, workers, gevent, the metrics
    # folder); a command here would drift from it.
    api = tagwatch_containers(objects)["api"]
    assert "command" not in api and "args" not in api


def test_collector_probes_its_metrics_port(objects: list[dict]) -> None:
    collector = tagwatch_containers(objects)["collector"]
    port = Settings.from_env(app_env(objects, collector)).metrics_port
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert collector[kind]["httpGet"]["path"] == "/metrics"
        assert port_number(collector, collector[kind]["httpGet"]["port"]) == port


def test_services_and_monitors_point_at_named_container_ports(objects: list[dict]) -> None:
    for component, port_name in (("api", "http"), ("collector", "metrics")):
        service = one(objects, "Service", f"tagwatch-{component}")
        spec = tagwatch_containers(objects)[component]
        assert [p["targetPort"] for p in service["spec"]["ports"]] == [port_name]
        port_number(spec, port_name)
        monitor = one(objects, "ServiceMonitor", f"tagwatch-{component}")
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == [
            p["name"] for p in service["spec"]["ports"]
        ]
        assert all(e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])
    assert "GET" in _app_routes()["/metrics"]


def test_prometheus_jobs_are_the_ones_the_rules_select(objects: list[dict]) -> None:
    # The Prometheus Operator names a ServiceMonitor's job after the Service (or its jobLabel).
    jobs = set()
    for monitor in find(objects, "ServiceMonitor"):
        services = [
            s
            for s in find(objects, "Service")
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        label = monitor["spec"].get("jobLabel")
        jobs |= {s["metadata"]["labels"][label] if label else s["metadata"]["name"] for s in services}
    rules = (REPO / "prometheus" / "rules" / "tagwatch.yml").read_text()
    assert set(re.findall(r'job="([^"]+)"', rules)) == jobs


# The labels the Prometheus Operator gives each target of a ServiceMonitor before its relabelings.
OPERATOR_TARGET_LABELS = ("namespace", "service", "pod", "container", "endpoint", "job")


def relabel(relabelings: list[dict], labels: dict[str, str]) -> dict[str, str]:
    """Prometheus relabeling of a target's labels, for the actions used here (replace, labeldrop)."""
    labels = dict(labels)
    for step in relabelings:
        action, regex = step.get("action", "replace").lower(), re.compile(step.get("regex", "(.*)"))
        if action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not regex.fullmatch(k)}
        elif action == "replace":
            value = step.get("separator", ";").join(labels.get(s, "") for s in step.get("sourceLabels", []))
            match = regex.fullmatch(value)
            if match:
                replacement = re.sub(r"\$\{?(\d+)\}?", r"\\\1", step.get("replacement", "$1"))
                labels[step["targetLabel"]] = match.expand(replacement)
        else:
            raise AssertionError(f"the test does not model the relabel action {action!r}")
    return labels


def target_labels(endpoint: dict, pod: str, address: str) -> dict[str, str]:
    """The labels Prometheus stores for one pod's target of a ServiceMonitor endpoint."""
    labels = {name: f"<{name}>" for name in OPERATOR_TARGET_LABELS}
    labels |= {"pod": pod, "__meta_kubernetes_pod_name": pod, "__address__": address}
    labels = relabel(endpoint.get("relabelings", []), labels)
    labels.setdefault("instance", labels["__address__"])
    return {k: v for k, v in labels.items() if not k.startswith("__")}


def test_only_instance_tells_the_targets_of_a_job_apart_as_the_rules_assume(objects: list[dict]) -> None:
    rules = (REPO / "prometheus" / "rules" / "tagwatch.yml").read_text()
    assert any("instance" in labels for labels in re.findall(r"without \(([^)]*)\)", rules))
    for monitor in find(objects, "ServiceMonitor"):
        for endpoint in monitor["spec"]["endpoints"]:
            one_pod = target_labels(endpoint, "tagwatch-7d9f-abcde", "10.0.0.1:8000")
            other = target_labels(endpoint, "tagwatch-7d9f-fghij", "10.0.0.2:8000")
            differing = {k for k in one_pod.keys() | other.keys() if one_pod.get(k) != other.get(k)}
            assert differing == {"instance"}, monitor["metadata"]["name"]


def test_the_target_label_model_sees_the_operators_pod_label() -> None:
    one_pod = target_labels({"port": "http"}, "a", "10.0.0.1:8000")
    assert one_pod["pod"] == "a" and one_pod["instance"] == "10.0.0.1:8000"


def images(objects: list[dict]) -> list[str]:
    """Every container image an overlay names, including the CloudNativePG image."""
    found = [
        c["image"]
        for _, t in workloads(objects)
        for c in t["spec"].get("containers", []) + t["spec"].get("initContainers", [])
    ]
    found += [o["spec"]["imageName"] for o in find(objects, "Cluster") if "imageName" in o["spec"]]
    return found


def unpinned(image: str) -> bool:
    """True unless the image names a digest or a version tag (not latest)."""
    if "@sha256:" in image:
        return False
    name, _, tag = image.rpartition(":")
    return not name or "/" in tag or tag in ("", "latest")


def test_every_image_is_pinned(objects: list[dict]) -> None:
    assert images(objects), "no images found"
    assert [i for i in images(objects) if unpinned(i)] == []
    tagwatch = {c["image"] for c in tagwatch_containers(objects).values()}
    assert tagwatch == {"ghcr.io/your-org/tagwatch:0.2.0"}, (
        "the kustomize images: entry must rewrite `tagwatch`"
    )


@pytest.mark.parametrize(
    ("image", "bad"),
    [
        ("tagwatch", True),
        ("x/tagwatch:latest", True),
        ("localhost:5000/tagwatch", True),
        ("x/tagwatch:0.2.0", False),
        ("x/tagwatch@sha256:" + "a" * 64, False),
    ],
)
def test_unpinned_recognises_floating_images(image: str, bad: bool) -> None:
    assert unpinned(image) is bad


def elastic_version() -> str:
    return re.search(r"^ELASTIC_VERSION=(\S+)$", (REPO / ".env.example").read_text(), re.M).group(1)


def test_elastic_stack_uses_the_projects_one_elastic_version(objects: list[dict]) -> None:
    versions = {
        o["spec"]["version"] for o in objects if o["apiVersion"].split("/")[0].endswith("k8s.elastic.co")
    }
    versions |= {i.rpartition(":")[2] for i in images(objects) if i.startswith("docker.elastic.co/")}
    assert versions == {elastic_version()}


def collector_scaling_problems(objects: list[dict]) -> list[str]:
    """Why the manifests might ever run more than one collector (empty: they cannot)."""
    problems = []
    runs_collect = [
        (o, t)
        for o, t in workloads(objects)
        if any("collect" in (c.get("command", []) + c.get("args", [])) for c in t["spec"]["containers"])
    ]
    names = [o["metadata"]["name"] for o, _ in runs_collect]
    if names != ["tagwatch-collector"]:
        problems.append(f"workloads running `tagwatch collect`: {names}")
    for obj, template in runs_collect:
        if obj["kind"] != "Deployment" or obj["spec"].get("replicas") != 1:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']} is not a Deployment with replicas: 1")
        if obj["spec"].get("strategy", {}).get("type") != "Recreate":
            problems.append(f"{obj['metadata']['name']} does not use strategy Recreate")
        labels = template["metadata"]["labels"].items()
        for scaler in objects:
            target = scaler.get("spec", {}).get("scaleTargetRef", {})
            if target.get("name") == obj["metadata"]["name"]:
                problems.append(f"{scaler['kind']}/{scaler['metadata']['name']} scales the collector")
        for pdb in find(objects, "PodDisruptionBudget"):
            if pdb["spec"]["selector"].get("matchLabels", {}).items() <= labels:
                problems.append(f"PodDisruptionBudget/{pdb['metadata']['name']} selects the collector")
    return problems


def test_collector_can_never_exceed_one(objects: list[dict]) -> None:
    assert collector_scaling_problems(objects) == []


@pytest.mark.parametrize("breakage", ["replicas", "rolling", "hpa", "second", "pdb"])
def test_collector_check_catches_each_way_to_scale_it(breakage: str) -> None:
    objects = render("postgres")
    collector = one(objects, "Deployment", "tagwatch-collector")
    if breakage == "replicas":
        collector["spec"]["replicas"] = 2
    elif breakage == "rolling":
        collector["spec"]["strategy"] = {"type": "RollingUpdate"}
    elif breakage == "hpa":
        hpa = copy.deepcopy(one(objects, "HorizontalPodAutoscaler", "tagwatch-api"))
        hpa["spec"]["scaleTargetRef"]["name"] = "tagwatch-collector"
        objects.append(hpa)
    elif breakage == "second":
        second = copy.deepcopy(collector)
        second["metadata"]["name"] = "tagwatch-collector-2"
        objects.append(second)
    else:
        pdb = copy.deepcopy(one(objects, "PodDisruptionBudget", "tagwatch-api"))
        pdb["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/component": "collector"}
        objects.append(pdb)
    assert collector_scaling_problems(objects) != []


def test_only_the_api_gets_the_multiprocess_metrics_folder_on_an_emptydir(objects: list[dict]) -> None:
    containers = tagwatch_containers(objects)
    assert "PROMETHEUS_MULTIPROC_DIR" not in container_env(objects, containers["collector"])
    folder = container_env(objects, containers["api"])["PROMETHEUS_MULTIPROC_DIR"]
    pod = one(objects, "Deployment", "tagwatch-api")["spec"]["template"]["spec"]
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    mounts = {m["mountPath"]: m["name"] for m in containers["api"]["volumeMounts"]}
    assert mounts.get(folder) in empty_dirs
    assert mounts.get("/tmp") in empty_dirs  # noqa: S108 (the pod's /tmp, not this machine's)


def test_tagwatch_pods_meet_the_restricted_pod_security_level(objects: list[dict]) -> None:
    for obj, template in workloads(objects):
        if obj["metadata"]["name"] not in ("tagwatch-api", "tagwatch-collector", "tagwatch-kibana-setup"):
            continue
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for spec in pod["containers"]:
            ctx = spec["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert spec["resources"]["requests"] and spec["resources"]["limits"]


def test_api_has_the_shape_the_issue_asks_for_outside_sqlite() -> None:
    for overlay in ("postgres", "postgres-cnpg"):
        objects = render(overlay)
        api = one(objects, "Deployment", "tagwatch-api")
        hpa = one(objects, "HorizontalPodAutoscaler", "tagwatch-api")
        assert api["spec"]["replicas"] >= 2 and hpa["spec"]["minReplicas"] >= 2
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert one(objects, "PodDisruptionBudget", "tagwatch-api")["spec"]["maxUnavailable"] == 1


def test_sqlite_overlay_keeps_both_pods_on_the_volumes_node() -> None:
    objects = render("sqlite")
    assert find(objects, "HorizontalPodAutoscaler") == [] and find(objects, "PodDisruptionBudget") == []
    assert one(objects, "PersistentVolumeClaim", "tagwatch-data")["spec"]["accessModes"] == ["ReadWriteOnce"]
    api_env = container_env(objects, tagwatch_containers(objects)["api"])
    assert one(objects, "Deployment", "tagwatch-api")["spec"]["replicas"] == 1
    for name in ("tagwatch-api", "tagwatch-collector"):
        template = one(objects, "Deployment", name)["spec"]["template"]
        pod = template["spec"]
        claims = {
            v["name"]
            for v in pod["volumes"]
            if v.get("persistentVolumeClaim", {}).get("claimName") == "tagwatch-data"
        }
        mount = next(m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if m["name"] in claims)
        assert Settings.from_env(api_env).db_path.startswith(mount + "/")
        [term] = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        # Each pod matches the term itself, so the first may start alone and the other follows.
        assert term["labelSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()


def test_postgres_overlays_take_the_database_url_from_a_secret() -> None:
    assert "TAGWATCH_DATABASE_URL" in secret_template_keys()
    objects = render("postgres-cnpg")
    for spec in tagwatch_containers(objects).values():
        [ref] = [e for e in spec["env"] if e["name"] == "TAGWATCH_DATABASE_URL"]
        assert ref["valueFrom"]["secretKeyRef"] == {"name": "tagwatch-db-app", "key": "uri"}
    cluster = one(objects, "Cluster", "tagwatch-db")
    assert cluster["spec"]["bootstrap"]["initdb"]["database"] == "tagwatch"
    for overlay in ("postgres", "postgres-cnpg"):
        assert find(render(overlay), "PersistentVolumeClaim") == []


def beat_config(objects: list[dict], beat: str) -> dict:
    """The beat.yml a Beat runs with, decoded from the rendered Secret its configRef names."""
    secret = one(objects, "Beat", beat)["spec"]["configRef"]["secretName"]
    return yaml.safe_load(base64.b64decode(one(objects, "Secret", secret)["data"]["beat.yml"]))


def pod_fields(labels: dict[str, str]) -> dict[str, str]:
    """The fields a Kubernetes autodiscover event has for a pod's labels (dots in keys become _)."""
    return {f"kubernetes.labels.{k.replace('.', '_')}": v for k, v in labels.items()}


def condition_holds(condition: dict, fields: dict[str, str]) -> bool:
    """A Beats condition, with the operators the Beats configs here use, on an event's fields."""
    [(operator, argument)] = condition.items()
    if operator == "equals":
        return all(fields.get(k) == v for k, v in argument.items())
    if operator == "has_fields":
        return all(k in fields for k in argument)
    if operator == "not":
        return not condition_holds(argument, fields)
    raise AssertionError(f"the test does not model the condition {operator!r}")


def resolve(text: str, data: dict[str, str]) -> str:
    """`text` with each ${data.X} replaced from an autodiscover event's data (missing: fails)."""

    def value(match: re.Match) -> str:
        assert match.group(1) in data, f"{match.group(0)} is not in the event"
        return data[match.group(1)]

    return re.sub(r"\$\{data\.([^}]+)\}", value, text)


def matching_templates(provider: dict, labels: dict[str, str]) -> list[dict]:
    """The autodiscover templates that start for a pod with these labels."""
    return [t for t in provider["templates"] if condition_holds(t["condition"], pod_fields(labels))]


def test_filebeat_decodes_the_json_lines_of_both_tagwatch_pods(objects: list[dict]) -> None:
    [provider] = beat_config(objects, "tagwatch-filebeat")["filebeat.autodiscover"]["providers"]
    assert provider["type"] == "kubernetes" and provider["namespace"] == "${POD_NAMESPACE}"
    for name in ("tagwatch-api", "tagwatch-collector"):
        labels = one(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        [template] = matching_templates(provider, labels)
        [config] = template["config"]
        assert any("decode_json_fields" in p for p in config["processors"]), f"{name}: logs not decoded"


def test_metricbeat_scrapes_each_tagwatch_pod_on_the_port_the_app_serves_metrics_on(
    objects: list[dict],
) -> None:
    [provider] = beat_config(objects, "tagwatch-metricbeat")["metricbeat.autodiscover"]["providers"]
    assert provider["type"] == "kubernetes" and provider["namespace"] == "${POD_NAMESPACE}"
    for component, spec in tagwatch_containers(objects).items():
        labels = one(objects, "Deployment", f"tagwatch-{component}")["spec"]["template"]["metadata"]["labels"]
        settings = Settings.from_env(app_env(objects, spec))
        port = settings.port if component == "api" else settings.metrics_port
        assert port in {p["containerPort"] for p in spec["ports"]}
        data = {"host": "10.1.2.3", **pod_fields(labels)}
        [template] = matching_templates(provider, labels)
        [module] = template["config"]
        assert [resolve(h, data) for h in module["hosts"]] == [f"10.1.2.3:{port}"], component
        assert module["metrics_path"] == "/metrics"
    setup = one(objects, "Job", "tagwatch-kibana-setup")["spec"]["template"]["metadata"]["labels"]
    assert matching_templates(provider, setup) == [], "Metricbeat would scrape the Kibana setup Job"
