"""The layer-2 announcement plan of one node: which (address, interface) pairs it answers for, with which MAC.

Pure: the node's links come in as LinkInfo values (speaker/links.py reads the real ones). The output `owned`
is exactly the table `Responder.sync()` takes. Interface rules follow MetalLB's internal/layer2/announcer.go
(which links get a responder) and speaker/layer2_controller.go ipAdvertisementFor (which interfaces an address
is announced on).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from types import MappingProxyType

from metallb_fast.config.model import Config, L2Advertisement
from metallb_fast.dataplane.base import OwnedKey
from metallb_fast.resources import EndpointSlice, Node, Service
from metallb_fast.speaker import election
from metallb_fast.speaker.status import ServiceEvent, announce_failed_event
from metallb_fast.vocabulary import IPAddress

# The announcedInterfacesToExclude list MetalLB's manifests ship: container, overlay and virtual links.
DEFAULT_EXCLUDED_INTERFACES: tuple[str, ...] = (
    r"^docker.*",
    r"^cbr.*",
    r"^dummy.*",
    r"^virbr.*",
    r"^lxcbr.*",
    r"^veth.*",
    r"^lo$",
    r"^cali.*",
    r"^tunl.*",
    r"^flannel.*",
    r"^kube-ipvs.*",
    r"^cni.*",
    r"^nodelocaldns.*",
    r"^lxc.*",
)


@dataclass(frozen=True)
class LinkInfo:
    """What the announcer needs to know about one network link of the node."""

    name: str
    mac: bytes
    up: bool = True
    broadcast: bool = True
    noarp: bool = False
    has_ipv4: bool = False
    has_ipv6_link_local: bool = False
    enslaved: bool = False  # has a master: a bond or bridge port (MetalLB: /sys/class/net/<if>/master exists)


@dataclass(frozen=True)
class InterfaceExclusion:
    """announcedInterfacesToExclude: one regular expression per entry, matched anywhere in the name (Go's
    MatchString), combined as MetalLB does."""

    patterns: tuple[str, ...] = DEFAULT_EXCLUDED_INTERFACES
    _regex: re.Pattern[str] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for p in self.patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"announcedInterfacesToExclude: pattern {p!r} is not a valid regexp: {exc}") from exc
        regex = re.compile("|".join(f"({p})" for p in self.patterns)) if self.patterns else None
        object.__setattr__(self, "_regex", regex)

    def excludes(self, name: str) -> bool:
        return self._regex is not None and self._regex.search(name) is not None


def node_interfaces(links: Iterable[LinkInfo], exclusion: InterfaceExclusion) -> frozenset[str]:
    """The interfaces that "exist" for MetalLB: every link not excluded by name, whatever its state."""
    return frozenset(link.name for link in links if not exclusion.excludes(link.name))


def can_answer(link: LinkInfo, ip: IPAddress, exclusion: InterfaceExclusion) -> bool:
    """Would MetalLB run a responder for `ip`'s protocol on `link`?

    ARP: up, not enslaved, not NOARP, BROADCAST, with an IPv4 address. NDP: up, not enslaved, not NOARP, with an
    IPv6 link-local address. (MetalLB also answers ARP on broadcast links without any IPv4 address; a link with
    no IPv4 address is not on any IPv4 LAN its clients could ARP from, so we do not.)
    """
    if exclusion.excludes(link.name) or not link.up or link.enslaved or link.noarp:
        return False
    return link.broadcast and link.has_ipv4 if ip.version == 4 else link.has_ipv6_link_local


@dataclass(frozen=True)
class InterfaceChoice:
    """The interfaces one address is announced on: all eligible ones, or the union of the named ones."""

    all_interfaces: bool
    names: frozenset[str] = frozenset()

    def allows(self, name: str) -> bool:
        return self.all_interfaces or name in self.names

    def any_exists(self, existing: Set[str]) -> bool:
        return self.all_interfaces or bool(self.names & existing)

    @property
    def listed(self) -> list[str]:
        """The JSON/status form: [] means every interface."""
        return [] if self.all_interfaces else sorted(self.names)


def interface_choice(
    node_name: str, advertisements: Iterable[L2Advertisement], nodes: Mapping[str, Node]
) -> InterfaceChoice:
    """Union of the `interfaces` of the applying advertisements that select `node_name`; one without any means
    every interface."""
    names: set[str] = set()
    node = nodes.get(node_name)
    for adv in advertisements:
        if not election.advertisement_selects_node(adv, node):
            continue
        if not adv.interfaces:
            return InterfaceChoice(all_interfaces=True)
        names.update(adv.interfaces)
    return InterfaceChoice(all_interfaces=False, names=frozenset(names))


def owned_entries(
    ip: IPAddress, choice: InterfaceChoice, links: Iterable[LinkInfo], exclusion: InterfaceExclusion
) -> dict[OwnedKey, bytes]:
    return {(ip, link.name): link.mac for link in links if choice.allows(link.name) and can_answer(link, ip, exclusion)}


@dataclass(frozen=True)
class ServiceAnnouncement:
    """A Service this node announces: the addresses actually announced and the first one's interfaces."""

    service: Service
    addresses: tuple[IPAddress, ...]
    interfaces: InterfaceChoice


@dataclass(frozen=True)
class NodePlan:
    owned: dict[OwnedKey, bytes]
    announced: tuple[ServiceAnnouncement, ...]
    warnings: tuple[ServiceEvent, ...]  # announceFailed
    reasons: dict[str, str]  # service key -> why this node does not announce it


NO_OWNED: Mapping[OwnedKey, bytes] = MappingProxyType({})  # shared by the plans of every Service not announced here


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """One Service's share of a NodePlan: what it makes this node answer, or why it does not."""

    owned: Mapping[OwnedKey, bytes]
    announcement: ServiceAnnouncement | None
    warnings: tuple[ServiceEvent, ...]
    reason: str | None  # None when announced
    standing: election.Standing | None = None  # how its election stands; None: no node change can alter it


@dataclass(frozen=True)
class NodeSide:
    """What every Service's plan on this node shares: the node's links and the interfaces that exist."""

    node_name: str
    links: tuple[LinkInfo, ...]
    exclusion: InterfaceExclusion
    existing: frozenset[str]

    @classmethod
    def of(cls, node_name: str, links: Iterable[LinkInfo], exclusion: InterfaceExclusion | None = None) -> NodeSide:
        exclusion = exclusion or InterfaceExclusion()
        links = tuple(links)
        return cls(node_name, links, exclusion, node_interfaces(links, exclusion))


def plan_service(
    side: NodeSide,
    service: Service,
    config: Config,
    context: election.ElectionContext,
    endpoint_slices: Iterable[EndpointSlice],
) -> ServicePlan:
    """What this node announces for one Service (the per-Service step of plan_node)."""
    checked = election.service_addresses(service)
    if checked.withdraw is not None:
        return ServicePlan(NO_OWNED, None, (), checked.withdraw)
    addresses = checked.addresses
    result = election.elect(
        service,
        addresses[0],
        config,
        election.pool_name_for(config, addresses),
        context.nodes,
        endpoint_slices,
        context=context,
        full_order=False,
    )
    standing = result.standing
    reason = result.reason_for(side.node_name)
    if reason is not None:
        return ServicePlan(NO_OWNED, None, (), reason, standing)
    choice = interface_choice(side.node_name, result.advertisements, context.nodes)
    owned: dict[OwnedKey, bytes] = {}
    warnings: list[ServiceEvent] = []
    done: list[IPAddress] = []
    for ip in addresses:
        # A named interface missing on the winner is reported, not failed over: every speaker computes the
        # same winner, so no other node would step in (MetalLB behaves the same).
        if not choice.any_exists(side.existing):
            warnings.append(announce_failed_event(service, ip, side.node_name))
            continue
        owned.update(owned_entries(ip, choice, side.links, side.exclusion))
        done.append(ip)
    if not done:
        return ServicePlan(NO_OWNED, None, tuple(warnings), "announceFailed", standing)
    announcement = ServiceAnnouncement(service=service, addresses=tuple(done), interfaces=choice)
    return ServicePlan(owned, announcement, tuple(warnings), None, standing)


def slices_by_service(endpoint_slices: Iterable[EndpointSlice]) -> dict[str, list[EndpointSlice]]:
    grouped: dict[str, list[EndpointSlice]] = {}
    for s in endpoint_slices:
        grouped.setdefault(s.service_key, []).append(s)
    return grouped


def plan_node(
    node_name: str,
    services: Iterable[Service],
    config: Config,
    nodes: Mapping[str, Node],
    endpoint_slices: Iterable[EndpointSlice],
    links: Iterable[LinkInfo],
    live_nodes: Set[str] | None = None,
    ignore_exclude_lb: bool = False,
    exclusion: InterfaceExclusion | None = None,
) -> NodePlan:
    """Everything this node announces, for every LoadBalancer Service with addresses."""
    side = NodeSide.of(node_name, links, exclusion)
    context = election.ElectionContext(nodes, live_nodes, ignore_exclude_lb)
    grouped = slices_by_service(endpoint_slices)
    owned: dict[OwnedKey, bytes] = {}
    announced: list[ServiceAnnouncement] = []
    warnings: list[ServiceEvent] = []
    reasons: dict[str, str] = {}
    for service in services:
        plan = plan_service(side, service, config, context, grouped.get(service.key, ()))
        owned.update(plan.owned)
        warnings.extend(plan.warnings)
        if plan.announcement is not None:
            announced.append(plan.announcement)
        if plan.reason is not None:
            reasons[service.key] = plan.reason
    return NodePlan(owned=owned, announced=tuple(announced), warnings=tuple(warnings), reasons=reasons)
