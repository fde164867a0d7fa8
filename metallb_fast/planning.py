"""The offline planner behind `metallb-fast plan`: what the controller would do at startup, from manifests alone.

Runs the same decision code as the controller (controller/decide.py) against an allocator loaded with the
manifests' configuration, processing Services the way MetalLB's controller does after a restart: all of them,
those that already have an address first (then manifest order), again while a pass freed addresses, then each
Service whose status changed once more (its own update event), until nothing changes.
When the manifests also hold Nodes and EndpointSlices, the speaker's election then runs on the planned addresses
(speaker/explain.py): which node announces each address, and why every other node does not.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from metallb_fast import manifests
from metallb_fast.allocator import Allocator
from metallb_fast.config import Config, ConfigError, parse_config
from metallb_fast.config.parse import SERVED_VERSIONS
from metallb_fast.controller.decide import Decision, decide
from metallb_fast.controller.events import Event
from metallb_fast.controller.reprocess import frees_addresses, full_pass_order
from metallb_fast.resources import EndpointSlice, Namespace, Node, Service
from metallb_fast.speaker.explain import (
    ENDPOINT_SLICE_API_VERSIONS,
    ClusterObjectsError,
    Explanation,
    cluster_objects,
    explain,
)
from metallb_fast.vocabulary import (
    ANNOTATION_IP_ALLOCATED_FROM_POOL,
    DEFAULT_NAMESPACE,
    GROUP,
    LABEL_NAMESPACE_NAME,
    class_matches,
)

# Each round processes every Service at most once; real configurations settle in two or three.
MAX_ROUNDS = 20
# Manifests rarely carry spec.clusterIPs (the API server fills them in); the plan fills in stand-ins whose only
# use is to tell the Service's families, as the API server of a cluster with these families would.
DEFAULT_CLUSTER_FAMILIES = ("IPv4", "IPv6")
_STAND_IN = {"IPv4": "10.96.{}.{}", "IPv6": "fd00:10:96::{:x}:{:x}"}


@dataclass
class PlannedService:
    """One Service after the plan: its final state, every distinct event it got, whether we handle it."""

    service: Service
    handled: bool
    events: list[Event] = field(default_factory=list)

    @property
    def pool(self) -> str | None:
        return self.service.annotation_map.get(ANNOTATION_IP_ALLOCATED_FROM_POOL)


@dataclass
class Plan:
    valid: bool
    errors: list[str]
    warnings: list[str] = field(default_factory=list)  # metallb.io objects the programs would never read
    config: Config | None = None
    services: list[PlannedService] = field(default_factory=list)
    allocator: Allocator | None = None
    nodes: dict[str, Node] = field(default_factory=dict)  # the manifests' v1 Nodes, by name
    endpoint_slices: list[EndpointSlice] = field(default_factory=list)


def is_service(obj: Mapping[str, Any]) -> bool:
    return obj.get("apiVersion") == "v1" and obj.get("kind") == "Service"


def is_namespace(obj: Mapping[str, Any]) -> bool:
    return obj.get("apiVersion") == "v1" and obj.get("kind") == "Namespace"


def namespace_labels(objects: Iterable[Mapping[str, Any]], services: Iterable[Service]) -> dict[str, dict[str, str]]:
    """Labels of every namespace the cluster would have: those in the manifests, plus each Service's own."""
    labels: dict[str, dict[str, str]] = {}
    for obj in objects:
        if is_namespace(obj):
            namespace = Namespace.from_dict(obj)
            labels[namespace.name] = dict(namespace.labels)
    for service in services:
        labels.setdefault(service.namespace, {})
    for name, found in labels.items():
        found.setdefault(LABEL_NAMESPACE_NAME, name)  # set by the API server; selectors may use it
    return labels


def cluster_ip_families(spec: Mapping[str, Any], cluster_families: tuple[str, ...]) -> list[str]:
    """The families the API server gives a new Service: spec.ipFamilies the cluster serves, else the cluster's
    primary; PreferDualStack and RequireDualStack add the cluster's other family when it has one."""
    wanted = [f for f in spec.get("ipFamilies") or () if f in cluster_families]
    families = wanted[:1] or [cluster_families[0]]
    policy = spec.get("ipFamilyPolicy") or "SingleStack"
    if policy in ("PreferDualStack", "RequireDualStack"):
        rest = [f for f in (wanted[1:] or cluster_families) if f not in families]
        families.extend(rest[:1])
    return families


def with_cluster_ips(obj: Mapping[str, Any], number: int, cluster_families: tuple[str, ...]) -> Mapping[str, Any]:
    """The Service with stand-in spec.clusterIPs when the manifest has none (headless Services keep theirs)."""
    spec = obj.get("spec") or {}
    if spec.get("clusterIPs") or spec.get("clusterIP"):
        return obj
    high, low = divmod(number + 1, 250)
    ips = [_STAND_IN[f].format(high, low + 1) for f in cluster_ip_families(spec, cluster_families)]
    return {**obj, "spec": {**spec, "clusterIPs": ips}}


def read_by_plan(obj: Mapping[str, Any]) -> bool:
    """Is this a document the plan reads: the metallb.io configuration kinds, v1 Services, Namespaces and Nodes,
    EndpointSlices? (A metallb.io kind of an unserved version is read, and reported as a configuration error.)"""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version == "v1":
        return kind in ("Service", "Namespace", "Node")
    if kind == "EndpointSlice":
        return api_version in ENDPOINT_SLICE_API_VERSIONS
    return isinstance(api_version, str) and api_version.rpartition("/")[0] == GROUP and kind in SERVED_VERSIONS


def ignored_document_warnings(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """One warning per document the plan does not read (a Deployment, a ServiceL2Status, a misspelt kind)."""
    warnings = []
    for index, obj in enumerate(objects):
        if read_by_plan(obj):
            continue
        metadata = obj.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        what = f"{obj.get('kind') or '(no kind)'} {name or '?'} ({obj.get('apiVersion') or 'no apiVersion'})"
        close = difflib.get_close_matches(str(obj.get("kind")), [*SERVED_VERSIONS, "Service", "Node"], n=1)
        warnings.append(
            f"document {index + 1}, {what}, ignored: plan reads the metallb.io configuration kinds "
            f"({', '.join(SERVED_VERSIONS)}), v1 Services, Namespaces and Nodes, and EndpointSlices"
            + (f"; did you mean kind {close[0]}?" if close else "")
        )
    return warnings


def _apply(service: Service, decision: Decision) -> Service:
    """The Service as the API server holds it once the decision's status and annotations are written."""
    return dataclasses.replace(service, ingress_ips=decision.ingress_ips, annotations=decision.annotations)


def build_plan(
    objects: Iterable[Mapping[str, Any] | None],
    lb_class: str | None = None,
    cluster_families: tuple[str, ...] = DEFAULT_CLUSTER_FAMILIES,
    namespace: str = DEFAULT_NAMESPACE,
) -> Plan:
    """The controller's state after it settles on the objects of the manifests, read as one cluster: the
    metallb.io objects of `namespace` (the controller's --namespace), every Service, Namespace, Node and
    EndpointSlice; the items of a List as separate documents."""
    found = list(manifests.objects(objects))
    documents, ignored = manifests.in_namespace(found, namespace)
    warnings = ignored_document_warnings(found) + [i.warning(namespace) for i in ignored]
    errors: list[str] = []
    config: Config | None = None
    try:
        config = parse_config(documents)
    except ConfigError as err:
        errors.extend(str(p) for p in err.problems)
    nodes: dict[str, Node] = {}
    endpoint_slices: list[EndpointSlice] = []
    try:
        nodes, endpoint_slices = cluster_objects(documents)
    except ClusterObjectsError as err:
        errors.extend(err.problems)
    if errors or config is None:
        return Plan(valid=False, errors=errors, warnings=warnings)

    current: dict[str, Service] = {}
    for obj in documents:
        if is_service(obj):
            service = Service.from_dict(with_cluster_ips(obj, len(current), cluster_families))
            current[service.key] = service  # a later document replaces an earlier one, as kubectl apply does
    allocator = Allocator()
    allocator.set_config(config, namespace_labels(documents, current.values()))
    planned = {key: PlannedService(service, handled=True) for key, service in current.items()}

    def process(key: str) -> Decision:
        decision = decide(allocator, current[key], lb_class)
        entry = planned[key]
        entry.handled = decision.handled
        for event in decision.events:
            if event not in entry.events:  # the API server aggregates repeats into one event with a count
                entry.events.append(event)
        if decision.changed:
            current[key] = _apply(current[key], decision)
        return decision

    # What the controller does, with every write landing at once: controller/reprocess.py's policy.
    queue: list[str] = []
    full_pass = True
    for _ in range(MAX_ROUNDS):
        if not full_pass and not queue:
            break
        batch = [s.key for s in full_pass_order(current.values())] if full_pass else queue
        full_pass, queue = False, []
        for key in batch:
            decision = process(key)
            if frees_addresses(decision.result):
                full_pass = True
            if decision.changed and key not in queue:
                queue.append(key)
    else:
        return Plan(
            valid=False,
            errors=[f"the controller would not settle: Services still changing after {MAX_ROUNDS} rounds"],
            warnings=warnings,
        )

    for key, entry in planned.items():
        entry.service = current[key]
    return Plan(
        valid=True,
        errors=[],
        warnings=warnings,
        config=config,
        services=list(planned.values()),
        allocator=allocator,
        nodes=nodes,
        endpoint_slices=endpoint_slices,
    )


def unknown_nodes(plan: Plan, names: Iterable[str]) -> list[str]:
    """The names that are not a Node of the manifests, in the order given."""
    return [name for name in names if name not in plan.nodes]


def explain_plan(
    plan: Plan, lb_class: str | None = None, dead: Set[str] = frozenset(), live_nodes: Set[str] | None = None
) -> dict[str, Explanation]:
    """The speaker's view of every Service, by key, on the planned addresses. Our speakers skip a Service of
    another loadBalancerClass, as our controller does: no announcement and no reasons, only a note.
    live_nodes: the election's candidates (`status`: the Ready Nodes); None = every Node of the plan."""
    if plan.config is None:
        return {}
    explanations = {}
    for entry in plan.services:
        service = entry.service
        if class_matches(service, lb_class):
            explanations[service.key] = explain(
                service, plan.config, plan.nodes, plan.endpoint_slices, dead=dead, live_nodes=live_nodes
            )
        else:
            ours = f"loadBalancerClass {lb_class!r}" if lb_class else "no loadBalancerClass"
            theirs = service.load_balancer_class
            explanations[service.key] = Explanation(
                nobody=f"spec.loadBalancerClass is {theirs!r}, this speaker handles {ours} (--lb-class)"
                if theirs is not None
                else f"it has no spec.loadBalancerClass, this speaker handles {ours} (--lb-class)"
            )
    return explanations


def reported(entry: PlannedService) -> bool:
    """LoadBalancer Services, and any other whose state the controller changed or commented on."""
    return entry.service.type == "LoadBalancer" or bool(entry.events) or bool(entry.service.ingress_ips)


def service_entry(entry: PlannedService) -> dict[str, Any]:
    """One Service in `plan`'s JSON; later data (announcements, reasons) is added to this dict by callers."""
    return {
        "namespace": entry.service.namespace,
        "name": entry.service.name,
        "ips": list(entry.service.ingress_ips),
        "pool": entry.pool,
        "events": [e.as_dict() for e in entry.events],
    }


def pool_entries(plan: Plan) -> list[dict[str, Any]]:
    if plan.config is None or plan.allocator is None:
        return []
    entries = []
    for pool in plan.config.pools:
        counters = plan.allocator.counters(pool.name)
        entries.append(
            {
                "name": pool.name,
                "assignedIPv4": counters.assigned_ipv4,
                "availableIPv4": counters.available_ipv4,
                "assignedIPv6": counters.assigned_ipv6,
                "availableIPv6": counters.available_ipv6,
            }
        )
    return entries


def plan_json(plan: Plan, extend: Callable[[PlannedService, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The documented JSON shape; `extend` may add keys to each service entry."""
    services = []
    for entry in plan.services:
        if not reported(entry):
            continue
        item = service_entry(entry)
        if extend is not None:
            extend(entry, item)
        services.append(item)
    return {"valid": plan.valid, "errors": list(plan.errors), "services": services, "pools": pool_entries(plan)}
