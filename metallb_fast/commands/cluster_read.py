"""What `metallb-fast status` reads from a running cluster (read-only): the objects the planner takes, as
manifests would hold them, the speakers' ServiceL2Status objects, and the layer-2 counters on the speakers'
metrics endpoints.

RBAC it needs (README, "metallb-fast status"): get/list on services, namespaces, nodes and pods (core),
endpointslices (discovery.k8s.io), and the metallb.io config kinds and servicel2statuses of the namespace.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from metallb_fast.k8s.client import Json, KubeClient
from metallb_fast.k8s.configsource import CONFIG_RESOURCES
from metallb_fast.speaker.loop import endpoint_slice_resource
from metallb_fast.vocabulary import CORE_V1_PATH, METALLB_V1BETA1_PATH

SPEAKER_LABELS = "app=metallb,component=speaker"  # the speaker Pods' labels in deploy/ and MetalLB's manifest
REQUESTS = "metallb_layer2_requests_received"
RESPONSES = "metallb_layer2_responses_sent"


def _items(client: KubeClient, path: str, api_version: str, kind: str, **query: str) -> list[Json]:
    """A LIST's items, each with the apiVersion and kind a manifest carries (core lists leave them out)."""
    return [{**item, "apiVersion": api_version, "kind": kind} for item in client.get(path, **query).get("items") or []]


def cluster_documents(client: KubeClient, namespace: str) -> list[Json]:
    """Every object build_plan reads, from the cluster: Services, Namespaces, Nodes, EndpointSlices, and the
    metallb.io configuration of `namespace`."""
    slices = endpoint_slice_resource(client)
    documents = [
        *_items(client, f"{CORE_V1_PATH}/namespaces", "v1", "Namespace"),
        *_items(client, f"{CORE_V1_PATH}/nodes", "v1", "Node"),
        *_items(client, slices.path, slices.group_version_path.removeprefix("/apis/"), "EndpointSlice"),
    ]
    for group_version_path, plural in CONFIG_RESOURCES:
        found = client.get(f"{group_version_path}/namespaces/{namespace}/{plural}").get("items") or []
        documents.extend(found)  # custom resources are listed with their apiVersion and kind
    documents.extend(_items(client, f"{CORE_V1_PATH}/services", "v1", "Service"))
    return documents


@dataclass(frozen=True)
class L2Status:
    """One ServiceL2Status: a speaker's word that it announces the Service, and on which interfaces."""

    node: str
    interfaces: tuple[str, ...]  # () = every interface


def l2_statuses(client: KubeClient, namespace: str) -> dict[str, list[L2Status]]:
    """Service key (namespace/name) -> the ServiceL2Status objects naming it (more than one during a failover)."""
    found: dict[str, list[L2Status]] = {}
    for item in client.get(f"{METALLB_V1BETA1_PATH}/namespaces/{namespace}/servicel2statuses").get("items") or []:
        status = item.get("status") or {}
        key = f"{status.get('serviceNamespace')}/{status.get('serviceName')}"
        interfaces = tuple(i.get("name", "") for i in status.get("interfaces") or [])
        found.setdefault(key, []).append(L2Status(str(status.get("node") or "?"), interfaces))
    return found


@dataclass
class Scraped:
    """Per node, the layer-2 counters of its speaker by address: (requests received, responses sent)."""

    counters: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # speakers that could not be scraped, and why


def speaker_endpoints(client: KubeClient, namespace: str, selector: str) -> dict[str, str]:
    """node -> its speaker Pod's address (the host's: the speakers run with hostNetwork)."""
    endpoints: dict[str, str] = {}
    for pod in client.get(f"{CORE_V1_PATH}/namespaces/{namespace}/pods", labelSelector=selector).get("items") or []:
        node, ip = (pod.get("spec") or {}).get("nodeName"), (pod.get("status") or {}).get("podIP")
        if node and ip:
            endpoints[node] = ip
    return endpoints


def layer2_counters(text: str) -> dict[str, tuple[float, float]]:
    """ip -> (requests, responses) from a speaker's /metrics."""
    requests: dict[str, float] = {}
    responses: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (REQUESTS, RESPONSES) and "ip" in sample.labels:
                (requests if sample.name == REQUESTS else responses)[sample.labels["ip"]] = sample.value
    return {ip: (requests.get(ip, 0.0), responses.get(ip, 0.0)) for ip in requests.keys() | responses.keys()}


def scrape(endpoints: Mapping[str, str], nodes: Iterable[str], port: int, timeout_s: float) -> Scraped:
    """The counters of the speakers on `nodes` (the announcing ones); one that cannot be reached is named."""
    result = Scraped()
    for node in sorted(set(nodes)):
        address = endpoints.get(node)
        if address is None:
            result.problems.append(f"{node}: no speaker Pod found there")
            continue
        host = f"[{address}]" if ":" in address else address
        url = f"http://{host}:{port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                result.counters[node] = layer2_counters(response.read().decode())
        except (OSError, urllib.error.URLError, ValueError) as error:
            result.problems.append(f"{node}: {url}: {getattr(error, 'reason', error)}")
    return result
