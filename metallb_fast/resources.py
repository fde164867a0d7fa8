"""Frozen views of the core Kubernetes objects the decision code reads: Service, Node, EndpointSlice, Namespace.

Built from the JSON dicts the API server (or a manifest) gives; only the fields MetalLB's logic reads are kept.
Shared by the controller, the speaker and `plan`, so every component reads a Service the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

from metallb_fast.vocabulary import ANNOTATION_PREFIX, DEPRECATED_ANNOTATION_PREFIX, LABEL_SERVICE_NAME, object_key

H = TypeVar("H")
_SHARED_LIMIT = 1 << 16  # distinct values kept for sharing; past it the table starts over (memory stays bounded)
_shared_values: dict[Any, Any] = {}


def _one_of(value: H) -> H:
    """One object for equal immutable values that many views repeat (the annotation naming the pool a Service's
    address came from, a label, an endpoint on a node, port 80/TCP): at 10,000 Services each copy is memory
    spent on nothing."""
    found = _shared_values.get(value)
    if found is None:
        if len(_shared_values) >= _SHARED_LIMIT:
            _shared_values.clear()
        _shared_values[value] = found = value
    return found


def _labels(obj: Mapping[str, Any], key: str = "labels") -> tuple[tuple[str, str], ...]:
    items = ((obj.get("metadata") or {}).get(key) or {}).items()
    # A long value (kubectl's last-applied-configuration) is unique to its object: not worth a table entry.
    return tuple(sorted(
        _one_of((_shared(k), v)) if isinstance(v, str) and len(v) <= 253 else (_shared(k), v) for k, v in items
    ))


def _shared(text: str | None) -> Any:
    """One string object for a value thousands of views repeat (a namespace, a node name, "LoadBalancer"): the
    JSON decoder makes a new one for every occurrence."""
    return sys.intern(text) if isinstance(text, str) else text


@dataclass(frozen=True, slots=True)
class ServicePort:
    protocol: str  # TCP | UDP | SCTP
    port: int


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    cluster_ips: tuple[str, ...] = ()
    ip_family_policy: str | None = None  # SingleStack | PreferDualStack | RequireDualStack
    load_balancer_ip: str = ""
    load_balancer_class: str | None = None
    external_traffic_policy: str = "Cluster"
    selector: tuple[tuple[str, str], ...] = ()
    ports: tuple[ServicePort, ...] = ()
    ingress_ips: tuple[str, ...] = ()  # status.loadBalancer.ingress[].ip, in order
    uid: str = ""
    resource_version: str = ""
    creation_timestamp: str = ""  # RFC 3339, so text order is age order

    @property
    def key(self) -> str:
        return object_key(self.namespace, self.name)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def annotation_map(self) -> dict[str, str]:
        return dict(self.annotations)

    def metallb_annotation(self, suffix: str) -> tuple[str | None, bool]:
        """Value of `metallb.io/<suffix>`, else of the deprecated `metallb.universe.tf/<suffix>`.

        Returns (value, deprecated_used); the current prefix wins when both are present.
        """
        annotations = self.annotation_map
        current = annotations.get(ANNOTATION_PREFIX + suffix)
        if current is not None:
            return current, False
        old = annotations.get(DEPRECATED_ANNOTATION_PREFIX + suffix)
        return old, old is not None

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], *, announcing: bool = False) -> Service:
        """announcing: the speaker's view, without what only the controller reads (cluster IPs, selector,
        creation time, resourceVersion: left empty). It is smaller at 10,000 Services, and an update that
        changes only those fields is no change to it, so its informer drops the event."""
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        ingress = ((status.get("loadBalancer") or {}).get("ingress")) or []
        controller_only: dict[str, Any] = {}
        if not announcing:
            cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
            controller_only = {
                "cluster_ips": tuple(ip for ip in cluster_ips if ip and ip != "None"),
                "selector": tuple(sorted((spec.get("selector") or {}).items())),
                "resource_version": meta.get("resourceVersion") or "",
                "creation_timestamp": meta.get("creationTimestamp") or "",
            }
        return cls(
            namespace=_shared(meta.get("namespace") or "default"),
            name=meta.get("name") or "",
            type=_shared(spec.get("type") or "ClusterIP"),
            labels=_labels(obj),
            annotations=_labels(obj, "annotations"),
            ip_family_policy=_shared(spec.get("ipFamilyPolicy")),
            load_balancer_ip=spec.get("loadBalancerIP") or "",
            load_balancer_class=spec.get("loadBalancerClass"),
            external_traffic_policy=_shared(spec.get("externalTrafficPolicy") or "Cluster"),
            ports=tuple(
                _one_of(ServicePort(protocol=_shared(p.get("protocol") or "TCP"), port=int(p.get("port") or 0)))
                for p in spec.get("ports") or []
            ),
            ingress_ips=tuple(i["ip"] for i in ingress if i.get("ip")),
            uid=meta.get("uid") or "",
            **controller_only,
        )


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Namespace:
        return cls(name=(obj.get("metadata") or {}).get("name") or "", labels=_labels(obj))


@dataclass(frozen=True)
class NodeCondition:
    type: str
    status: str  # "True" | "False" | "Unknown"


@dataclass(frozen=True)
class Node:
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    conditions: tuple[NodeCondition, ...] = ()
    unschedulable: bool = False  # cordoned (kubectl drain)
    deleting: bool = False  # metadata.deletionTimestamp set

    @cached_property  # read by every election: built once per view (the view is frozen; callers must not mutate)
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def condition_is_true(self, condition_type: str) -> bool:
        return any(c.type == condition_type and c.status == "True" for c in self.conditions)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Node:
        conditions = ((obj.get("status") or {}).get("conditions")) or []
        meta = obj.get("metadata") or {}
        return cls(
            name=meta.get("name") or "",
            labels=_labels(obj),
            # Types and statuses only: a heartbeat (lastHeartbeatTime) is not a change any decision sees.
            conditions=tuple(
                NodeCondition(type=c.get("type") or "", status=str(c.get("status") or "Unknown"))
                for c in conditions
            ),
            unschedulable=bool((obj.get("spec") or {}).get("unschedulable")),
            deleting=bool(meta.get("deletionTimestamp")),
        )


@dataclass(frozen=True, slots=True)
class Endpoint:
    node_name: str | None
    ready: bool | None  # None = unset (which counts as ready)
    serving: bool | None

    @property
    def can_serve(self) -> bool:
        """MetalLB: an endpoint serves when `ready` is unset or true, or when `serving` is true."""
        return self.ready is None or self.ready or bool(self.serving)


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service_name: str  # label kubernetes.io/service-name
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def service_key(self) -> str:
        return object_key(self.namespace, self.service_name)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> EndpointSlice:
        """Accepts discovery.k8s.io/v1 (`nodeName`) and v1beta1 (`topology["kubernetes.io/hostname"]`)."""
        meta = obj.get("metadata") or {}
        endpoints = []
        for ep in obj.get("endpoints") or []:
            conditions = ep.get("conditions") or {}
            node_name = ep.get("nodeName") or (ep.get("topology") or {}).get("kubernetes.io/hostname")
            endpoints.append(
                _one_of(Endpoint(node_name=_shared(node_name), ready=conditions.get("ready"),
                                 serving=conditions.get("serving")))
            )
        return cls(
            namespace=_shared(meta.get("namespace") or "default"),
            name=meta.get("name") or "",
            service_name=(meta.get("labels") or {}).get(LABEL_SERVICE_NAME) or "",
            endpoints=tuple(endpoints),
        )
