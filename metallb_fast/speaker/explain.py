"""Why is my address announced from that node? The speaker's election, run for every known node at once.

Data for `metallb-fast plan`: per Service, the announcing node and interfaces of each address, and every other
node's reason. The same election code the speaker runs, so the plan cannot disagree with the cluster; the
Service-wide checks come first, in the order of MetalLB's speaker (SetBalancer before ShouldAnnounce).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any

from metallb_fast.config.model import Config
from metallb_fast.resources import EndpointSlice, Node, Service
from metallb_fast.speaker import election
from metallb_fast.speaker.layer2 import interface_choice
from metallb_fast.vocabulary import IPAddress

ENDPOINT_SLICE_API_VERSIONS = ("discovery.k8s.io/v1", "discovery.k8s.io/v1beta1")



class ClusterObjectsError(ValueError):
    """Every malformed Node or EndpointSlice among the manifests, each message naming the object."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def cluster_objects(objects: Iterable[Mapping[str, Any] | None]) -> tuple[dict[str, Node], list[EndpointSlice]]:
    """The v1 Nodes and EndpointSlices among manifest documents; every other document is ignored.

    Raises ClusterObjectsError listing every problem, not just the first.
    """
    nodes: dict[str, Node] = {}
    slices: list[EndpointSlice] = []
    problems: list[str] = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, Mapping):
            continue
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind == "Node" and api_version == "v1":
            node = Node.from_dict(obj)
            if not node.name:
                problems.append(f"Node (document {index + 1}): metadata.name is missing")
            elif node.name in nodes:
                problems.append(f"Node {node.name!r} (document {index + 1}): defined twice")
            else:
                nodes[node.name] = node
        elif kind == "EndpointSlice" and api_version in ENDPOINT_SLICE_API_VERSIONS:
            eps = EndpointSlice.from_dict(obj)
            if not eps.service_name:
                problems.append(
                    f"EndpointSlice {eps.namespace}/{eps.name or '?'} (document {index + 1}): "
                    "label kubernetes.io/service-name is missing; it names the Service the slice belongs to"
                )
            else:
                slices.append(eps)
    if problems:
        raise ClusterObjectsError(problems)
    return nodes, slices


@dataclass(frozen=True)
class Announcement:
    ip: str
    node: str | None  # None: no node announces it
    interfaces: tuple[str, ...] = ()  # () = every eligible interface

    def as_dict(self) -> dict[str, Any]:
        return {"ip": self.ip, "node": self.node, "interfaces": list(self.interfaces)}


@dataclass(frozen=True)
class Explanation:
    """One Service seen from every node: what `plan` prints, and the JSON it writes (`as_dict`)."""

    announcements: tuple[Announcement, ...] = ()
    reasons: tuple[tuple[str, str], ...] = ()  # (node, MetalLB reason) for each node that does not announce
    order: tuple[str, ...] = ()  # the live candidates, best first: the winner, then who takes over
    nobody: str | None = None  # why no node announces, for a person (reasons hold MetalLB's word); None if one does

    def as_dict(self) -> dict[str, Any]:
        return {"announcements": [a.as_dict() for a in self.announcements], "reasons": dict(self.reasons)}


def _everyone(nodes: Mapping[str, Node], reason: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, reason) for name in sorted(nodes))


def _nobody_text(
    service: Service, result: election.Election, addresses: tuple[IPAddress, ...], slices: list[EndpointSlice]
) -> str:
    """A sentence naming the Service-wide cause when the election has no winner."""
    if result.blocked == election.IP_NOT_ALLOWED:
        return "no IPAddressPool holds every address"
    if not election.has_serving_endpoint(slices):
        if not slices:
            return f"no serving endpoint (no EndpointSlice labelled kubernetes.io/service-name={service.name})"
        return "no serving endpoint"
    if result.blocked == election.SHARED_IP_WITH_SERVICE_SELECTOR:
        return "it shares its address (allow-shared-ip) and an applying L2Advertisement has serviceSelectors"
    if not result.advertisements:
        pool = result.pool.name if result.pool else "?"
        return f"no L2Advertisement applies (pool {pool}, serviceSelectors)"
    local = ", a serving endpoint there (Local)" if service.external_traffic_policy == "Local" else ""
    return (
        "no eligible node (needs: live, selected by an L2Advertisement, NetworkUnavailable not True, "
        f"no {election.EXCLUDE_FROM_LB_LABEL} label{local})"
    )


def explain(
    service: Service,
    config: Config,
    nodes: Mapping[str, Node],
    endpoint_slices: Iterable[EndpointSlice],
    dead: Set[str] = frozenset(),
    live_nodes: Set[str] | None = None,
    ignore_exclude_lb: bool = False,
) -> Explanation:
    """The speaker's verdict for `service` on every node in `nodes`.

    dead: nodes whose speaker is down (plan's --dead); live_nodes: membership's view, None = every known Node.
    Without any Node there is nobody to explain: an empty Explanation.
    """
    if not nodes:
        return Explanation()
    checked = election.service_addresses(service)
    addresses = checked.addresses
    if checked.withdraw == election.NOT_LOAD_BALANCER:
        return Explanation(
            announcements=tuple(Announcement(str(ip), None) for ip in addresses),
            reasons=_everyone(nodes, checked.withdraw),
            nobody=f"spec.type is {service.type}, not LoadBalancer",
        )
    if checked.withdraw == election.NO_IP_ALLOCATED:
        return Explanation(reasons=_everyone(nodes, checked.withdraw), nobody="no address assigned")
    if checked.withdraw == election.INVALID_IP:
        return Explanation(
            reasons=_everyone(nodes, checked.withdraw),
            nobody=f"status.loadBalancer.ingress holds {checked.invalid!r}, not an IP address",
        )
    slices = [s for s in endpoint_slices if s.service_key == service.key]
    live = (set(nodes) if live_nodes is None else set(live_nodes)) - set(dead)
    pool_name = election.pool_name_for(config, addresses)
    result = election.elect(service, addresses[0], config, pool_name, nodes, slices, live, ignore_exclude_lb)
    winner = result.winner
    interfaces = tuple(interface_choice(winner, result.advertisements, nodes).listed) if winner else ()
    reasons = tuple((name, reason) for name in sorted(nodes) if (reason := result.reason_for(name)) is not None)
    return Explanation(
        announcements=tuple(Announcement(str(ip), winner, interfaces) for ip in addresses),
        reasons=reasons,
        order=() if result.blocked is not None else result.order,
        nobody=None if winner else _nobody_text(service, result, addresses, slices),
    )

