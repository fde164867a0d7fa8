"""The validated configuration snapshot: frozen values built by config.parse, read by allocator and speaker.

This module is the contract between the config parser and its consumers; it holds no parsing or validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from metallb_fast.vocabulary import IPAddress


class SelectorOperator(str, Enum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class SelectorRequirement:
    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator is SelectorOperator.IN:
            return self.key in labels and labels[self.key] in self.values
        if self.operator is SelectorOperator.NOT_IN:
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator is SelectorOperator.EXISTS:
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes LabelSelector. The empty selector matches everything, as in Kubernetes."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[SelectorRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )


def any_selector_matches(selectors: tuple[LabelSelector, ...], labels: Mapping[str, str]) -> bool:
    """MetalLB's rule for selector lists: an empty list selects everything, else any one selector must match."""
    return not selectors or any(s.matches(labels) for s in selectors)


@dataclass(frozen=True)
class AddressRange:
    """One `addresses` entry of a pool: a CIDR or an `a-b` range, kept as its two ends (never materialised)."""

    first: IPAddress
    last: IPAddress
    text: str  # the entry as the user wrote it (trimmed), for messages
    prefixlen: int | None = None  # set when the entry was a CIDR

    @property
    def version(self) -> int:
        return self.first.version

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def contains(self, ip: IPAddress) -> bool:
        return ip.version == self.first.version and int(self.first) <= int(ip) <= int(self.last)

    def overlaps(self, other: AddressRange) -> bool:
        return (
            self.version == other.version
            and int(self.first) <= int(other.last)
            and int(other.first) <= int(self.last)
        )


@dataclass(frozen=True)
class ServiceAllocation:
    """IPAddressPool.spec.serviceAllocation. priority None means unset (MetalLB treats 0 as unset too).

    As in MetalLB's parsed config, an allocation that names no namespace and no selector at all (only a
    priority) is given one empty service selector: it selects every Service.
    """

    priority: int | None = None
    namespaces: tuple[str, ...] = ()
    namespace_selectors: tuple[LabelSelector, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()


@dataclass(frozen=True)
class Pool:
    name: str
    ranges: tuple[AddressRange, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    service_allocation: ServiceAllocation | None = None
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def contains(self, ip: IPAddress) -> bool:
        return any(r.contains(ip) for r in self.ranges)

    def has_family(self, version: int) -> bool:
        return any(r.version == version for r in self.ranges)


@dataclass(frozen=True)
class PreferredNodeSelector:
    weight: int
    preference: LabelSelector


@dataclass(frozen=True)
class L2Advertisement:
    name: str
    ip_address_pools: tuple[str, ...] = ()
    ip_address_pool_selectors: tuple[LabelSelector, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    interfaces: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()
    preferred_node_selectors: tuple[PreferredNodeSelector, ...] = ()


@dataclass(frozen=True)
class BGPAdvertisement:
    name: str
    aggregation_length: int = 32
    aggregation_length_v6: int = 128
    local_pref: int | None = None
    communities: tuple[str, ...] = ()  # resolved values ("a:b" or "large:a:b:c"), aliases expanded
    ip_address_pools: tuple[str, ...] = ()
    ip_address_pool_selectors: tuple[LabelSelector, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    peers: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()


@dataclass(frozen=True)
class SecretReference:
    name: str
    namespace: str | None = None


@dataclass(frozen=True)
class BGPPeer:
    name: str
    my_asn: int
    peer_asn: int | None = None
    dynamic_asn: str | None = None  # "internal" | "external"
    peer_address: str | None = None
    interface: str | None = None
    peer_port: int = 179
    source_address: str | None = None
    router_id: str | None = None
    hold_time_seconds: float | None = None
    keepalive_time_seconds: float | None = None
    connect_time_seconds: float | None = None
    ebgp_multihop: bool = False
    bfd_profile: str | None = None
    password: str | None = None
    password_secret: SecretReference | None = None
    node_selectors: tuple[LabelSelector, ...] = ()
    vrf: str | None = None
    enable_graceful_restart: bool = False
    disable_mp: bool = False
    dual_stack_address_family: bool = False
    local_asn: int | None = None  # v1beta2 localASN (FRR "local-as ... no-prepend replace-as")


@dataclass(frozen=True)
class CommunityAlias:
    name: str
    value: str


@dataclass(frozen=True)
class Community:
    name: str
    communities: tuple[CommunityAlias, ...] = ()


@dataclass(frozen=True)
class BFDProfile:
    name: str
    receive_interval_ms: int | None = None
    transmit_interval_ms: int | None = None
    detect_multiplier: int | None = None
    echo_interval_ms: int | None = None
    echo_mode: bool = False
    passive_mode: bool = False
    minimum_ttl: int | None = None


@dataclass(frozen=True)
class Config:
    """One immutable, validated snapshot of every metallb.io object the programs read."""

    pools: tuple[Pool, ...] = ()
    l2_advertisements: tuple[L2Advertisement, ...] = ()
    bgp_advertisements: tuple[BGPAdvertisement, ...] = ()
    bgp_peers: tuple[BGPPeer, ...] = ()
    communities: tuple[Community, ...] = ()
    bfd_profiles: tuple[BFDProfile, ...] = ()
    _pools_by_name: dict[str, Pool] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._pools_by_name.update({p.name: p for p in self.pools})

    def pool(self, name: str) -> Pool | None:
        return self._pools_by_name.get(name)

    def advertisement_selects_pool(self, adv: L2Advertisement | BGPAdvertisement, pool: Pool) -> bool:
        """MetalLB: an advertisement with neither pool names nor pool selectors applies to every pool."""
        return advertisement_selects_pool(adv, pool)


def advertisement_selects_pool(adv: L2Advertisement | BGPAdvertisement, pool: Pool) -> bool:
    """MetalLB: an advertisement with neither pool names nor pool selectors applies to every pool."""
    if not adv.ip_address_pools and not adv.ip_address_pool_selectors:
        return True
    if pool.name in adv.ip_address_pools:
        return True
    return any(s.matches(pool.label_map) for s in adv.ip_address_pool_selectors)
