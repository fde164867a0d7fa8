"""Builders for the speaker tests (election, layer2, explain, status): small Configs, Nodes, Services, slices."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping

from metallb_fast.config.model import AddressRange, Config, L2Advertisement, LabelSelector, Pool
from metallb_fast.resources import Endpoint, EndpointSlice, Node, NodeCondition, Service


def address_range(cidr: str) -> AddressRange:
    net = ipaddress.ip_network(cidr)
    return AddressRange(first=net[0], last=net[-1], text=cidr, prefixlen=net.prefixlen)


def make_pool(name: str = "default", *cidrs: str, labels: Mapping[str, str] | None = None) -> Pool:
    cidrs = cidrs or ("192.0.2.0/24", "2001:db8::/64")
    return Pool(name=name, ranges=tuple(address_range(c) for c in cidrs), labels=tuple(sorted((labels or {}).items())))


def make_config(*ads: L2Advertisement, pools: Iterable[Pool] | None = None) -> Config:
    return Config(pools=tuple(pools) if pools is not None else (make_pool(),), l2_advertisements=ads)


def selector(**labels: str) -> LabelSelector:
    return LabelSelector(match_labels=tuple(sorted(labels.items())))


def make_node(name: str, network_unavailable: bool = False, **labels: str) -> Node:
    conditions = (NodeCondition("NetworkUnavailable", "True"),) if network_unavailable else ()
    return Node(name=name, labels=tuple(sorted(labels.items())), conditions=conditions)


def make_nodes(*names: str) -> dict[str, Node]:
    return {n: make_node(n) for n in names}


def make_service(
    name: str = "web",
    ips: Iterable[str] = ("192.0.2.10",),
    policy: str = "Cluster",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    namespace: str = "default",
) -> Service:
    return Service(
        namespace=namespace,
        name=name,
        type="LoadBalancer",
        labels=tuple(sorted((labels or {}).items())),
        annotations=tuple(sorted((annotations or {}).items())),
        external_traffic_policy=policy,
        ingress_ips=tuple(ips),
    )


def make_slice(
    service: Service, *node_names: str, ready: bool | None = True, serving: bool | None = None
) -> EndpointSlice:
    return EndpointSlice(
        namespace=service.namespace,
        name=f"{service.name}-abc",
        service_name=service.name,
        endpoints=tuple(
            Endpoint(node_name=n, ready=ready, serving=serving) for n in node_names
        ),
    )


def hash_order(names: Iterable[str], key: str) -> list[str]:
    """The expected MetalLB order, computed here independently of the code under test."""
    return sorted(names, key=lambda n: hashlib.sha256((n + "#" + key).encode("utf-8")).digest())
