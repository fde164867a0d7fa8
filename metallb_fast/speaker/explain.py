"""Why is my address announced from that node? The speaker's election, run for every known node at once.

Data for `metallb-fast plan`: per Service, the announcing node and interfaces of each address, and every other
node's reason. The same election code the speaker runs, so the plan cannot disagree with the cluster.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Set
from typing import Any

from metallb_fast.config.model import Config, IPAddress
from metallb_fast.resources import EndpointSlice, Node, Service
from metallb_fast.speaker import election
from metallb_fast.speaker.layer2 import interface_choice

ENDPOINT_SLICE_API_VERSIONS = ("discovery.k8s.io/v1", "discovery.k8s.io/v1beta1")


def cluster_objects(objects: Iterable[Mapping[str, Any] | None]) -> tuple[dict[str, Node], list[EndpointSlice]]:
    """The v1 Nodes and EndpointSlices among manifest documents; every other document is ignored."""
    nodes: dict[str, Node] = {}
    slices: list[EndpointSlice] = []
    for index, obj in enumerate(objects):
        if not obj:
            continue
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind == "Node" and api_version == "v1":
            node = Node.from_dict(obj)
            if not node.name:
                raise ValueError(f"Node (document {index + 1}): metadata.name is missing")
            if node.name in nodes:
                raise ValueError(f"Node {node.name!r} (document {index + 1}): defined twice")
            nodes[node.name] = node
        elif kind == "EndpointSlice" and api_version in ENDPOINT_SLICE_API_VERSIONS:
            eps = EndpointSlice.from_dict(obj)
            if not eps.service_name:
                raise ValueError(
                    f"EndpointSlice {eps.namespace}/{eps.name or '?'} (document {index + 1}): "
                    "label kubernetes.io/service-name is missing; it names the Service the slice belongs to"
                )
            slices.append(eps)
    return nodes, slices


def _addresses(service: Service) -> tuple[IPAddress, ...]:
    found = []
    for text in service.ingress_ips:
        try:
            found.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    return tuple(found)


def explain_service(
    service: Service,
    config: Config,
    nodes: Mapping[str, Node],
    endpoint_slices: Iterable[EndpointSlice],
    dead: Set[str] = frozenset(),
    live_nodes: Set[str] | None = None,
    ignore_exclude_lb: bool = False,
) -> dict[str, Any]:
    """{"announcements": [{"ip", "node", "interfaces"}], "reasons": {node: reason}} over all known nodes.

    dead: nodes whose speaker is down (plan's --dead); live_nodes: membership's view, None = every known Node.
    interfaces [] means every eligible interface. Nodes that are not the announcer get their reason.
    """
    slices = [s for s in endpoint_slices if s.service_key == service.key]
    addresses = _addresses(service)
    if not addresses:
        return {"announcements": [], "reasons": {}}
    live = (set(nodes) if live_nodes is None else set(live_nodes)) - set(dead)
    pool = election.pool_for(config, addresses)
    result = election.elect(
        service, addresses[0], config, pool.name if pool else None, nodes, slices, live, ignore_exclude_lb
    )
    winner = result.winner
    interfaces = interface_choice(winner, result.advertisements, nodes).listed if winner else []
    announcements = [
        {"ip": str(ip), "node": winner, "interfaces": list(interfaces)} for ip in addresses
    ]
    reasons = {}
    for name in sorted(nodes):
        reason = result.reason_for(name)
        if reason is not None:
            reasons[name] = reason
    return {"announcements": announcements, "reasons": reasons}
