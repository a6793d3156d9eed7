"""The NetworkPolicies, evaluated the way the API documents them: each flow the stack needs is
allowed, and what it does not need is denied by the default-deny policy.

Pods outside the manifests are described by the labels their operators give them (ECK, CloudNativePG,
kube-dns, Prometheus in "monitoring"): the assumptions README.md lists for you to adapt."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest
from manifests import NAMESPACE, find, one, render

EXTERNAL_IP = "203.0.113.10"  # documentation range: some address outside the cluster


@dataclass(frozen=True)
class Pod:
    """A pod (namespace and labels) or, with `ip`, an address outside the cluster."""

    namespace: str | None
    labels: dict[str, str] = field(default_factory=dict)
    ip: str | None = None


def tagwatch_pod(objects: list[dict], deployment: str) -> Pod:
    return Pod(NAMESPACE, one(objects, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"])


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if (op == "In" and value not in expr["values"]) or (op == "NotIn" and value in expr["values"]):
            return False
        if (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


def _peer_matches(peer: dict, policy_namespace: str, pod: Pod) -> bool:
    if "ipBlock" in peer:
        if pod.ip is None:
            return False  # cluster pods are matched by selectors in these policies
        block = peer["ipBlock"]
        address = ipaddress.ip_address(pod.ip)
        inside = address.version == ipaddress.ip_network(
            block["cidr"]
        ).version and address in ipaddress.ip_network(block["cidr"])
        return inside and not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
    if pod.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": pod.namespace}):
            return False
    elif pod.namespace != policy_namespace:
        return False
    return _selects(peer.get("podSelector", {}), pod.labels)


def _direction_allows(objects: list[dict], pod: Pod, other: Pod, port: int, direction: str) -> bool:
    """Whether `pod`'s policies let traffic to (egress) or from (ingress) `other` on `port`."""
    if pod.namespace != NAMESPACE:
        return True  # only tagwatch's namespace is under these policies
    kind = direction.capitalize()
    policies = [
        p
        for p in find(objects, "NetworkPolicy")
        if kind in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not policies:
        return True
    peers_key = "to" if direction == "egress" else "from"
    for policy in policies:
        for rule in policy["spec"].get(direction, []):
            ports_ok = "ports" not in rule or any(p.get("port") == port for p in rule["ports"])
            peers = rule.get(peers_key)
            peers_ok = peers is None or any(_peer_matches(peer, NAMESPACE, other) for peer in peers)
            if ports_ok and peers_ok:
                return True
    return False


def allowed(objects: list[dict], source: Pod, destination: Pod, port: int) -> bool:
    """A connection needs the source's egress and the destination's ingress."""
    return _direction_allows(objects, source, destination, port, "egress") and _direction_allows(
        objects, destination, source, port, "ingress"
    )


PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
INGRESS_CONTROLLER = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
OTHER_TENANT = Pod("someone-else", {"app": "curious"})
KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"})
INTERNET = Pod(None, ip=EXTERNAL_IP)
ES = Pod(
    NAMESPACE,
    {"common.k8s.elastic.co/type": "elasticsearch", "elasticsearch.k8s.elastic.co/cluster-name": "tagwatch"},
)
KIBANA = Pod(NAMESPACE, {"common.k8s.elastic.co/type": "kibana", "kibana.k8s.elastic.co/name": "tagwatch"})
FILEBEAT = Pod(
    NAMESPACE, {"common.k8s.elastic.co/type": "beat", "beat.k8s.elastic.co/name": "tagwatch-filebeat"}
)
METRICBEAT = Pod(
    NAMESPACE, {"common.k8s.elastic.co/type": "beat", "beat.k8s.elastic.co/name": "tagwatch-metricbeat"}
)
ECK_OPERATOR = Pod("elastic-system", {"control-plane": "elastic-operator"})
DATABASE = Pod(NAMESPACE, {"cnpg.io/cluster": "tagwatch-db", "cnpg.io/instanceRole": "primary"})
CNPG_OPERATOR = Pod("cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"})


def test_the_flows_every_overlay_needs_are_allowed(objects: list[dict]) -> None:
    api, collector = tagwatch_pod(objects, "tagwatch-api"), tagwatch_pod(objects, "tagwatch-collector")
    setup = Pod(
        NAMESPACE, one(objects, "Job", "tagwatch-kibana-setup")["spec"]["template"]["metadata"]["labels"]
    )
    flows = [
        (INGRESS_CONTROLLER, api, 8000),
        (PROMETHEUS, api, 8000),
        (PROMETHEUS, collector, 9108),
        (collector, INTERNET, 443),
        (api, KUBE_DNS, 53),
        (collector, KUBE_DNS, 53),
        (FILEBEAT, KUBE_DNS, 53),
        (METRICBEAT, api, 8000),
        (METRICBEAT, collector, 9108),
        (FILEBEAT, ES, 9200),
        (METRICBEAT, ES, 9200),
        (KIBANA, ES, 9200),
        (ES, ES, 9300),
        (ECK_OPERATOR, ES, 9200),
        (ECK_OPERATOR, KIBANA, 5601),
        (setup, KIBANA, 5601),
        (FILEBEAT, INTERNET, 443),
    ]
    assert [f for f in flows if not allowed(objects, *f)] == []


def test_everything_else_is_denied(objects: list[dict]) -> None:
    api, collector = tagwatch_pod(objects, "tagwatch-api"), tagwatch_pod(objects, "tagwatch-collector")
    flows = [
        (OTHER_TENANT, collector, 9108),
        (INGRESS_CONTROLLER, collector, 9108),
        (collector, INTERNET, 80),
        (api, INTERNET, 22),
        (OTHER_TENANT, ES, 9200),
        (OTHER_TENANT, KIBANA, 5601),
        (api, ES, 9200),
        (collector, KIBANA, 5601),
        (ES, INTERNET, 443),
        (KIBANA, INTERNET, 443),
        (api, collector, 9108),
    ]
    assert [f for f in flows if allowed(objects, *f)] == []


def test_the_api_reaches_no_internet_address_but_its_database(objects: list[dict], overlay: str) -> None:
    # POST /api/v1/collect records a run request that the collector picks up: the API calls no source.
    api = tagwatch_pod(objects, "tagwatch-api")
    named = {
        port["port"]
        for policy in find(objects, "NetworkPolicy")
        for rule in policy["spec"].get("egress", [])
        for port in rule.get("ports", [])
    }
    # Every port a policy names, and port 1 for a rule that names none (it allows every port).
    reachable = {p for p in named | {1, 80, 443} if allowed(objects, api, INTERNET, p)}
    # A managed PostgreSQL's address is unknown here (README: narrow it to an ipBlock).
    assert reachable == (set() if overlay == "sqlite" else {5432})


def test_database_flows_follow_the_overlay() -> None:
    sqlite, postgres, cnpg = render("sqlite"), render("postgres"), render("postgres-cnpg")
    managed_db = Pod(None, ip="198.51.100.7")
    assert not allowed(sqlite, tagwatch_pod(sqlite, "tagwatch-collector"), managed_db, 5432)
    for name in ("tagwatch-api", "tagwatch-collector"):
        assert allowed(postgres, tagwatch_pod(postgres, name), managed_db, 5432)
        assert allowed(cnpg, tagwatch_pod(cnpg, name), DATABASE, 5432)
    assert allowed(cnpg, DATABASE, DATABASE, 5432)
    assert allowed(cnpg, CNPG_OPERATOR, DATABASE, 8000)
    assert not allowed(cnpg, OTHER_TENANT, DATABASE, 5432)
    assert not allowed(cnpg, KIBANA, DATABASE, 5432)


@pytest.mark.parametrize("policy", ["default-deny", "tagwatch-prometheus-scrape", "tagwatch-sources-egress"])
def test_the_evaluator_notices_a_missing_policy(policy: str) -> None:
    objects = render("sqlite")
    collector = tagwatch_pod(objects, "tagwatch-collector")
    # The setup Job's pod has an egress policy only: default-deny alone keeps its ingress closed.
    setup = Pod(
        NAMESPACE, one(objects, "Job", "tagwatch-kibana-setup")["spec"]["template"]["metadata"]["labels"]
    )
    flow = {
        "default-deny": (OTHER_TENANT, setup, 8080),
        "tagwatch-prometheus-scrape": (PROMETHEUS, collector, 9108),
        "tagwatch-sources-egress": (collector, INTERNET, 443),
    }[policy]
    expected = allowed(objects, *flow)
    without = [o for o in objects if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == policy)]
    assert allowed(without, *flow) is not expected
